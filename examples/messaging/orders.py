"""The orders service: placing an order publishes ``OrderPlaced`` through the outbox.

    python examples/messaging/orders.py DATABASE_URL STREAM ORDER_ID...

Each ``PlaceOrder`` command saves a state-stored ``Order``; its event goes to
``cqrs_outbox`` in the command's transaction. The relay then publishes the
outbox to the Redis stream ``STREAM`` (at ``REDIS_URL``), marking each message
sent once Redis confirmed it. A long-running service would ``await
worker.start()`` instead of ``drain()`` and keep the relay running.
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

from cqrs_ddd_core import AggregateRoot, Command, DomainEvent, HandlerRegistry, Mediator
from cqrs_ddd_infrastructure_messaging import (
    OutboxTableRelay,
    OutboxWorker,
    RedisStreamsPublisher,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyOutboxStore,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
    SQLAlchemyWorkerStorage,
    create_engine,
    upgrade_schema,
)


class OrderPlaced(DomainEvent):
    customer: str
    total: Decimal


class Order(AggregateRoot):
    customer: str = ""
    total: Decimal = Decimal(0)

    def place(self, customer: str, total: Decimal) -> None:
        self.customer, self.total = customer, total
        self.record_event(OrderPlaced(customer=customer, total=total))


class PlaceOrder(Command):
    order_id: str
    customer: str
    total: Decimal


async def place_orders(database_url: str, stream: str, order_ids: list[str]) -> None:
    engine = create_engine(database_url)
    await upgrade_schema(engine)
    orders = SQLAlchemyRepository(Order, engine)
    registry = HandlerRegistry()

    @registry.command_handler(PlaceOrder)
    async def place(command: PlaceOrder) -> None:
        order = Order(id=command.order_id)
        order.place(command.customer, command.total)
        await orders.save(order)  # the state and the outbox row, in one transaction

    mediator = Mediator(registry=registry, uow_factory=lambda: SQLAlchemyUnitOfWork(engine))
    for number, order_id in enumerate(order_ids, start=1):
        total = Decimal("9.90") * number
        await mediator.send(PlaceOrder(order_id=order_id, customer=f"c-{number}", total=total))

    async with RedisStreamsPublisher() as publisher:
        relay = OutboxTableRelay(
            name="orders",
            outbox=SQLAlchemyOutboxStore(engine),
            storage=SQLAlchemyWorkerStorage(engine),
            publisher=publisher,
            topic=lambda envelope: stream,
        )
        await OutboxWorker(relay, owner="orders-1").drain()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(place_orders(sys.argv[1], sys.argv[2], sys.argv[3:]))
