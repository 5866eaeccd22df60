"""Inbox consumers on the real RabbitMQ, NATS JetStream and Redis of this machine.

The same scenario on each broker: three events, one of them delivered twice,
a body that is not an envelope, an event of a type nobody registered, a
payload the event class refuses, and a handler that fails once. Afterwards
each event had exactly one effect, the poison messages are on the broker's
dead-letter route with their reason, and the consumer went on past them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, ClassVar
from uuid import uuid4

import aio_pika
import nats
import pytest
from redis.asyncio import Redis

from cqrs_ddd_advanced_core.adapters.memory import InMemoryInbox
from cqrs_ddd_advanced_core.upcasting import EventUpcaster, UpcasterRegistry
from cqrs_ddd_advanced_core.upcasting.decoder import EventDecoder
from cqrs_ddd_core import DomainEvent, EventTypeRegistry, InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_infrastructure_messaging import (
    InboxConsumer,
    MessageEnvelope,
    NatsJetStreamSubscriber,
    RabbitMQPublisher,
    RabbitMQSubscriber,
    RedisStreamsSubscriber,
)
from cqrs_ddd_testing import NatsNamespace, RabbitMQNamespace, RedisNamespace


class ItemAdded(DomainEvent):
    sku: str
    price: Decimal


class Unregistered(DomainEvent):
    pass


class Shipping:
    """A consumer whose handler records each effect in the unit of work; ``fail_once`` once."""

    def __init__(self) -> None:
        self.effects: list[str] = []
        self.fail_once: set[str] = set()
        self.consumer = InboxConsumer(
            "shipping",
            decoder=EventDecoder(EventTypeRegistry([ItemAdded])),
            inbox=InMemoryInbox(),
            uow_factory=InMemoryUnitOfWork,
        )
        self.consumer.subscribe(ItemAdded, self.ship)

    async def ship(self, event: ItemAdded) -> None:
        if event.sku in self.fail_once:
            self.fail_once.discard(event.sku)
            raise ConnectionError("the courier's API is down")
        uow = current_scope().uow
        assert isinstance(uow, InMemoryUnitOfWork)
        uow.stage(uuid4(), check=lambda: None, apply=lambda: self.effects.append(event.sku))

    async def until(self, count: int) -> None:
        async with asyncio.timeout(20):
            while len(self.effects) < count:  # noqa: ASYNC110 - polling the effect
                await asyncio.sleep(0.05)


def item(sku: str) -> MessageEnvelope:
    return MessageEnvelope.of_event(ItemAdded(sku=sku, price=Decimal("1.50"), aggregate_id="o1"))


SendRaw = Callable[[bytes, str], Awaitable[None]]


async def run_scenario(shipping: Shipping, send: SendRaw) -> None:
    first, second, third = item("A"), item("B"), item("C")
    shipping.fail_once.add("B")
    await send(first.to_bytes(), str(first.message_id))
    await send(first.to_bytes(), str(first.message_id))  # delivered again
    await send(b"{not an envelope", "poison-1")
    unknown = MessageEnvelope.of_event(Unregistered(aggregate_id="o1"))
    await send(unknown.to_bytes(), str(unknown.message_id))
    refused = item("X")  # a payload ItemAdded refuses: its price is not a number
    refused = refused.model_copy(update={"payload": {**refused.payload, "price": "a lot"}})
    await send(refused.to_bytes(), str(refused.message_id))
    await send(second.to_bytes(), str(second.message_id))
    await send(third.to_bytes(), str(third.message_id))
    await shipping.until(3)
    await asyncio.sleep(0.5)  # time for a wrong second effect to show
    assert sorted(shipping.effects) == ["A", "B", "C"]


async def test_rabbitmq(rabbitmq_namespace: RabbitMQNamespace) -> None:
    exchange, queue = rabbitmq_namespace.name("events"), rabbitmq_namespace.name("shipping")
    rabbitmq_namespace.name("shipping.dead")
    shipping = Shipping()
    subscriber = RabbitMQSubscriber(
        shipping.consumer, rabbitmq_namespace.url, exchange=exchange, queue=queue
    )
    await subscriber.start()
    publisher = RabbitMQPublisher(rabbitmq_namespace.url, exchange=exchange)
    await publisher.start()
    try:

        async def send(body: bytes, message_id: str) -> None:
            await publisher._send("orders.item", body, message_id, {})

        await run_scenario(shipping, send)
        connection = await aio_pika.connect_robust(rabbitmq_namespace.url)
        async with connection:
            channel = await connection.channel()
            dead = await channel.declare_queue(
                f"{queue}.dead", durable=True, arguments={"x-queue-type": "quorum"}
            )
            reasons = []
            async with asyncio.timeout(10):
                while len(reasons) < 3:
                    message = await dead.get(fail=False)
                    if message is None:
                        await asyncio.sleep(0.1)
                        continue
                    reasons.append(str(message.headers["x-poison-reason"]))
                    await message.ack()
    finally:
        await publisher.close()
        await subscriber.close()
    assert any("not a message envelope" in reason for reason in reasons)
    assert any("Unregistered" in reason for reason in reasons)
    assert any("ItemAdded" in reason and "price" in reason for reason in reasons)


async def test_nats_jetstream(nats_namespace: NatsNamespace) -> None:
    stream = nats_namespace.stream("events")
    shipping = Shipping()
    subscriber = NatsJetStreamSubscriber(
        shipping.consumer,
        nats_namespace.url,
        stream=stream,
        subject=nats_namespace.subject("orders.>"),
        durable="shipping",
        dead_letter_subject=nats_namespace.subject("orders.dead"),
        retry_delay=0.2,
    )
    await subscriber.start()
    client = await nats.connect(nats_namespace.url)
    try:
        jetstream = client.jetstream()

        async def send(body: bytes, message_id: str) -> None:
            await jetstream.publish(nats_namespace.subject("orders.item"), body)

        await run_scenario(shipping, send)
        dead = await jetstream.pull_subscribe(
            nats_namespace.subject("orders.dead"), durable="dead-reader", stream=stream
        )
        dead_letters = await dead.fetch(3, timeout=5)
        await asyncio.sleep(0.5)  # the subscriber sees its own dead letters, and leaves them
        info = await jetstream.stream_info(stream)
    finally:
        await client.close()
        await subscriber.close()
    assert info.state.messages == 7 + 3  # the 7 sent, and each dead letter once
    reasons = [message.headers["poison-reason"] for message in dead_letters]
    assert any("not a message envelope" in reason for reason in reasons)
    assert any("Unregistered" in reason for reason in reasons)
    assert any("ItemAdded" in reason and "price" in reason for reason in reasons)


async def test_redis_streams(redis_namespace: RedisNamespace) -> None:
    stream, dead = redis_namespace.key("events"), redis_namespace.key("events.dead")
    shipping = Shipping()
    subscriber = RedisStreamsSubscriber(
        shipping.consumer,
        redis_namespace.url,
        stream=stream,
        group="shipping",
        name="shipping-1",
        dead_letter_stream=dead,
        reclaim_after=0.3,
    )
    await subscriber.start()
    client: Redis = Redis.from_url(redis_namespace.url)
    try:

        async def send(body: bytes, message_id: str) -> None:
            await client.xadd(stream, {"message_id": message_id, "body": body})

        await run_scenario(shipping, send)
        entries = await client.xrange(dead)
    finally:
        await client.aclose()
        await subscriber.close()
    reasons = [fields[b"poison_reason"].decode() for _, fields in entries]
    assert any("not a message envelope" in reason for reason in reasons)
    assert any("Unregistered" in reason for reason in reasons)
    assert any("ItemAdded" in reason and "price" in reason for reason in reasons)


def test_a_body_that_is_not_an_envelope_is_poison() -> None:
    from cqrs_ddd_infrastructure_messaging import PoisonMessageError

    with pytest.raises(PoisonMessageError, match="not a message envelope"):
        Shipping().consumer.decode(b"[]")


class PriceQuoted(DomainEvent):
    """Version 2: version 1 called the price ``cost``."""

    schema_version: ClassVar[int] = 2
    sku: str
    price: Decimal


class CostRenamedToPrice(EventUpcaster):
    event_type = "PriceQuoted"
    source_version = 1

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        renamed = {key: value for key, value in data.items() if key != "cost"}
        return {**renamed, "price": data["cost"]}


async def test_a_message_of_an_older_schema_version_reaches_the_handler_upcast(
    redis_namespace: RedisNamespace,
) -> None:
    stream = redis_namespace.key("quotes")
    quotes: list[PriceQuoted] = []
    consumer = InboxConsumer(
        "quotes",
        decoder=EventDecoder(
            EventTypeRegistry([PriceQuoted]), UpcasterRegistry([CostRenamedToPrice()])
        ),
        inbox=InMemoryInbox(),
        uow_factory=InMemoryUnitOfWork,
    )

    async def remember(event: PriceQuoted) -> None:
        quotes.append(event)

    consumer.subscribe(PriceQuoted, remember)
    subscriber = RedisStreamsSubscriber(
        consumer,
        redis_namespace.url,
        stream=stream,
        group="quotes",
        name="quotes-1",
        dead_letter_stream=redis_namespace.key("quotes.dead"),
    )
    # an envelope written by a producer still at version 1
    current = MessageEnvelope.of_event(PriceQuoted(sku="A", price=Decimal("2.50")))
    old = current.model_copy(update={"schema_version": 1, "payload": {"sku": "A", "cost": "2.50"}})
    client: Redis = Redis.from_url(redis_namespace.url)
    await subscriber.start()
    try:
        await client.xadd(stream, {"message_id": str(old.message_id), "body": old.to_bytes()})
        async with asyncio.timeout(10):
            while not quotes:  # noqa: ASYNC110 - polling the handler's effect
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()
        await subscriber.close()
    assert [(quote.sku, quote.price) for quote in quotes] == [("A", Decimal("2.50"))]
