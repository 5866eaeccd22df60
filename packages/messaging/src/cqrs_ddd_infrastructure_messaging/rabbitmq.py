"""``RabbitMQPublisher``: publishes to a RabbitMQ exchange with publisher confirms (aio-pika).

Each message is persistent, sent ``mandatory`` on a channel with publisher
confirms: ``publish`` returns once the broker confirmed it, and raises
:class:`~.errors.PublishNotConfirmedError` when the broker refused it (nack),
could not route it to any queue (returned, as ``mandatory`` asks), or did not
answer within ``confirm_timeout``. The exchange (``topic`` type, durable) is
declared at :meth:`RabbitMQPublisher.start`; the routing key is the topic.
The message's id is the event id, its content type JSON, and the envelope's
headers go with it.

The URL comes from ``RABBITMQ_URL`` when none is given. A broker that does
not answer at start raises :class:`~.errors.BrokerUnavailableError` within
``connect_timeout`` seconds, naming the URL (password hidden).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    DeliveryError,
    PublishError,
)

from cqrs_ddd_infrastructure_messaging.envelope import CONTENT_TYPE
from cqrs_ddd_infrastructure_messaging.errors import (
    BrokerUnavailableError,
    PublishNotConfirmedError,
    redacted,
)
from cqrs_ddd_infrastructure_messaging.publishing import BrokerPublisher

BROKER = "RabbitMQ"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


class RabbitMQPublisher(BrokerPublisher):
    """Publishes to ``exchange`` on the broker at ``url`` (``RABBITMQ_URL`` by default)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        exchange: str,
        connect_timeout: float = 5.0,
        confirm_timeout: float = 10.0,
    ) -> None:
        self.url = url or os.environ.get("RABBITMQ_URL", DEFAULT_URL)
        self.exchange_name = exchange
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def start(self) -> None:
        """Connect, open a confirming channel and declare the exchange."""
        try:
            self._connection = await aio_pika.connect_robust(self.url, timeout=self.connect_timeout)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as error:
            raise BrokerUnavailableError(
                BROKER, redacted(self.url), f"{type(error).__name__}: {error}"
            ) from None
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self._channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def close(self) -> None:
        """Close the connection."""
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None:
            await connection.close()

    async def _send(
        self, topic: str, body: bytes, message_id: str, headers: Mapping[str, str]
    ) -> None:
        if self._exchange is None:
            raise BrokerUnavailableError(BROKER, redacted(self.url), "not started: call start()")
        message = aio_pika.Message(
            body,
            message_id=message_id,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=dict(headers),
        )
        try:
            await self._exchange.publish(
                message, routing_key=topic, mandatory=True, timeout=self.confirm_timeout
            )
        except PublishError:
            reason = "returned unroutable: no queue is bound to its routing key"
            raise PublishNotConfirmedError(BROKER, topic, message_id, reason) from None
        except DeliveryError as error:
            reason = f"refused by the broker ({error.frame!r})"
            raise PublishNotConfirmedError(BROKER, topic, message_id, reason) from None
        except TimeoutError:
            reason = f"no confirmation within {self.confirm_timeout} s"
            raise PublishNotConfirmedError(
                BROKER, topic, message_id, reason, refused=False
            ) from None
        except (AMQPError, ChannelInvalidStateError, ConnectionError) as error:
            # the channel or the connection went away (a restart, a reconnection under way)
            reason = f"{type(error).__name__}: {error}"
            raise PublishNotConfirmedError(
                BROKER, topic, message_id, reason, refused=False
            ) from None
