from __future__ import annotations

import aio_pika
import aio_pika.exceptions
import pytest

from cqrs_ddd_testing import RabbitMQNamespace, delete_rabbitmq_namespace, new_rabbitmq_namespace


async def test_a_queue_named_in_the_namespace_carries_one_message(
    rabbitmq_namespace: RabbitMQNamespace,
) -> None:
    # given
    connection = await aio_pika.connect(rabbitmq_namespace.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            rabbitmq_namespace.name("events"), aio_pika.ExchangeType.FANOUT
        )
        queue = await channel.declare_queue(rabbitmq_namespace.name("inbox"))
        await queue.bind(exchange)
        # when
        await exchange.publish(aio_pika.Message(body=b"OrderCreated"), routing_key="")
        message = await queue.get(timeout=5)
        await message.ack()
    # then
    assert message.body == b"OrderCreated"


async def test_cleaning_a_namespace_deletes_the_queues_and_exchanges_it_named(
    rabbitmq_namespace: RabbitMQNamespace,
) -> None:
    # given
    queue_name = rabbitmq_namespace.name("inbox")
    exchange_name = rabbitmq_namespace.name("events")
    connection = await aio_pika.connect(rabbitmq_namespace.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue_name, durable=True)
        await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC)
        # when
        await delete_rabbitmq_namespace(rabbitmq_namespace)
        # then
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await (await connection.channel()).declare_queue(queue_name, passive=True)
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await (await connection.channel()).get_exchange(exchange_name, ensure=True)


async def test_cleaning_a_namespace_whose_names_were_never_declared_succeeds(
    rabbitmq_namespace: RabbitMQNamespace,
) -> None:
    # given
    rabbitmq_namespace.name("never-declared")
    # when
    await delete_rabbitmq_namespace(rabbitmq_namespace)
    # then
    assert rabbitmq_namespace.names == (f"{rabbitmq_namespace.prefix}.never-declared",)


def test_a_namespace_records_each_name_once_in_order() -> None:
    # given
    namespace = new_rabbitmq_namespace("amqp://guest:guest@127.0.0.1:1/")
    # when
    namespace.name("inbox")
    namespace.name("events")
    namespace.name("inbox")
    # then
    assert namespace.names == (f"{namespace.prefix}.inbox", f"{namespace.prefix}.events")


async def test_cleaning_a_namespace_without_names_does_not_connect() -> None:
    # given
    namespace = new_rabbitmq_namespace("amqp://guest:guest@127.0.0.1:1/")
    # when / then (port 1 is closed: connecting would raise)
    await delete_rabbitmq_namespace(namespace)
