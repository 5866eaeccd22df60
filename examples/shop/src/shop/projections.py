"""The order-summary projection: one row per order, kept from the order events by a worker.

The table belongs to the shop (``read_models``, created by
:func:`create_read_model_tables`); the projection's checkpoint lives beside the
events in the library's ``cqrs_projections`` table. Both are in the same
database, so a batch of summary changes commits with its checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionContext, Projector, projects
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyReadModelStore
from shop.domain import ItemAdded, OrderConfirmed, OrderPlaced

read_models = MetaData()
"""The shop's own tables, apart from the library's schema."""

order_summaries = Table(
    "shop_order_summaries",
    read_models,
    Column("order_id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    Column("items", BigInteger, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
)
"""One row per order: how many items, the total in cents, open or confirmed.

The columns hold whatever the commands accept: ids are stream ids (at most 255
characters), and the order's rules (whole cents, a capped total and quantity)
keep the counts and the total in cents within 64 bits.
"""


async def create_read_model_tables(engine: AsyncEngine) -> None:
    """Create the shop's read-model tables that do not exist yet."""
    async with engine.begin() as connection:
        await connection.run_sync(read_models.create_all)


@dataclass(frozen=True)
class OrderSummary:
    """One row of the order-summary read model."""

    order_id: str
    customer_id: str
    items: int
    total: Decimal
    status: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OrderSummary:
        """Build the summary from a row of ``shop_order_summaries``."""
        return cls(
            order_id=row["order_id"],
            customer_id=row["customer_id"],
            items=row["items"],
            total=Decimal(row["total_cents"]).scaleb(-2),
            status=row["status"],
        )


class OrderSummaryProjector(Projector):
    """Keeps ``shop_order_summaries`` from ``OrderPlaced``, ``ItemAdded`` and ``OrderConfirmed``."""

    projection_name = "shop.order_summaries"

    def __init__(self, read_model: SQLAlchemyReadModelStore) -> None:
        self.read_model = read_model

    @projects(OrderPlaced)
    async def placed(self, event: OrderPlaced, context: ProjectionContext) -> None:
        """Start the order's summary."""
        await self.read_model.upsert(
            context.connection,
            {
                "order_id": context.stream_id,
                "customer_id": event.customer_id,
                "items": 0,
                "total_cents": 0,
                "status": "open",
            },
        )

    @projects(ItemAdded)
    async def item_added(self, event: ItemAdded, context: ProjectionContext) -> None:
        """Count the items and add their price."""
        row = await self.read_model.get(context.connection, context.stream_id)
        if row is None:  # cannot happen: OrderPlaced comes first in every order's stream
            raise LookupError(f"no summary for order {context.stream_id!r}")
        added = int(event.unit_price.amount * event.quantity * 100)  # whole cents: see Order
        await self.read_model.update(
            context.connection,
            context.stream_id,
            {"items": row["items"] + event.quantity, "total_cents": row["total_cents"] + added},
        )

    @projects(OrderConfirmed)
    async def confirmed(self, event: OrderConfirmed, context: ProjectionContext) -> None:
        """Mark the order confirmed."""
        await self.read_model.update(context.connection, context.stream_id, {"status": "confirmed"})
