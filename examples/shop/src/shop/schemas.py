"""The shop's HTTP request and response models (pydantic), and how aggregates are shown.

The field limits are the domain's (``shop.domain``): whatever a model accepts
fits the read models' columns on SQLite and PostgreSQL alike, and anything
else is refused with ``422`` naming the field.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from shop.domain import (
    MAX_DELIVERY_TEXT,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_STOCK,
    Order,
    Product,
)

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[A-Za-z0-9._:-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, decimal_places=2)]
DeliveryText = Annotated[str, Field(max_length=MAX_DELIVERY_TEXT)]
MAX_OFFSET = 1_000_000_000
"""The furthest a list may be paged (64-bit columns hold its arithmetic)."""
MAX_PAY_WITHIN = 7 * 24 * 3600
"""The longest an order may wait for its payment, in seconds (a week)."""


# ------------------------------------------------------------------ models


class NewCustomer(BaseModel):
    """A customer to register."""

    customer_id: Id
    name: Name


class CustomerOut(BaseModel):
    """A customer, and how many orders the order list (a read model) holds for them."""

    customer_id: str
    name: str
    orders_placed: int


class NewProduct(BaseModel):
    """A product to add to the catalogue."""

    sku: Id
    name: Name
    price: Price
    stock: Annotated[int, Field(ge=0, le=MAX_STOCK)]


class Delivery(BaseModel):
    """Units arriving for a product."""

    quantity: Annotated[int, Field(ge=1, le=MAX_STOCK)]


class ProductOut(BaseModel):
    """A product: its price, the units on the shelf and those held for orders."""

    sku: str
    name: str
    price: Decimal
    stock: int
    held: int


class LineIn(BaseModel):
    """Units of one SKU."""

    sku: Id
    quantity: Quantity


class NewOrder(BaseModel):
    """An order to open, with its first lines."""

    customer_id: Id
    lines: Annotated[list[LineIn], Field(max_length=100)] = []


class LineOut(BaseModel):
    """A cart line."""

    sku: str
    quantity: int
    unit_price: Decimal


class OrderOut(BaseModel):
    """An order as its events say it is now."""

    order_id: str
    customer_id: str
    status: str
    reason: str
    lines: list[LineOut]
    total: Decimal
    delivery: dict[str, str]
    version: int


class CartChange(BaseModel):
    """A cart change, with the token that undoes it."""

    undo_token: uuid.UUID
    order: OrderOut


class UndoRequest(BaseModel):
    """Which change to undo; the newest one still in effect when no token is given."""

    token: uuid.UUID | None = None


class RedoRequest(BaseModel):
    """Which undone change to apply again."""

    token: uuid.UUID


class UndoOut(BaseModel):
    """The change undone or redone, and the order after it."""

    token: uuid.UUID
    order: OrderOut


class DeliveryChange(BaseModel):
    """Delivery details to change; the fields left out stay as they are."""

    address: DeliveryText | None = None
    instructions: DeliveryText | None = None
    slot: DeliveryText | None = None


class Payment(BaseModel):
    """How to pay: the stand-in provider refuses ``card-declined``, and charges ``card-3ds``
    once the customer confirms (``POST /orders/{id}/payment-confirmation``)."""

    payment_method: Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


class Shipment(BaseModel):
    """Who carries the order."""

    carrier: Name


class OrderRow(BaseModel):
    """An order as the order list (a read model) shows it."""

    order_id: str
    customer_id: str
    items: int
    total: Decimal
    status: str
    reason: str
    placed_at: datetime


class ProductRow(BaseModel):
    """A product as the product list (a read model) shows it."""

    sku: str
    name: str
    price: Decimal
    stock: int
    held: int


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list: the items, how many match in all, and the page asked for."""

    items: list[Item]
    total: int
    limit: int
    offset: int


class StepOut(BaseModel):
    """A saga step and its outcome."""

    step: str
    command: str
    outcome: str


class FulfilmentOut(BaseModel):
    """Where the order-fulfilment saga of an order is."""

    status: str
    reason: str | None
    awaiting: str | None
    steps: list[StepOut]
    history: list[str]


class ReportRequest(BaseModel):
    """The month to report on now, as ``YYYY-MM``."""

    month: Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


class ReportOut(BaseModel):
    """A monthly report."""

    month: str
    orders: int
    revenue: Decimal
    created_at: datetime


class ReportsOut(BaseModel):
    """The monthly reports, and when the next one is due."""

    next_report_at: datetime | None
    reports: list[ReportOut]


class Health(BaseModel):
    """Whether the database answers, and what each worker is doing."""

    status: Literal["ok", "degraded"]
    database: dict[str, Any]
    workers: dict[str, Any]


def present_order(order: Order) -> OrderOut:
    """Return the order's representation."""
    return OrderOut(
        order_id=order.id,
        customer_id=order.customer_id,
        status=order.status,
        reason=order.reason,
        lines=[
            LineOut(sku=sku, quantity=quantity, unit_price=order.prices[sku].amount)
            for sku, quantity in order.lines.items()
        ],
        total=order.total.amount,
        delivery=order.delivery,
        version=order.version,
    )


def present_product(product: Product) -> ProductOut:
    """Return the product's representation."""
    return ProductOut(
        sku=product.id,
        name=product.name,
        price=product.price.amount,
        stock=product.stock,
        held=sum(product.held.values()),
    )
