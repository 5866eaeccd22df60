"""Run the shop: ``python -m shop`` walks one order through its life and prints it.

After the commands, the order-summary projection catches up with the events
(every order ever placed in the database, the first time) and the summary is
read from its table.

The data goes to ``DATABASE_URL``: a SQLite file, ``shop.sqlite`` in the
working directory, unless the variable names another database.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from decimal import Decimal

from cqrs_ddd_advanced_core.projections import SpecificationBuilder
from cqrs_ddd_core import ValidationError
from cqrs_ddd_persistence_sqlalchemy import create_engine
from shop.application import (
    AddItem,
    ConfirmOrder,
    GetOrderSummary,
    PlaceOrder,
    Shop,
    build_shop,
)
from shop.domain import OrderError
from shop.settings import Settings


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


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="  log: %(message)s", stream=sys.stdout)
    sys.exit(asyncio.run(main(Settings.from_environment())))
