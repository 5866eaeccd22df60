"""The event-log relay publishing to the real NATS JetStream and Redis on this machine.

The log is an ``InMemoryEventStore`` and the lease and checkpoint an
``InMemoryWorkerStorage`` (the relay's own storage is the workers' port; the
SQL stores pass the same contract suite). What reaches the broker is read
back with its own client.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from jetstream_support import jetstream_messages
from redis.asyncio import Redis

from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore, InMemoryWorkerStorage
from cqrs_ddd_core import DomainEvent
from cqrs_ddd_infrastructure_messaging import (
    BrokerUnavailableError,
    EventLogRelay,
    MessageEnvelope,
    NatsJetStreamPublisher,
    OutboxWorker,
    RedisStreamsPublisher,
)
from cqrs_ddd_testing import NatsNamespace, RedisNamespace


class Ticked(DomainEvent):
    n: int


async def fill(store: InMemoryEventStore, *, streams: int, per_stream: int) -> None:
    """Append ``per_stream`` events to each of ``streams`` streams, interleaved."""
    for version in range(1, per_stream + 1):
        for number in range(streams):
            stream = f"clock-{number}"
            event = Ticked(n=version, aggregate_id=stream, version=version)
            await store.append(stream, [event], expected_version=version - 1)


class DiesAfter:
    """A publisher that dies (raises) after ``count`` confirmed publishes."""

    def __init__(self, publisher: NatsJetStreamPublisher, count: int) -> None:
        self.publisher = publisher
        self.left = count

    async def publish_envelope(self, envelope: MessageEnvelope, *, topic: str) -> None:
        if self.left == 0:
            raise ConnectionError("the relay's process died here")
        await self.publisher.publish_envelope(envelope, topic=topic)
        self.left -= 1


async def test_the_relay_publishes_the_log_in_order_and_resumes_after_dying(
    nats_namespace: NatsNamespace,
) -> None:
    store, storage = InMemoryEventStore(), InMemoryWorkerStorage()
    await fill(store, streams=5, per_stream=50)
    stream = nats_namespace.stream("events")
    publisher = NatsJetStreamPublisher(
        nats_namespace.url, stream=stream, subjects=[nats_namespace.subject(">")]
    )

    def topic(envelope: MessageEnvelope) -> str:
        return nats_namespace.subject(f"clock.{envelope.aggregate_id}")

    async with publisher:
        dying = EventLogRelay(
            name="relay",
            event_store=store,
            storage=storage,
            publisher=DiesAfter(publisher, 130),
            topic=topic,
            batch_size=40,
        )
        with pytest.raises(ConnectionError):
            await OutboxWorker(dying, owner="first").drain()  # died mid-page: 130 confirmed

        resumed = EventLogRelay(
            name="relay", event_store=store, storage=storage, publisher=publisher, topic=topic
        )
        await OutboxWorker(resumed, owner="second").drain()

    assert resumed.published == 250 - 120  # from the checkpoint after the third page
    assert publisher.duplicates == 10  # the dead relay's confirmed part of the fourth page
    received = await jetstream_messages(nats_namespace.url, stream)
    assert [envelope.position for envelope in received] == list(range(1, 251))
    for number in range(5):
        versions = [e.version for e in received if e.aggregate_id == f"clock-{number}"]
        assert versions == list(range(1, 51))


async def test_one_relay_at_a_time_holds_the_lease(redis_namespace: RedisNamespace) -> None:
    store, storage = InMemoryEventStore(), InMemoryWorkerStorage()
    await fill(store, streams=2, per_stream=10)
    key = redis_namespace.key("events")
    async with RedisStreamsPublisher(redis_namespace.url) as publisher:
        holder = OutboxWorker(
            EventLogRelay(
                name="relay",
                event_store=store,
                storage=storage,
                publisher=publisher,
                topic=lambda _: key,
            ),
            owner="holder",
        )
        standby_relay = EventLogRelay(
            name="relay", event_store=store, storage=storage, publisher=publisher,
            topic=lambda _: key,
        )  # fmt: skip
        standby = OutboxWorker(standby_relay, owner="standby")
        assert await holder.loops[0].take_lease()

        await standby.drain()  # the holder has the lease: nothing is published
        assert standby_relay.published == 0

        await holder.loops[0].give_up_lease()
        await standby.drain()
    assert standby_relay.published == 20
    client: Redis = Redis.from_url(redis_namespace.url)
    try:
        entries = await client.xrange(key)
    finally:
        await client.aclose()
    positions = [MessageEnvelope.from_bytes(fields[b"body"]).position for _, fields in entries]
    assert positions == list(range(1, 21))


class DownFor:
    """A publisher whose broker is down for its first ``count`` calls (each call timed)."""

    def __init__(self, publisher: NatsJetStreamPublisher, count: int) -> None:
        self.publisher = publisher
        self.left = count
        self.failed_at: list[float] = []

    async def publish_envelope(self, envelope: MessageEnvelope, *, topic: str) -> None:
        if self.left:
            self.left -= 1
            self.failed_at.append(time.monotonic())
            raise BrokerUnavailableError("NATS JetStream", "nats://…", "connection refused")
        await self.publisher.publish_envelope(envelope, topic=topic)


async def test_the_relay_backs_off_while_the_broker_is_down_then_catches_up(
    nats_namespace: NatsNamespace,
) -> None:
    store, storage = InMemoryEventStore(), InMemoryWorkerStorage()
    await fill(store, streams=2, per_stream=20)
    publisher = NatsJetStreamPublisher(
        nats_namespace.url,
        stream=nats_namespace.stream("events"),
        subjects=[nats_namespace.subject(">")],
    )
    async with publisher:
        flaky = DownFor(publisher, 5)
        relay = EventLogRelay(
            name="relay",
            event_store=store,
            storage=storage,
            publisher=flaky,
            topic=lambda envelope: nats_namespace.subject("clock"),
        )
        worker = OutboxWorker(
            relay, owner="relay-1", poll_interval=0.1, retry_backoff=0.05, max_backoff=0.4
        )
        await worker.start()
        errors: set[str | None] = set()
        try:
            async with asyncio.timeout(20):
                while (status := await worker.status()).lag_events:
                    errors.add(status.last_error)
                    await asyncio.sleep(0.05)
            status = await worker.status()
        finally:
            await worker.stop()

    gaps = [later - earlier for earlier, later in itertools.pairwise(flaky.failed_at)]
    assert all(gap >= 0.05 for gap in gaps), gaps  # no hot loop
    assert max(gaps) <= 2 * 0.4 + 0.5, gaps  # capped
    assert gaps[-1] > gaps[0], gaps  # growing
    assert (status.kind, status.lag_events, status.checkpoint) == ("relay", 0, 40)
    assert relay.published == 40
    assert "BrokerUnavailableError: NATS JetStream at nats://… is unavailable" in " ".join(
        str(error) for error in errors
    )  # the status said why it was waiting
    assert status.last_error is None  # and stopped saying so once publishing went through
