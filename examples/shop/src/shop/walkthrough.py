"""The walk-through ``python -m shop`` runs: one order's life on a real database, printed.

An order is placed, filled and confirmed through the event-sourced mediator
(two commands are refused on the way); then the order-summary projection
catches up with the events (every order ever placed in the database, the first
time) and the summary is read from its table, the order is rebuilt from its
stored events and the state-stored customer is read back.

:mod:`shop.__main__` is the command line around it; it imports this module
only once its arguments and settings are checked, because this is where
SQLAlchemy's engine, Alembic and the shop are loaded.
"""

from __future__ import annotations

from decimal import Decimal

from cqrs_ddd_advanced_core.projections import SpecificationBuilder
from cqrs_ddd_core import ValidationError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from cqrs_ddd_persistence_sqlalchemy.exceptions import DatabaseUnavailableError, PersistenceError
from shop.application import (
    AddItem,
    ConfirmOrder,
    GetOrderSummary,
    PlaceOrder,
    Shop,
    build_shop,
)
from shop.domain import OrderError
from shop.settings import Settings, without_password

DATABASE_FAILURES: tuple[type[Exception], ...] = (PersistenceError,)
"""What a database that cannot be reached, or refuses an operation, raises here.

The persistence package translates every driver error, connecting and
creating the schema included, into its typed errors.
"""


async def main(settings: Settings) -> int:
    """Place, fill and confirm an order, then show its events, the projection and the store."""
    engine = create_engine(settings.database_url)
    try:
        shop = await build_shop(engine)
        print(f"database: {engine.url.render_as_string(hide_password=True)}")
        await walk_through(shop)
    finally:
        await engine.dispose()
    return 0


async def walk_through(shop: Shop) -> None:
    """Send the commands of one order's life and print what they produced."""
    send = shop.mediator.send
    placed = await send(PlaceOrder(customer_id="customer-7", customer_name="Ada"))
    order_id = placed.result
    print(f"placed order {order_id}")
    for sku, quantity, price in [("book", 2, "12.50"), ("pen", 3, "1.20")]:
        response = await send(
            AddItem(order_id=order_id, sku=sku, quantity=quantity, unit_price=Decimal(price))
        )
        for event in response.events:
            print(f"  event v{event.version} {event.event_type}: {event.payload()}")
    try:
        await send(AddItem(order_id=order_id, sku="gift", quantity=1, unit_price=Decimal(-1)))
    except ValidationError as error:
        print(f"refused: {error}")
    await send(ConfirmOrder(order_id=order_id))
    try:
        await send(AddItem(order_id=order_id, sku="late", quantity=1, unit_price=Decimal(1)))
    except OrderError as error:
        print(f"refused: {error}")

    await show_projection(shop, order_id)
    order = await shop.orders.get(order_id)
    print(f"order {order.id} rebuilt from its events: {order.status} at version {order.version}")
    customer = await shop.customers.get("customer-7")
    print(f"customer {customer.name} has placed {customer.orders_placed} order(s) in this database")
    print(f"events in the store: {await shop.event_store.current_position()} (global position)")


async def show_projection(shop: Shop, order_id: str) -> None:
    """Bring the order-summary projection up to date and print what it holds."""
    summary = await shop.mediator.query(GetOrderSummary(order_id=order_id))
    print(f"summary before the projection caught up: {summary}")
    for status in await shop.projections.catch_up():
        print(
            f"projection {status.name}: checkpoint {status.checkpoint} of {status.head_position},"
            f" {status.lag_events} event(s) behind, {status.dead_letters} dead letter(s)"
        )
    summary = await shop.mediator.query(GetOrderSummary(order_id=order_id))
    print(f"summary: {summary}")
    confirmed = SpecificationBuilder().where("status", "==", "confirmed")
    print(
        f"order summaries: {await shop.summaries.count()},"
        f" of which confirmed: {await shop.summaries.count(confirmed)}"
    )


def describe_failure(error: Exception, settings: Settings) -> str:
    """Say in one line which database failed, how, and what to check."""
    where = f"the database {without_password(settings.database_url)!r} ({settings.source})"
    if isinstance(error, DatabaseUnavailableError):
        return (
            f"cannot reach {where}: {error.detail}: start the server,"
            f" or point {settings.source} at one that runs"
        )
    if settings.backend == "sqlite":
        hint = "check that the URL names a file this user can create and write"
    else:
        hint = "check the URL's user, password and database name"
    return f"cannot use {where}: {error}: {hint}"
