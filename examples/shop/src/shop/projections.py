"""The shop's read models, kept from the events by the projection worker.

``shop_orders`` holds one row per order and ``shop_products`` one row per
product; both tables belong to the shop (``read_models``, created by
:func:`create_read_model_tables`), their checkpoints live beside the events in
the library's ``cqrs_projections`` table, and each batch of changes commits
with its checkpoint. ``shop_reports`` holds the monthly reports, written by
the scheduled report command.

Every column holds whatever the commands accept (see ``shop.domain``): ids
and SKUs of at most ``MAX_ID_LENGTH`` characters, names of at most
``MAX_NAME_LENGTH``, and 64-bit counts and amounts in cents.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionContext, Projector, projects
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyReadModelStore
from shop.domain import (
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    ItemAdded,
    ItemRemoved,
    Money,
    OrderCancelled,
    OrderCheckedOut,
    OrderConfirmed,
    OrderExpired,
    OrderPlaced,
    OrderShipped,
    OrderStockReserved,
    PaymentCharged,
    ProductAdded,
    ProductRestocked,
    StockDispatched,
    StockHeld,
    StockReleased,
)

read_models = MetaData()
"""The shop's own tables, apart from the library's schema."""

orders = Table(
    "shop_orders",
    read_models,
    Column("order_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("customer_id", String(MAX_ID_LENGTH), nullable=False, index=True),
    Column("items", BigInteger, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("reason", String(MAX_NAME_LENGTH), nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
)
"""One row per order: how many units, the total in cents, the status and why it ended."""

products = Table(
    "shop_products",
    read_models,
    Column("sku", String(MAX_ID_LENGTH), primary_key=True),
    Column("name", String(MAX_NAME_LENGTH), nullable=False),
    Column("price_cents", BigInteger, nullable=False),
    Column("stock", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
)
"""One row per product: its price, the units on the shelf and those held for orders not shipped."""

reports = Table(
    "shop_reports",
    read_models,
    Column("month", String(7), primary_key=True),
    Column("orders", BigInteger, nullable=False),
    Column("revenue_cents", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""One row per month: the orders confirmed among those placed that month, and their total."""


async def create_read_model_tables(engine: AsyncEngine) -> None:
    """Create the shop's read-model tables that do not exist yet."""
    async with engine.begin() as connection:
        await connection.run_sync(read_models.create_all)


def cents(money: Money) -> int:
    """Return ``money`` in whole cents (every amount the shop accepts is whole cents)."""
    return int(money.amount * 100)


def euros(amount_in_cents: int) -> Decimal:
    """Return an amount in cents as euros with two decimal places."""
    return Decimal(amount_in_cents).scaleb(-2)


class OrderProjector(Projector):
    """Keeps ``shop_orders`` from the order events."""

    projection_name = "shop.orders"

    def __init__(self, read_model: SQLAlchemyReadModelStore) -> None:
        self.read_model = read_model

    @projects(OrderPlaced)
    async def placed(self, event: OrderPlaced, context: ProjectionContext) -> None:
        """Start the order's row."""
        row = {
            "order_id": context.stream_id,
            "customer_id": event.customer_id,
            "items": 0,
            "total_cents": 0,
            "status": "open",
            "reason": "",
            "placed_at": event.occurred_at,
        }
        await self.read_model.upsert(context.connection, row)

    @projects(ItemAdded)
    async def item_added(self, event: ItemAdded, context: ProjectionContext) -> None:
        """Count the units and add their price."""
        await self._count_units(context, event.quantity, cents(event.unit_price) * event.quantity)

    @projects(ItemRemoved)
    async def item_removed(self, event: ItemRemoved, context: ProjectionContext) -> None:
        """Take the units and their price off."""
        await self._count_units(context, -event.quantity, -cents(event.unit_price) * event.quantity)

    @projects(OrderCheckedOut)
    async def checked_out(self, event: OrderCheckedOut, context: ProjectionContext) -> None:
        """Mark the order checked out."""
        await self._mark(context, status="checked_out")

    @projects(OrderStockReserved)
    async def reserved(self, event: OrderStockReserved, context: ProjectionContext) -> None:
        """Mark the order's stock reserved."""
        await self._mark(context, status="reserved")

    @projects(PaymentCharged)
    async def paid(self, event: PaymentCharged, context: ProjectionContext) -> None:
        """Mark the order paid."""
        await self._mark(context, status="paid")

    @projects(OrderConfirmed)
    async def confirmed(self, event: OrderConfirmed, context: ProjectionContext) -> None:
        """Mark the order confirmed."""
        await self._mark(context, status="confirmed")

    @projects(OrderCancelled)
    async def cancelled(self, event: OrderCancelled, context: ProjectionContext) -> None:
        """Mark the order cancelled, with the reason."""
        await self._mark(context, status="cancelled", reason=event.reason)

    @projects(OrderExpired)
    async def expired(self, event: OrderExpired, context: ProjectionContext) -> None:
        """Mark the order expired."""
        await self._mark(context, status="expired", reason="not paid in time")

    @projects(OrderShipped)
    async def shipped(self, event: OrderShipped, context: ProjectionContext) -> None:
        """Mark the order shipped."""
        await self._mark(context, status="shipped")

    async def _count_units(self, context: ProjectionContext, units: int, amount: int) -> None:
        row = await self._order_row(context)
        changes = {"items": row["items"] + units, "total_cents": row["total_cents"] + amount}
        await self.read_model.update(context.connection, context.stream_id, changes)

    async def _mark(self, context: ProjectionContext, **changes: Any) -> None:
        await self.read_model.update(context.connection, context.stream_id, changes)

    async def _order_row(self, context: ProjectionContext) -> Mapping[str, Any]:
        row = await self.read_model.get(context.connection, context.stream_id)
        if row is None:  # cannot happen: OrderPlaced comes first in every order's stream
            raise LookupError(f"no row for order {context.stream_id!r}")
        return row


class ProductProjector(Projector):
    """Keeps ``shop_products`` from the product events."""

    projection_name = "shop.products"

    def __init__(self, read_model: SQLAlchemyReadModelStore) -> None:
        self.read_model = read_model

    @projects(ProductAdded)
    async def added(self, event: ProductAdded, context: ProjectionContext) -> None:
        """Start the product's row."""
        row = {
            "sku": context.stream_id,
            "name": event.name,
            "price_cents": cents(event.price),
            "stock": event.stock,
            "held": 0,
        }
        await self.read_model.upsert(context.connection, row)

    @projects(ProductRestocked)
    async def restocked(self, event: ProductRestocked, context: ProjectionContext) -> None:
        """Add the units that arrived."""
        await self._shift_units(context, shelf=event.quantity, held=0)

    @projects(StockHeld)
    async def held(self, event: StockHeld, context: ProjectionContext) -> None:
        """Move units from the shelf to held."""
        await self._shift_units(context, shelf=-event.quantity, held=event.quantity)

    @projects(StockReleased)
    async def released(self, event: StockReleased, context: ProjectionContext) -> None:
        """Move units back from held to the shelf."""
        await self._shift_units(context, shelf=event.quantity, held=-event.quantity)

    @projects(StockDispatched)
    async def dispatched(self, event: StockDispatched, context: ProjectionContext) -> None:
        """Units held for an order left with its shipment."""
        await self._shift_units(context, shelf=0, held=-event.quantity)

    async def _shift_units(self, context: ProjectionContext, *, shelf: int, held: int) -> None:
        row = await self.read_model.get(context.connection, context.stream_id)
        if row is None:  # cannot happen: ProductAdded comes first in every product's stream
            raise LookupError(f"no row for product {context.stream_id!r}")
        changes = {"stock": row["stock"] + shelf, "held": row["held"] + held}
        await self.read_model.update(context.connection, context.stream_id, changes)
