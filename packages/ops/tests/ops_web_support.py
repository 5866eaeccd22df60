"""A shop's data for the operations page's tests, with something wrong in each part.

`populate` gives a database a customer, a product, a paid order (its saga
completed) and an unpaid one (its expiry pending), a recurring schedule; then
what an operator comes to the page for: a projection dead letter (an event
whose stored payload the projector cannot read, mended afterwards so that a
replay applies it), a saga parked while compensating, and an outbox message the
relay set aside with an error that holds markup.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cqrs_ddd_ops.schedules import list_schedules
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionWorker
from cqrs_ddd_advanced_core.sagas import SagaFeed
from cqrs_ddd_advanced_core.workers import DeadLetter
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_persistence_sqlalchemy.schema import events, outbox, sagas
from shop.commands import (
    AddProduct,
    CheckOut,
    GenerateMonthlyReport,
    Line,
    PlaceOrder,
    RegisterCustomer,
)
from shop.wiring import build_shop, projection_worker

HOSTILE_ERROR = '<script>alert("owned")</script> broker refused'
"""The error of the outbox message set aside: markup that the page must show as text."""

GHOST = "ghost"
"""The product whose ProductAdded event is stored without its price."""

GHOST_PRICE = {"amount": "7.00", "currency": "EUR"}


@dataclass(frozen=True)
class Populated:
    """What `populate` made, by id."""

    engine: AsyncEngine
    projections: ProjectionWorker
    paid_order: str
    unpaid_order: str
    parked_saga: str
    expiry: str
    dead_letter_position: int
    failed_message: int


async def populate(engine: AsyncEngine) -> Populated:
    """Fill the database (see the module docstring) and return what is where."""
    shop = await build_shop(engine)
    send = shop.mediator.send
    await send(RegisterCustomer(customer_id="ada", name="Ada"))
    await send(AddProduct(sku="tea", name="Tea", price=Decimal("4.50"), stock=10))
    paid: str = (
        await send(PlaceOrder(customer_id="ada", lines=[Line(sku="tea", quantity=2)]))
    ).result
    await send(CheckOut(order_id=paid, payment_method="card"))
    unpaid: str = (
        await send(PlaceOrder(customer_id="ada", lines=[Line(sku="tea", quantity=1)]))
    ).result
    await shop.schedules.schedule_recurring(
        "monthly-report", GenerateMonthlyReport(), cron="0 6 1 * *"
    )
    position = await append_undecodable_product(engine, GHOST)
    worker = projection_worker(engine)
    await worker.catch_up()  # the ghost's event fails max_attempts times, then is set aside
    assert [letter.position for letter in await worker.dead_letters("shop.products")] == [position]
    await mend_product(engine, position)
    parked = await park_saga(engine, paid)
    message = await set_aside_outbox_message(engine)
    expiry = await pending_expiry(engine, unpaid)
    return Populated(engine, worker, paid, unpaid, parked, expiry, position, message)


async def append_undecodable_product(engine: AsyncEngine, sku: str) -> int:
    """Append a ProductAdded for ``sku`` whose payload lacks the price; return its position."""
    row: dict[str, Any] = {
        "stream_id": sku,
        "version": 1,
        "event_id": uuid.uuid4(),
        "event_type": "ProductAdded",
        "schema_version": 1,
        "aggregate_type": "Product",
        "occurred_at": datetime.now(UTC),
        "correlation_id": None,
        "causation_id": None,
        "payload": {"name": sku.title(), "stock": 3},
        "metadata": {},
    }
    async with engine.begin() as connection:
        result = await connection.execute(insert(events).values(row).returning(events.c.position))
        return int(result.scalar_one())


async def mend_product(engine: AsyncEngine, position: int) -> None:
    """Give the stored event at ``position`` the price it lacked, as an operator would."""
    async with engine.begin() as connection:
        found = await connection.execute(
            select(events.c.payload).where(events.c.position == position)
        )
        payload = found.scalar_one()
        mended = {**payload, "price": GHOST_PRICE}
        await connection.execute(
            update(events).where(events.c.position == position).values(payload=mended)
        )


async def park_saga(engine: AsyncEngine, order_id: str) -> str:
    """Park the saga of ``order_id`` as a failing compensation would; return its id."""
    async with engine.begin() as connection:
        row = (
            await connection.execute(select(sagas).where(sagas.c.correlation_key == order_id))
        ).one()
        document = {
            **row.state,
            "status": "parked",
            "parked_from": "compensating",
            "reason": "compensation of 'charging' failed: the payment service said no",
        }
        await connection.execute(
            update(sagas)
            .where(sagas.c.saga_id == row.saga_id)
            .values(status="parked", state=document)
        )
    return str(row.saga_id)


async def set_aside_outbox_message(engine: AsyncEngine) -> int:
    """Mark the outbox's first message set aside by a relay, with HOSTILE_ERROR; return its id."""
    async with engine.begin() as connection:
        first = await connection.execute(select(outbox.c.id).order_by(outbox.c.id).limit(1))
        message_id = int(first.scalar_one())
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == message_id)
            .values(failed_at=datetime.now(UTC), attempts=5, last_error=HOSTILE_ERROR)
        )
    return message_id


async def pending_expiry(engine: AsyncEngine, order_id: str) -> str:
    """Return the id of the pending expiry of ``order_id``."""
    for row in await list_schedules(engine, status="pending"):
        if row.payload.get("order_id") == order_id:
            return row.schedule_id
    raise AssertionError(f"no pending expiry for order {order_id}")


async def set_aside_for_the_feed(feed: SagaFeed, event_store: EventStore, order_id: str) -> int:
    """Record the checkout of ``order_id`` as a dead letter of ``feed``; return its position.

    As if the feed had failed on it before its cause was mended: the event
    reads, and the saga already handled it, so a replay delivers it harmlessly.
    """
    (checkout,) = [
        stored
        for stored in await event_store.load_stream(order_id)
        if stored.event_type == "OrderCheckedOut"
    ]
    now = datetime.now(UTC)
    letter = DeadLetter(
        projection=feed.name,
        position=checkout.position,
        stream_id=checkout.stream_id,
        version=checkout.version,
        event_type=checkout.event_type,
        event_id=checkout.event_id,
        error_class="builtins.TimeoutError",
        error_message="the payment service did not answer",
        attempts=3,
        first_seen_at=now,
        last_seen_at=now,
    )
    storage = feed.storage
    lease = await storage.acquire(feed.name, "operator-tests", 30.0, kind=feed.kind)
    assert lease is not None
    try:
        async with storage.batch(lease, 30.0) as transaction:
            await storage.letters.quarantine(transaction, letter)
    finally:
        await storage.release(lease)
    return checkout.position
