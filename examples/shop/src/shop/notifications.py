"""The notification service: a second process that tells customers what became of their orders.

    python -m shop.notifications [--database-url URL] [--group NAME] [--count N]

It reads the shop's events from the broker that ``RABBITMQ_URL``,
``NATS_URL`` or ``REDIS_URL`` names (see :mod:`shop.broker`), through an
inbox: each message is decoded (older event versions upcast), and the
notification is written to this service's own database
(``notifications.sqlite`` by default), in one transaction with the inbox's
claim of the message id. A message the broker delivers again is acknowledged
without a second notification. It notifies confirmed, cancelled, expired and
shipped orders; other events are acknowledged and ignored. With ``--count``,
it stops once that many notifications are stored (counting earlier runs').
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_advanced_core.upcasting import EventDecoder, UpcasterRegistry
from cqrs_ddd_core import DomainEvent, EventTypeRegistry
from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_infrastructure_messaging import InboxConsumer
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyInbox,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)
from shop.broker import Broker
from shop.domain import (
    MAX_ID_LENGTH,
    CustomerRegistered,
    ItemAddedV1ToV2,
    OrderCancelled,
    OrderConfirmed,
    OrderExpired,
    OrderShipped,
)
from shop.settings import Settings, SettingsError
from shop.wiring import ORDER_EVENTS, PRODUCT_EVENTS

PROG = "python -m shop.notifications"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///notifications.sqlite"

metadata = MetaData()
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(MAX_ID_LENGTH), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("message", String(500), nullable=False),
)


def message_for(event: DomainEvent) -> tuple[str, str]:
    """Return the kind of notification ``event`` makes, and its text."""
    if isinstance(event, OrderConfirmed):
        return "confirmed", f"order {event.aggregate_id} is confirmed: {event.total.amount} EUR"
    if isinstance(event, OrderCancelled):
        return "cancelled", f"order {event.aggregate_id} was cancelled: {event.reason}"
    if isinstance(event, OrderExpired):
        return "expired", f"order {event.aggregate_id} expired: it was not paid in time"
    if isinstance(event, OrderShipped):
        return "shipped", f"order {event.aggregate_id} is on its way with {event.carrier}"
    raise TypeError(f"no notification for {type(event).__name__}")


def build_consumer(engine: AsyncEngine, notified: asyncio.Queue[str]) -> InboxConsumer:
    """Return the inbox consumer that stores one notification per message."""

    async def notify(event: DomainEvent) -> None:
        uow = current_scope().uow
        if not isinstance(uow, SQLAlchemyUnitOfWork):
            raise TypeError("notifications are stored in a SQLAlchemy unit of work")
        kind, text = message_for(event)
        row = {"order_id": event.aggregate_id, "kind": kind, "message": text}
        await uow.connection.execute(insert(notifications).values(row))
        notified.put_nowait(text)

    consumer = InboxConsumer(
        "notifications",
        decoder=EventDecoder(
            EventTypeRegistry([*ORDER_EVENTS, *PRODUCT_EVENTS, CustomerRegistered]),
            UpcasterRegistry([ItemAddedV1ToV2()]),
        ),
        inbox=SQLAlchemyInbox(engine),
        uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
    )
    for event_type in (OrderConfirmed, OrderCancelled, OrderExpired, OrderShipped):
        consumer.subscribe(event_type, notify)
    return consumer


async def stored_count(connection: AsyncConnection) -> int:
    """Return how many notifications are stored."""
    return int(await connection.scalar(select(func.count()).select_from(notifications)) or 0)


async def serve(settings: Settings, broker: Broker, group: str, count: int | None) -> int:
    """Consume until SIGTERM or Ctrl-C (or until ``count`` notifications are stored)."""
    engine = create_engine(settings.database_url)
    await upgrade_schema(engine)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    notified: asyncio.Queue[str] = asyncio.Queue()
    subscriber = broker.subscriber(build_consumer(engine, notified), group=group)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stopping.set)
    await subscriber.start()
    print(f"notifications: reading {broker.kind} ({broker.space}) as {group}", flush=True)
    try:
        while not stopping.is_set():
            if count is not None:
                async with engine.connect() as connection:
                    if await stored_count(connection) >= count:
                        await asyncio.sleep(1.0)  # a redelivery still on its way is absorbed
                        break
            try:
                text = await asyncio.wait_for(notified.get(), timeout=0.2)
            except TimeoutError:
                continue
            print(f"notify: {text}", flush=True)
    finally:
        await subscriber.close()
        await engine.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and consume; the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[2])
    parser.add_argument("--database-url", metavar="URL", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--group", default="notifications", help="the consumer group's name")
    parser.add_argument("--count", type=int, help="stop once this many notifications are stored")
    arguments = parser.parse_args(argv)
    try:
        settings = Settings(database_url=arguments.database_url, source="--database-url")
    except SettingsError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    broker = Broker.from_environment()
    if broker is None:
        print(f"{PROG}: error: set RABBITMQ_URL, NATS_URL or REDIS_URL", file=sys.stderr)
        return 2
    return asyncio.run(serve(settings, broker, arguments.group, arguments.count))


if __name__ == "__main__":
    sys.exit(main())
