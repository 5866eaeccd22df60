"""(k) The relays against the bare broker client per broker, and their latency.

``python -m benchmarks.relay [--quick]`` (or ``python -m benchmarks --only relay``).

For each broker on this machine (RabbitMQ, NATS JetStream, Redis Streams):

* **backlog**: N events (100,000; ``--quick`` 10,000), published by the
  relay (pages of 500, run by ``OutboxWorker.drain``) from three places: an
  ``InMemoryEventStore`` (the relay's own cost: reading pages, building
  envelopes, the lease-fenced checkpoint per page), the event log in
  PostgreSQL (``SQLAlchemyEventStore``, ``EventLogRelay``) and the outbox
  table in PostgreSQL (``SQLAlchemyOutboxStore``, ``OutboxTableRelay``, each
  page marked published in its fenced transaction); against the same
  publisher publishing the same kind of envelopes in a tight loop, with the
  same confirmation settings (each publish awaits the broker's confirmation,
  as the relay's do). Every backlog has events of its own (fresh ids), so no
  run benefits from JetStream dropping duplicates. ``relay ÷ bare`` is the
  ratio of the rates; the issue's target is 0.7.
* **latency**: the relay running idle, woken by the store's wake-up; one
  event appended every 20 ms, 200 times; the time from the append's return
  to a subscriber receiving it (the broker's own client), median and 99th
  percentile. The target is a median under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import aio_pika
import nats
from redis.asyncio import Redis

from benchmarks.databases import fresh_postgres
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore, InMemoryWorkerStorage
from cqrs_ddd_core import DomainEvent
from cqrs_ddd_infrastructure_messaging import (
    EventLogRelay,
    MessageEnvelope,
    NatsJetStreamPublisher,
    OutboxTableRelay,
    OutboxWorker,
    RabbitMQPublisher,
    RedisStreamsPublisher,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStore,
    SQLAlchemyWorkerStorage,
    create_engine,
    upgrade_schema,
    write_outbox,
)

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"
PAGE = 500
SAMPLES = 200
SPACING = 0.02


class Ticked(DomainEvent):
    n: int


Heard = Callable[[MessageEnvelope], None]
Stop = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Broker:
    """How to publish to one broker, and how to hear what was published."""

    name: str
    publisher: Callable[[str], Any]
    listen: Callable[
        [str, Callable[[MessageEnvelope], None]], Awaitable[Callable[[], Awaitable[None]]]
    ]
    cleanup: Callable[[str], Awaitable[None]]


async def _rabbitmq_listen(run: str, heard: Heard) -> Stop:
    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        f"bench.{run}", aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(f"bench.{run}", auto_delete=False, durable=True)
    await queue.bind(exchange, routing_key="#")

    async def on_message(message: Any) -> None:
        heard(MessageEnvelope.from_bytes(message.body))
        await message.ack()

    await queue.consume(on_message)

    async def stop() -> None:
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await connection.close()

    return stop


async def _rabbitmq_cleanup(run: str) -> None:
    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(f"bench.{run}")


async def _nats_listen(
    run: str, heard: Callable[[MessageEnvelope], None]
) -> Callable[[], Awaitable[None]]:
    client = await nats.connect(NATS_URL)

    async def on_message(message: Any) -> None:
        heard(MessageEnvelope.from_bytes(message.data))

    await client.subscribe(f"bench.{run}.>", cb=on_message)

    async def stop() -> None:
        await client.close()

    return stop


async def _nats_cleanup(run: str) -> None:
    client = await nats.connect(NATS_URL)
    try:
        await client.jetstream().delete_stream(f"bench_{run}")
    finally:
        await client.close()


async def _redis_listen(
    run: str, heard: Callable[[MessageEnvelope], None]
) -> Callable[[], Awaitable[None]]:
    client: Redis = Redis.from_url(REDIS_URL)
    stopping = asyncio.Event()

    async def read() -> None:
        last = "$"
        while not stopping.is_set():
            answer: Any = await client.xread({f"bench:{run}": last}, block=200, count=100)
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    last = entry_id
                    heard(MessageEnvelope.from_bytes(fields[b"body"]))

    task = asyncio.create_task(read())
    await asyncio.sleep(0.05)

    async def stop() -> None:
        stopping.set()
        await task
        await client.aclose()

    return stop


async def _redis_cleanup(run: str) -> None:
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        await client.delete(f"bench:{run}")
    finally:
        await client.aclose()


BROKERS = (
    Broker(
        "RabbitMQ",
        lambda run: RabbitMQPublisher(RABBITMQ_URL, exchange=f"bench.{run}"),
        _rabbitmq_listen,
        _rabbitmq_cleanup,
    ),
    Broker(
        "NATS JetStream",
        lambda run: NatsJetStreamPublisher(
            NATS_URL, stream=f"bench_{run}", subjects=[f"bench.{run}.>"]
        ),
        _nats_listen,
        _nats_cleanup,
    ),
    Broker(
        "Redis Streams",
        lambda run: RedisStreamsPublisher(REDIS_URL),
        _redis_listen,
        _redis_cleanup,
    ),
)


def _topic(broker: Broker, run: str) -> Callable[[MessageEnvelope], str]:
    if broker.name == "Redis Streams":
        return lambda _: f"bench:{run}"
    return lambda envelope: f"bench.{run}.{envelope.aggregate_id}"


def _pages(count: int) -> list[tuple[str, list[Ticked]]]:
    """``count`` new events (fresh ids) as streams of up to 1,000."""
    pages = []
    for start in range(0, count, 1000):
        stream = f"clock-{start // 1000}"
        size = min(1000, count - start)
        pages.append(
            (stream, [Ticked(n=n, aggregate_id=stream, version=n + 1) for n in range(size)])
        )
    return pages


async def _backlog(count: int) -> InMemoryEventStore:
    store = InMemoryEventStore()
    for stream, events in _pages(count):
        await store.append(stream, events, expected_version=0)
    return store


async def _drain(relay: EventLogRelay | OutboxTableRelay, count: int) -> float:
    started = time.perf_counter()
    await OutboxWorker(relay, owner="bench").drain()
    return count / (time.perf_counter() - started)


async def _postgres_rates(
    publisher: Any, topic: Callable[[MessageEnvelope], str], count: int
) -> tuple[float, float]:
    """The relay's rates from a PostgreSQL event log, then from a PostgreSQL outbox table."""
    async with fresh_postgres() as target:
        engine = create_engine(target.sqlalchemy_url)
        try:
            await upgrade_schema(engine)
            store = SQLAlchemyEventStore(engine)
            for stream, events in _pages(count):
                await store.append(stream, events, expected_version=0)
            for _, events in _pages(count):
                async with engine.begin() as connection:
                    await write_outbox(connection, events, topic="bench")
            storage = SQLAlchemyWorkerStorage(engine)
            from_log = await _drain(
                EventLogRelay(
                    name="log", event_store=store, storage=storage, publisher=publisher,
                    topic=topic, batch_size=PAGE,
                ),
                count,
            )  # fmt: skip
            from_outbox = await _drain(
                OutboxTableRelay(
                    name="outbox", outbox=SQLAlchemyOutboxStore(engine), storage=storage,
                    publisher=publisher, topic=topic, batch_size=PAGE,
                ),
                count,
            )  # fmt: skip
        finally:
            await engine.dispose()
    return from_log, from_outbox


@dataclass
class Row:
    broker: str
    bare_rate: float
    relay_rate: float
    log_rate: float
    outbox_rate: float
    median_ms: float
    p99_ms: float


async def bench_broker(broker: Broker, count: int, progress: Callable[[str], None]) -> Row:
    run = uuid4().hex[:10]
    bare_store = await _backlog(count)
    envelopes = [MessageEnvelope.of_stored(s) for s in await bare_store.read_all(limit=count)]
    store = await _backlog(count)
    topic = _topic(broker, run)
    publisher = broker.publisher(run)
    await publisher.start()
    arrived: dict[Any, float] = {}

    def heard(envelope: MessageEnvelope) -> None:
        arrived.setdefault(envelope.message_id, time.perf_counter())

    stop_listening = await broker.listen(run, heard)  # RabbitMQ refuses unroutable messages
    try:
        progress(f"(k) {broker.name}: the bare client, {count:,} messages")
        started = time.perf_counter()
        for envelope in envelopes:
            await publisher.publish_envelope(envelope, topic=topic(envelope))
        bare = count / (time.perf_counter() - started)

        progress(f"(k) {broker.name}: the relay, {count:,} events")
        relay = EventLogRelay(
            name="bench",
            event_store=store,
            storage=InMemoryWorkerStorage(),
            publisher=publisher,
            topic=topic,
            batch_size=PAGE,
        )
        relayed = await _drain(relay, count)
        progress(f"(k) {broker.name}: the relay from PostgreSQL (event log, outbox table)")
        from_log, from_outbox = await _postgres_rates(publisher, topic, count)

        progress(f"(k) {broker.name}: latency, {SAMPLES} events {SPACING * 1000:.0f} ms apart")
        live = InMemoryEventStore()
        arrived: dict[Any, float] = {}
        stop_listening = await broker.listen(
            run, lambda e: arrived.setdefault(e.message_id, time.perf_counter())
        )
        worker = OutboxWorker(
            EventLogRelay(
                name="live",
                event_store=live,
                storage=InMemoryWorkerStorage(),
                publisher=publisher,
                topic=topic,
            ),
            owner="live",
            poll_interval=1.0,
            wakeup=live.wakeup,
        )
        await worker.start()
        sent: dict[Any, float] = {}
        try:
            for n in range(SAMPLES):
                event = Ticked(n=n, aggregate_id="live", version=n + 1)
                await live.append("live", [event], expected_version=n)
                sent[event.event_id] = time.perf_counter()
                await asyncio.sleep(SPACING)
            async with asyncio.timeout(30):
                while any(key not in arrived for key in sent):  # noqa: ASYNC110 - the last ones
                    await asyncio.sleep(0.01)
        finally:
            await worker.stop()
        delays = sorted((arrived[key] - sent[key]) * 1000 for key in sent)
        median = statistics.median(delays)
        p99 = delays[int(len(delays) * 0.99) - 1]
    finally:
        await stop_listening()
        await publisher.close()
        await broker.cleanup(run)
    return Row(broker.name, bare, relayed, from_log, from_outbox, median, p99)


def summary_text(rows: list[Row], count: int) -> str:
    lines = [
        f"(k) the relays against the bare client, {count:,}-event backlogs; "
        f"latency of {SAMPLES} events {SPACING * 1000:.0f} ms apart",
        "",
        "| broker | bare msg/s | relay, memory log | PostgreSQL log | PostgreSQL outbox "
        "| relay ÷ bare (memory, log, outbox) | latency median | latency p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratios = ", ".join(
            f"{rate / row.bare_rate:.2f}"
            for rate in (row.relay_rate, row.log_rate, row.outbox_rate)
        )
        lines.append(
            f"| {row.broker} | {row.bare_rate:,.0f} | {row.relay_rate:,.0f} | "
            f"{row.log_rate:,.0f} | {row.outbox_rate:,.0f} | {ratios} | "
            f"{row.median_ms:.1f} ms | {row.p99_ms:.1f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run (k) and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 events instead of 100,000")
    args = parser.parse_args(argv)
    count = 10_000 if args.quick else 100_000

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    async def run() -> list[Row]:
        return [await bench_broker(broker, count, progress) for broker in BROKERS]

    print(summary_text(asyncio.run(run()), count))


if __name__ == "__main__":
    main()
