"""The notifications service: another process, consuming ``OrderPlaced`` through its inbox.

    python examples/messaging/notifications.py DATABASE_URL STREAM [COUNT]

It reads the Redis stream ``STREAM`` (at ``REDIS_URL``) in the consumer group
``notifications``. Each message is decoded through this service's event type
registry, and the handler records the notification in this service's own
database, in one transaction with the inbox's claim of the message id: a
message Redis delivers again is acknowledged without a second notification.
With ``COUNT``, it stops one second after it has sent that many (counting
the notifications of earlier runs).
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

from sqlalchemy import Column, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cqrs_ddd_advanced_core.upcasting import EventDecoder
from cqrs_ddd_core import DomainEvent, EventTypeRegistry
from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_infrastructure_messaging import InboxConsumer, RedisStreamsSubscriber
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyInbox,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)


class OrderPlaced(DomainEvent):  # this service's copy of the orders service's contract
    customer: str
    total: Decimal


sent = Table(
    "notifications_sent",
    MetaData(),
    Column("order_id", String(64), nullable=False),
    Column("customer", String(64), nullable=False),
)


async def notify(database_url: str, stream: str, count: int | None) -> None:
    engine = create_engine(database_url)
    await upgrade_schema(engine)
    async with engine.begin() as connection:
        await connection.run_sync(sent.metadata.create_all)

    enough = asyncio.Event()

    async def send_notification(event: OrderPlaced) -> None:
        uow = current_scope().uow
        assert isinstance(uow, SQLAlchemyUnitOfWork)
        row = {"order_id": event.aggregate_id, "customer": event.customer}
        await uow.connection.execute(insert(sent).values(row))
        print(f"notify {event.customer}: order {event.aggregate_id}, {event.total}", flush=True)
        if count is not None and await sent_count(uow.connection) >= count:
            enough.set()

    consumer = InboxConsumer(
        "notifications",
        decoder=EventDecoder(EventTypeRegistry([OrderPlaced])),
        inbox=SQLAlchemyInbox(engine),
        uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
    )
    consumer.subscribe(OrderPlaced, send_notification)
    subscriber = RedisStreamsSubscriber(
        consumer,
        stream=stream,
        group="notifications",
        name="notifications-1",
        dead_letter_stream=f"{stream}.dead",
    )
    await subscriber.start()
    print("ready", flush=True)
    try:
        await enough.wait()  # forever without COUNT
        await asyncio.sleep(1.0)  # a redelivery still on its way is recognised, not sent
    finally:
        await subscriber.close()
        await engine.dispose()


async def sent_count(connection: AsyncConnection) -> int:
    return int(await connection.scalar(select(func.count()).select_from(sent)) or 0)


if __name__ == "__main__":
    count = int(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio.run(notify(sys.argv[1], sys.argv[2], count))
