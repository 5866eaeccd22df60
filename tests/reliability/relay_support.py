"""What R8, R9 and R10 share: the accounts that write the outbox, the brokers, the checks.

A state-stored ``Account`` records a ``Deposited`` event per deposit, written
to ``cqrs_outbox`` with its state (``SQLAlchemyRepository``): these are the
outbox messages, keyed by account. ``Broker`` builds, for one of RabbitMQ,
NATS JetStream and Redis Streams and one test's names, the publisher a relay
uses, the subscriber a consumer uses, and an observer that reads back what
the broker holds in order (a second RabbitMQ queue bound to the exchange, the
JetStream stream, the Redis stream). The consumer's business effect is a row
in ``r_effects`` written in the handler's transaction (no unique key: only
the inbox keeps it to one per message).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import aio_pika
import nats
from redis.asyncio import Redis
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.upcasting.decoder import EventDecoder
from cqrs_ddd_core import AggregateRoot, DomainEvent, EventTypeRegistry
from cqrs_ddd_core.cqrs.scope import command_scope, current_scope
from cqrs_ddd_infrastructure_messaging import (
    InboxConsumer,
    MessageEnvelope,
    NatsJetStreamPublisher,
    NatsJetStreamSubscriber,
    RabbitMQPublisher,
    RabbitMQSubscriber,
    RedisStreamsPublisher,
    RedisStreamsSubscriber,
)
from cqrs_ddd_infrastructure_messaging.inbox import Received
from cqrs_ddd_infrastructure_messaging.publishing import BrokerPublisher
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyInbox,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
)
from cqrs_ddd_persistence_sqlalchemy.schema import outbox

BROKERS = ("rabbitmq", "nats", "redis")

scenario_tables = MetaData()
effects = Table(
    "r_effects",
    scenario_tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", Uuid(), nullable=False),
    Column("account", String(64), nullable=False),
    Column("version", Integer, nullable=False),
)
"""One row per business effect: what the inbox must keep to one per message."""


class Deposited(DomainEvent):
    """A deposit into an account: one outbox message."""

    amount: int


class Account(AggregateRoot):
    """A state-stored account; each deposit records a ``Deposited`` event."""

    balance: int = 0

    def deposit(self, amount: int) -> None:
        """Add ``amount`` and record it."""
        self.balance += amount
        self.record_event(Deposited(amount=amount))


def account_key(number: int) -> str:
    """The id of account ``number``."""
    return f"acct-{number:03d}"


async def deposit(engine: AsyncEngine, account: str, *, hold: float = 0.0) -> None:
    """Deposit 1 into ``account`` in a command's transaction, held open ``hold`` seconds."""
    repository = SQLAlchemyRepository(Account, engine)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            found = await repository.find(account) or Account(id=account)
            found.deposit(1)
            await repository.save(found)
            if hold:
                await asyncio.sleep(hold)
        await uow.commit()


async def write_deposits(
    engine: AsyncEngine,
    *,
    accounts: int,
    per_account: int,
    rate: float,
    seed: int,
    hold: float = 0.0,
) -> None:
    """Deposit ``per_account`` times into each account, about ``rate`` deposits a second.

    Each account's deposits go one after another (so its versions are its
    order); the accounts write concurrently, in a shuffled order, each
    transaction held open up to ``hold`` seconds (a random share of it).
    """
    chooser = random.Random(seed)
    pause = accounts / rate

    async def writer(number: int) -> None:
        await asyncio.sleep(chooser.random() * pause)
        for _ in range(per_account):
            await deposit(engine, account_key(number), hold=chooser.random() * hold)
            await asyncio.sleep(pause * (0.5 + chooser.random()))

    await asyncio.gather(*(writer(number) for number in range(accounts)))


async def outbox_rows(engine: AsyncEngine) -> list[tuple[UUID, str, bool]]:
    """Every outbox row: its message id, account and whether it is marked published."""
    query = select(outbox.c.message_id, outbox.c.partition_key, outbox.c.published_at)
    async with engine.connect() as connection:
        rows = (await connection.execute(query.order_by(outbox.c.id))).all()
    return [(row[0], row[1], row[2] is not None) for row in rows]


async def unpublished(engine: AsyncEngine) -> int:
    """How many outbox rows are not marked published."""
    query = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
    async with engine.connect() as connection:
        return int(await connection.scalar(query) or 0)


async def published_count(engine: AsyncEngine) -> int:
    """How many outbox rows are marked published."""
    query = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_not(None))
    async with engine.connect() as connection:
        return int(await connection.scalar(query) or 0)


async def drained(engine: AsyncEngine, total: int) -> bool:
    """Whether every outbox row is published and ``total`` effects are written."""
    return not await unpublished(engine) and sum((await effect_counts(engine)).values()) >= total


async def effect_counts(engine: AsyncEngine) -> Counter[UUID]:
    """How many business effects each message had."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(effects.c.message_id))
        return Counter(row[0] for row in rows)


class ShippingConsumer(InboxConsumer):
    """An inbox consumer that reports what became of each delivery to ``on_receive``."""

    on_receive: Callable[[str, str], None] | None = None

    async def receive(self, body: bytes) -> Received:
        """Handle ``body`` (see ``InboxConsumer``), then report its id and the outcome."""
        outcome = await super().receive(body)
        if self.on_receive is not None:
            self.on_receive(str(MessageEnvelope.from_bytes(body).message_id), outcome)
        return outcome


def shipping_consumer(
    engine: AsyncEngine, *, on_receive: Callable[[str, str], None] | None = None
) -> ShippingConsumer:
    """The consumer whose handler writes one ``r_effects`` row per deposit it handles."""
    consumer = ShippingConsumer(
        "shipping",
        decoder=EventDecoder(EventTypeRegistry([Deposited])),
        inbox=SQLAlchemyInbox(engine),
        uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
    )

    async def record(event: Deposited) -> None:
        uow = current_scope().uow
        assert isinstance(uow, SQLAlchemyUnitOfWork)
        await uow.connection.execute(
            insert(effects).values(
                message_id=event.event_id,
                account=event.aggregate_id,
                version=event.version,
            )
        )

    consumer.subscribe(Deposited, record)
    consumer.on_receive = on_receive
    return consumer


@dataclass(frozen=True)
class Broker:
    """One broker and the names one test uses on it (see the module docs).

    ``space`` names the RabbitMQ exchange (queues ``<space>.consumer``,
    ``<space>.consumer.dead`` and ``<space>.observer``), the JetStream stream
    (subjects ``<space>.>``) or the Redis stream key.
    """

    kind: str
    url: str
    space: str

    def topic(self, envelope: MessageEnvelope) -> str:
        """Where a message goes: a routing key, a subject or the one stream."""
        if self.kind == "nats":
            return f"{self.space}.{envelope.aggregate_id}"
        if self.kind == "redis":
            return self.space
        return f"deposits.{envelope.aggregate_id}"

    def publisher(self, url: str | None = None, *, timeout: float = 10.0) -> BrokerPublisher:
        """A publisher to the broker (at ``url``, e.g. through a fault proxy)."""
        target = url or self.url
        if self.kind == "rabbitmq":
            return RabbitMQPublisher(target, exchange=self.space, confirm_timeout=timeout)
        if self.kind == "nats":
            return NatsJetStreamPublisher(
                target, stream=self.space, subjects=[f"{self.space}.>"], ack_timeout=timeout
            )
        return RedisStreamsPublisher(target, command_timeout=timeout)

    def subscriber(
        self, consumer: InboxConsumer, *, name: str = "consumer", redelivery: float = 2.0
    ) -> RabbitMQSubscriber | NatsJetStreamSubscriber | RedisStreamsSubscriber:
        """A subscriber feeding ``consumer``; unacked messages come back after ``redelivery`` s.

        (RabbitMQ requeues at once when the consumer's connection drops.)
        """
        if self.kind == "rabbitmq":
            return RabbitMQSubscriber(
                consumer,
                self.url,
                exchange=self.space,
                queue=f"{self.space}.consumer",
                delivery_limit=50,
            )
        if self.kind == "nats":
            return NatsJetStreamSubscriber(
                consumer,
                self.url,
                stream=self.space,
                subject=f"{self.space}.>",
                durable="consumer",
                dead_letter_subject=f"{self.space}.dead",
                ack_wait=redelivery,
                retry_delay=0.2,
            )
        return RedisStreamsSubscriber(
            consumer,
            self.url,
            stream=self.space,
            group="consumer",
            name=name,
            dead_letter_stream=f"{self.space}.dead",
            reclaim_after=redelivery,
        )

    async def prepare(self) -> None:
        """Create what must exist before the first publish (the RabbitMQ queues)."""
        if self.kind != "rabbitmq":
            return
        connection = await aio_pika.connect_robust(self.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                self.space, aio_pika.ExchangeType.TOPIC, durable=True
            )
            observer = await channel.declare_queue(
                f"{self.space}.observer", durable=True, arguments={"x-queue-type": "quorum"}
            )
            await observer.bind(exchange, routing_key="#")

    async def observed(self) -> list[MessageEnvelope]:
        """Every message the broker holds for an observer, in the broker's order."""
        if self.kind == "rabbitmq":
            return await self._rabbitmq_observed()
        if self.kind == "nats":
            return await self._nats_observed()
        client = Redis.from_url(self.url)
        try:
            entries = await client.xrange(self.space)
        finally:
            await client.aclose()
        return [MessageEnvelope.from_bytes(fields[b"body"]) for _, fields in entries]

    async def _rabbitmq_observed(self) -> list[MessageEnvelope]:
        received: list[MessageEnvelope] = []
        connection = await aio_pika.connect_robust(self.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                f"{self.space}.observer", durable=True, arguments={"x-queue-type": "quorum"}
            )
            for _ in range(1_000_000):  # bounded: empties the queue
                message = await queue.get(fail=False, no_ack=True)
                if message is None:
                    break
                received.append(MessageEnvelope.from_bytes(message.body))
        return received

    async def _nats_observed(self) -> list[MessageEnvelope]:
        client = await nats.connect(self.url)
        try:
            jetstream = client.jetstream()
            count = (await jetstream.stream_info(self.space)).state.messages
            return [
                MessageEnvelope.from_bytes(
                    (await jetstream.get_msg(self.space, seq=seq)).data or b""
                )
                for seq in range(1, count + 1)
            ]
        finally:
            await client.close()


@dataclass(frozen=True)
class RelayScenario:
    """One run of R8, R9 or R10: the broker, the database (engine and URL), a folder, a seed."""

    broker: Broker
    engine: AsyncEngine
    database_url: str
    tmp_path: Path
    seed: int


@dataclass(frozen=True)
class Delivery:
    """What the observer saw, checked against the outbox."""

    lost: int
    unexpected: int
    duplicates: int
    inversions: int

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing unexpected, no account out of order (duplicates allowed)."""
        return self.lost == 0 and self.unexpected == 0 and self.inversions == 0


def check_observed(
    written: Sequence[tuple[UUID, str, bool]], observed: Sequence[MessageEnvelope]
) -> Delivery:
    """Count lost, unexpected and repeated messages, and per-account order inversions.

    Order is checked after dropping repeats (the first delivery of each message
    counts): each account's versions must strictly increase.
    """
    expected = {message_id for message_id, _, _ in written}
    seen: set[UUID] = set()
    last: dict[str, int] = {}
    duplicates = inversions = unexpected = 0
    for envelope in observed:
        if envelope.message_id not in expected:
            unexpected += 1
            continue
        if envelope.message_id in seen:
            duplicates += 1
            continue
        seen.add(envelope.message_id)
        account, version = envelope.aggregate_id or "", envelope.version or 0
        if version <= last.get(account, 0):
            inversions += 1
        last[account] = version
    return Delivery(len(expected - seen), unexpected, duplicates, inversions)


async def until(
    condition: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.05
) -> None:
    """Wait until ``condition()`` holds; ``TimeoutError`` after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - polling the database or broker
            await asyncio.sleep(every)
