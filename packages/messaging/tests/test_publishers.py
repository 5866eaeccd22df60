"""The envelope, and each broker's publisher against the real broker on this machine.

Each test reads back, with the broker's own client, what the publisher sent:
the body is the envelope, the broker headers carry its identity, and the
publisher returned only once the broker confirmed. Unroutable (RabbitMQ) and
duplicate (JetStream) messages, and a broker that does not answer, are shown
too.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import aio_pika
import nats
import pytest
from redis.asyncio import Redis

from cqrs_ddd_core import DomainEvent
from cqrs_ddd_infrastructure_messaging import (
    BrokerUnavailableError,
    EnvelopeError,
    MessageEnvelope,
    NatsJetStreamPublisher,
    PublishNotConfirmedError,
    RabbitMQPublisher,
    RedisStreamsPublisher,
)
from cqrs_ddd_testing import NatsNamespace, RabbitMQNamespace, RedisNamespace


class ItemAdded(DomainEvent):
    sku: str
    price: Decimal


def envelope(sku: str = "WIDGET") -> MessageEnvelope:
    event = ItemAdded(
        sku=sku,
        price=Decimal("9.90"),
        aggregate_id="order-1",
        aggregate_type="Order",
        version=3,
        correlation_id="corr-1",
    )
    return MessageEnvelope.of_event(event, position=42)


# -- the envelope -------------------------------------------------------------------------


def test_an_envelope_reads_back_from_its_bytes() -> None:
    sent = envelope()
    assert MessageEnvelope.from_bytes(sent.to_bytes()) == sent
    assert sent.payload == {"sku": "WIDGET", "price": "9.90"}
    assert sent.headers() == {
        "message-id": str(sent.message_id),
        "event-type": "ItemAdded",
        "schema-version": "1",
        "aggregate-id": "order-1",
        "aggregate-type": "Order",
        "aggregate-version": "3",
        "correlation-id": "corr-1",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "$"),
        (b"[1, 2]", "$"),
        (b'{"event_type": "X"}', "message_id"),
        (b'{"message_id": "not-a-uuid", "event_type": "X"}', "message_id"),
    ],
)
def test_a_body_that_is_not_an_envelope_names_the_field(body: bytes, field: str) -> None:
    with pytest.raises(EnvelopeError) as refused:
        MessageEnvelope.from_bytes(body)
    assert refused.value.field == field


# -- RabbitMQ -----------------------------------------------------------------------------


async def test_rabbitmq_publishes_a_confirmed_persistent_message(
    rabbitmq_namespace: RabbitMQNamespace,
) -> None:
    exchange, queue_name = rabbitmq_namespace.name("events"), rabbitmq_namespace.name("orders")
    connection = await aio_pika.connect_robust(rabbitmq_namespace.url)
    async with (
        connection,
        RabbitMQPublisher(rabbitmq_namespace.url, exchange=exchange) as publisher,
    ):
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True)
        await queue.bind(exchange, routing_key="orders.#")
        sent = envelope()

        await publisher.publish_envelope(sent, topic="orders.item-added")

        message = await queue.get(timeout=5)
        await message.ack()
    assert MessageEnvelope.from_bytes(message.body) == sent
    assert message.message_id == str(sent.message_id)
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.headers["event-type"] == "ItemAdded"


async def test_rabbitmq_refuses_to_call_an_unroutable_message_published(
    rabbitmq_namespace: RabbitMQNamespace,
) -> None:
    exchange = rabbitmq_namespace.name("nobody-listens")
    async with RabbitMQPublisher(rabbitmq_namespace.url, exchange=exchange) as publisher:
        sent = envelope()
        with pytest.raises(PublishNotConfirmedError, match="unroutable") as refused:
            await publisher.publish_envelope(sent, topic="orders.item-added")
    assert refused.value.message_id == str(sent.message_id)
    assert refused.value.refused  # the broker answered about this message: its fault


async def test_rabbitmq_says_a_closed_channel_is_no_fault_of_the_message(
    rabbitmq_namespace: RabbitMQNamespace,
) -> None:
    exchange = rabbitmq_namespace.name("closing")
    async with RabbitMQPublisher(rabbitmq_namespace.url, exchange=exchange) as publisher:
        channel = publisher._channel
        assert channel is not None
        await channel.close()  # as a broker restart would, under the publisher's feet
        with pytest.raises(PublishNotConfirmedError) as away:
            await publisher.publish_envelope(envelope(), topic="orders.item-added")
    assert not away.value.refused  # a relay backs off and counts nothing


# -- NATS JetStream -------------------------------------------------------------------------


async def test_jetstream_publishes_acknowledged_and_drops_a_duplicate(
    nats_namespace: NatsNamespace,
) -> None:
    stream, subject = nats_namespace.stream("events"), nats_namespace.subject("orders.added")
    publisher = NatsJetStreamPublisher(
        nats_namespace.url, stream=stream, subjects=[nats_namespace.subject(">")]
    )
    async with publisher:
        sent = envelope()
        await publisher.publish_envelope(sent, topic=subject)
        await publisher.publish_envelope(sent, topic=subject)  # the relay's retry, say

    assert publisher.duplicates == 1
    client = await nats.connect(nats_namespace.url)
    try:
        jetstream = client.jetstream()
        assert (await jetstream.stream_info(stream)).state.messages == 1
        stored = await jetstream.get_msg(stream, seq=1)
    finally:
        await client.close()
    assert MessageEnvelope.from_bytes(stored.data or b"") == sent
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == str(sent.message_id)
    assert stored.headers["event-type"] == "ItemAdded"


# -- Redis Streams --------------------------------------------------------------------------


async def test_redis_appends_the_envelope_with_its_message_id(
    redis_namespace: RedisNamespace,
) -> None:
    stream = redis_namespace.key("orders")
    async with RedisStreamsPublisher(redis_namespace.url) as publisher:
        sent = envelope()
        await publisher.publish_envelope(sent, topic=stream)
        entry_id = publisher.last_entry_id

    client: Redis = Redis.from_url(redis_namespace.url)
    try:
        [(found_id, fields)] = await client.xrange(stream)
    finally:
        await client.aclose()
    assert found_id.decode() == entry_id
    assert fields[b"message_id"].decode() == str(sent.message_id)
    assert fields[b"content_type"] == b"application/json"
    assert MessageEnvelope.from_bytes(fields[b"body"]) == sent


# -- a broker that does not answer ----------------------------------------------------------


@pytest.mark.parametrize(
    "publisher",
    [
        RabbitMQPublisher("amqp://guest:secret@127.0.0.1:1/", exchange="x", connect_timeout=2),
        NatsJetStreamPublisher("nats://127.0.0.1:1", stream="S", subjects=["s"], connect_timeout=2),
        RedisStreamsPublisher("redis://127.0.0.1:1/0", connect_timeout=2),
    ],
    ids=["rabbitmq", "nats", "redis"],
)
async def test_a_broker_that_does_not_answer_is_a_clear_error_at_start(publisher: object) -> None:
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=r"127\.0\.0\.1:1") as refused:
        await asyncio.wait_for(publisher.start(), timeout=15)  # type: ignore[attr-defined]
    assert time.monotonic() - started < 10
    assert "secret" not in str(refused.value)
