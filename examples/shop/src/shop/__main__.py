"""Run the shop: ``python -m shop`` walks one order through its life and prints it."""

from __future__ import annotations

import asyncio
import logging
import sys
from decimal import Decimal

from cqrs_ddd_core import ValidationError
from shop.application import AddItem, ConfirmOrder, GetOrderSummary, PlaceOrder, build_shop
from shop.domain import OrderError


async def main() -> int:
    """Place, fill and confirm an order, then show the events and the read model."""
    shop = build_shop()
    send = shop.mediator.send

    placed = await send(PlaceOrder(customer_id="customer-7"))
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

    summary = await shop.mediator.query(GetOrderSummary(order_id=order_id))
    print(f"summary: {summary}")
    order = await shop.orders.get(order_id)
    print(f"order {order.id} is {order.status} at version {order.version}, total {order.total}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="  log: %(message)s", stream=sys.stdout)
    sys.exit(asyncio.run(main()))
