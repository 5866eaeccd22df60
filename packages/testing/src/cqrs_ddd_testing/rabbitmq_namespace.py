"""Exchange and queue names per test on a shared RabbitMQ vhost, and their cleanup.

AMQP 0-9-1 cannot list what exists, so the namespace records every name it hands
out through `RabbitMQNamespace.name`; `delete_rabbitmq_namespace` deletes a queue
and an exchange of each recorded name. Names the test made by hand, without
`name()`, are not removed (server-named, exclusive and auto-delete queues go away
with their connection anyway).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
import aio_pika.abc
import aio_pika.exceptions

from cqrs_ddd_testing.naming import unique_name

__all__ = ["RabbitMQNamespace", "delete_rabbitmq_namespace", "new_rabbitmq_namespace"]


class RabbitMQNamespace:
    """The broker URL and a name prefix that belongs to one test alone."""

    def __init__(self, *, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._names: list[str] = []

    def __repr__(self) -> str:
        return f"RabbitMQNamespace(prefix={self.prefix!r}, names={self._names!r})"

    def name(self, suffix: str) -> str:
        """Return the exchange or queue name `<prefix>.<suffix>` and record it for cleanup."""
        name = f"{self.prefix}.{suffix}"
        if name not in self._names:
            self._names.append(name)
        return name

    @property
    def names(self) -> tuple[str, ...]:
        """The names handed out so far, in order."""
        return tuple(self._names)


def new_rabbitmq_namespace(url: str) -> RabbitMQNamespace:
    """Return a namespace on `url` with a fresh unique prefix (nothing is sent)."""
    return RabbitMQNamespace(url=url, prefix=unique_name())


async def delete_rabbitmq_namespace(
    namespace: RabbitMQNamespace, *, connect_timeout: float = 10.0
) -> None:
    """Delete the queue and the exchange of every name the namespace handed out.

    A name that was never declared, or was already deleted, is not an error.
    Without recorded names it does not connect at all. Connection errors propagate.
    """
    if not namespace.names:
        return
    connection = await aio_pika.connect(namespace.url, timeout=connect_timeout)
    async with connection:
        for name in namespace.names:
            await _delete_queue_and_exchange(connection, name)


async def _delete_queue_and_exchange(
    connection: aio_pika.abc.AbstractConnection, name: str
) -> None:
    async with _channel_where_missing_is_gone(connection) as channel:
        await channel.queue_delete(name)
    async with _channel_where_missing_is_gone(connection) as channel:
        await channel.exchange_delete(name)


@asynccontextmanager
async def _channel_where_missing_is_gone(
    connection: aio_pika.abc.AbstractConnection,
) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    # RabbitMQ answers delete-ok for a missing queue or exchange, but AMQP 0-9-1
    # allows a 404 (NOT_FOUND) that closes the channel: a fresh channel per
    # deletion, and NOT_FOUND taken as "already gone", keep the teardown safe.
    channel = await connection.channel()
    try:
        yield channel
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return
    await channel.close()
