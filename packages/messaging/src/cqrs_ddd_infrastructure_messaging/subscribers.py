"""Broker subscribers: deliver each message to an :class:`~.inbox.InboxConsumer`, ack after.

Each subscriber acknowledges a message only once the consumer's transaction
committed (or the inbox said it was handled before); a message whose handler
failed is left to the broker's redelivery; a poison message (see
:class:`~.inbox.PoisonMessageError`) goes to the broker's dead-letter route
with its reason, and the subscriber goes on.

* :class:`RabbitMQSubscriber`: a quorum queue bound to the exchange, with a
  delivery limit and a dead-letter exchange (RabbitMQ has no default limit:
  a message that keeps failing is dead-lettered by the broker after
  ``delivery_limit`` deliveries); a poison message is copied to the
  dead-letter queue with an ``x-poison-reason`` header, then acknowledged.
* :class:`NatsJetStreamSubscriber`: a durable pull consumer with explicit
  acks; a failing message is nak'ed (redelivered after ``retry_delay``); a
  poison message is published to the dead-letter subject with a
  ``poison-reason`` header, then acknowledged (a dead letter that comes back
  to the subscriber, its subject inside the subscribed ones, is acknowledged
  and left alone).
* :class:`RedisStreamsSubscriber`: a consumer group; a failing message stays
  pending and is reclaimed with ``XAUTOCLAIM`` once idle for ``reclaim_after``
  seconds; a poison message is added to the dead-letter stream with its
  reason, then acknowledged (``XACK``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import aio_pika
import nats
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from cqrs_ddd_core.failpoints import async_failpoint
from cqrs_ddd_infrastructure_messaging.inbox import InboxConsumer, PoisonMessageError

logger = logging.getLogger(__name__)


class RabbitMQSubscriber:
    """Consumes queue ``queue`` (bound to ``exchange`` by ``routing_keys``) into ``consumer``."""

    def __init__(
        self,
        consumer: InboxConsumer,
        url: str | None = None,
        *,
        exchange: str,
        queue: str,
        routing_keys: Sequence[str] = ("#",),
        delivery_limit: int = 5,
        prefetch: int = 10,
    ) -> None:
        self.consumer = consumer
        self.url = url or os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
        self.exchange = exchange
        self.queue = queue
        self.dead_letter_queue = f"{queue}.dead"
        self.routing_keys = list(routing_keys)
        self.delivery_limit = delivery_limit
        self.prefetch = prefetch
        self._connection: AbstractRobustConnection | None = None
        self._tag: str | None = None

    async def start(self) -> None:
        """Declare the queues and start consuming."""
        self._connection = await aio_pika.connect_robust(self.url, timeout=5)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        self._channel = channel
        dead_exchange = await channel.declare_exchange(
            self.dead_letter_queue, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead = await channel.declare_queue(
            self.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(dead_exchange)
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            self.queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": self.dead_letter_queue,
            },
        )
        for key in self.routing_keys:
            await queue.bind(exchange, routing_key=key)
        self._dead_exchange = dead_exchange
        self._tag = await queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            await self.consumer.receive(message.body)
        except PoisonMessageError as poison:
            logger.error("%s; dead-lettered", poison)
            headers = {**(message.headers or {}), "x-poison-reason": poison.reason}
            await self._dead_exchange.publish(
                aio_pika.Message(
                    message.body,
                    headers=headers,
                    message_id=message.message_id,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key="",
            )
            await message.ack()
            return
        except Exception:
            logger.exception("handling message %s failed; redelivered", message.message_id)
            await message.nack(requeue=True)
            return
        await async_failpoint("consumer.after_handle_before_ack")
        await message.ack()

    async def close(self) -> None:
        """Stop consuming and close the connection."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


class _PullingSubscriber:
    """What the pulling subscribers share: a background task, stopped by :meth:`close`."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def _run(self, work: Any, name: str) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(work, name=name)

    async def _stop_task(self) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class NatsJetStreamSubscriber(_PullingSubscriber):
    """Pulls from JetStream stream ``stream`` (durable consumer ``durable``) into ``consumer``."""

    def __init__(
        self,
        consumer: InboxConsumer,
        url: str | None = None,
        *,
        stream: str,
        subject: str,
        durable: str,
        dead_letter_subject: str,
        ack_wait: float = 30.0,
        retry_delay: float = 1.0,
        batch: int = 10,
    ) -> None:
        self.consumer = consumer
        self.url = url or os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.dead_letter_subject = dead_letter_subject
        self.ack_wait = ack_wait
        self.retry_delay = retry_delay
        self.batch = batch
        self._client: Client | None = None
        super().__init__()

    async def start(self) -> None:
        """Subscribe (the stream must exist: the publisher creates it) and start pulling."""
        self._client = await nats.connect(self.url, connect_timeout=5)
        jetstream = self._client.jetstream()
        try:
            await jetstream.stream_info(self.stream)
        except NotFoundError:
            await jetstream.add_stream(StreamConfig(name=self.stream, subjects=[self.subject]))
        self._subscription = await jetstream.pull_subscribe(
            self.subject,
            durable=self.durable,
            stream=self.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait),
        )
        self._jetstream = jetstream
        self._run(self._pull(), f"jetstream-{self.durable}")

    async def _pull(self) -> None:
        while not self._stopping.is_set():
            try:
                messages = await self._subscription.fetch(self.batch, timeout=0.5)
            except TimeoutError:
                continue
            except Exception:
                logger.exception("fetching from %s failed", self.stream)
                await asyncio.sleep(self.retry_delay)
                continue
            for message in messages:
                try:
                    await self._handle(message)
                except Exception:  # an ack or dead-letter publish that failed: redelivered
                    logger.exception("settling a message of %s failed", self.stream)
                    await asyncio.sleep(self.retry_delay)

    async def _handle(self, message: Any) -> None:
        if message.subject == self.dead_letter_subject:  # our own dead letter: not for us
            await message.ack()
            return
        try:
            await self.consumer.receive(message.data)
        except PoisonMessageError as poison:
            logger.error("%s; dead-lettered", poison)
            headers = {**(message.headers or {}), "poison-reason": poison.reason}
            headers.pop("Nats-Msg-Id", None)
            await self._jetstream.publish(self.dead_letter_subject, message.data, headers=headers)
            await message.ack()
            return
        except Exception:
            logger.exception("handling a message failed; redelivered")
            await message.nak(delay=self.retry_delay)
            return
        await async_failpoint("consumer.after_handle_before_ack")
        await message.ack()

    async def close(self) -> None:
        """Stop pulling and close the connection."""
        await self._stop_task()
        client, self._client = self._client, None
        if client is not None:
            await client.close()


def _entries(answer: Any) -> list[Any]:
    return [entry for _, entries in answer or [] for entry in entries]


class RedisStreamsSubscriber(_PullingSubscriber):
    """Reads stream ``stream`` in consumer group ``group`` (as ``name``) into ``consumer``."""

    def __init__(
        self,
        consumer: InboxConsumer,
        url: str | None = None,
        *,
        stream: str,
        group: str,
        name: str,
        dead_letter_stream: str,
        reclaim_after: float = 30.0,
        batch: int = 10,
    ) -> None:
        self.consumer = consumer
        self.url = url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.stream = stream
        self.group = group
        self.name = name
        self.dead_letter_stream = dead_letter_stream
        self.reclaim_after = reclaim_after
        self.batch = batch
        self._client: Redis | None = None
        super().__init__()

    async def start(self) -> None:
        """Create the group (reading from the stream's start) and start reading."""
        self._client = Redis.from_url(self.url, socket_connect_timeout=5)
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        self._run(self._read(), f"redis-{self.group}-{self.name}")

    async def _read(self) -> None:
        assert self._client is not None  # noqa: S101 - started
        client = self._client
        while not self._stopping.is_set():
            try:
                claimed: Any = await client.xautoclaim(
                    self.stream,
                    self.group,
                    self.name,
                    min_idle_time=int(self.reclaim_after * 1000),
                    count=self.batch,
                )
                for entry_id, fields in claimed[1]:  # Redis 7 adds a third element
                    await self._handle(entry_id, fields)
                answer: Any = await client.xreadgroup(
                    self.group, self.name, {self.stream: ">"}, count=self.batch, block=500
                )
                for entry_id, fields in _entries(answer):
                    await self._handle(entry_id, fields)
            except Exception:  # the server went away, or an ack failed: pending, reclaimed
                logger.exception("reading %s failed", self.stream)
                await asyncio.sleep(1.0)

    async def _handle(self, entry_id: Any, fields: Any) -> None:
        assert self._client is not None  # noqa: S101 - started
        body = fields.get(b"body", b"")
        try:
            await self.consumer.receive(body)
        except PoisonMessageError as poison:
            logger.error("%s; dead-lettered", poison)
            dead = {**fields, b"poison_reason": poison.reason.encode()}
            await self._client.xadd(self.dead_letter_stream, dead)
            await self._client.xack(self.stream, self.group, entry_id)
            return
        except Exception:
            logger.exception("handling entry %s failed; reclaimed later", entry_id)
            return
        await async_failpoint("consumer.after_handle_before_ack")
        await self._client.xack(self.stream, self.group, entry_id)

    async def close(self) -> None:
        """Stop reading and close the connection."""
        await self._stop_task()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
