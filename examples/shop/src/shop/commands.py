"""The shop's commands, and the checks the validation behaviour runs before their handlers.

Each check names the field it refuses (``ValidationError``, answered ``422``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from cqrs_ddd_core import (
    Command,
    Query,
)
from cqrs_ddd_core.exceptions import FieldIssue
from shop.domain import (
    CENT,
    DELIVERY_FIELDS,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_STOCK,
)

# ------------------------------------------------------------------- commands


class Line(BaseModel):
    """Units of one SKU, as an order asks for them."""

    sku: str
    quantity: int


class RegisterCustomer(Command):
    """Register a customer."""

    customer_id: str
    name: str


class AddProduct(Command):
    """Add a product to the catalogue."""

    sku: str
    name: str
    price: Decimal
    stock: int


class Restock(Command):
    """Put more units of a product on the shelf."""

    sku: str
    quantity: int


class PlaceOrder(Command):
    """Open an order for a registered customer, with its first lines; it expires if unpaid."""

    customer_id: str
    lines: list[Line] = []
    order_id: str | None = None
    pay_within: float | None = None
    """Seconds the order waits for its payment; the shop's ``order_ttl`` when None."""


class AddItem(Command):
    """Put units of a product into an open order, at the catalogue's price (or ``unit_price``)."""

    order_id: str
    sku: str
    quantity: int
    unit_price: Decimal | None = None


class RemoveItem(Command):
    """Take units of a product out of an open order."""

    order_id: str
    sku: str
    quantity: int


class ChangeDelivery(Command):
    """Change delivery details; ``base_version`` is the order version the client last saw."""

    order_id: str
    changes: dict[str, str]
    base_version: int | None = None


class CheckOut(Command):
    """Pay for an open order: starts the order-fulfilment saga."""

    order_id: str
    payment_method: str


class ReserveStock(Command):
    """Hold every line of a checked-out order on the shelf (the saga's first step)."""

    order_id: str


class ReleaseStock(Command):
    """Undo ``ReserveStock``: release what is held and cancel the unpaid order."""

    order_id: str


class ChargePayment(Command):
    """Charge the order's total (the saga's second step)."""

    order_id: str


class ConfirmPayment(Command):
    """The payment provider says the customer confirmed the charge of a ``card-3ds`` order."""

    order_id: str


class RefundPayment(Command):
    """Undo ``ChargePayment``."""

    order_id: str


class ConfirmOrder(Command):
    """Confirm a paid order (the saga's last step)."""

    order_id: str


class ExpireOrder(Command):
    """Expire an order that is still unpaid (scheduled when the order is placed)."""

    order_id: str


class ShipOrder(Command):
    """Ship a confirmed order."""

    order_id: str
    carrier: str


class GenerateMonthlyReport(Command):
    """Write the report of ``month`` (``YYYY-MM``; the month before the run when empty)."""

    month: str = ""


# ---------------------------------------------------------------- validation


def check_price(price: Decimal, field: str = "price") -> list[FieldIssue]:
    """Refuse a price the catalogue and the read models could not hold."""
    if not price.is_finite() or not 0 <= price <= MAX_PRICE:
        return [FieldIssue(field, f"must be from 0 to {MAX_PRICE}")]
    if price != price.quantize(CENT):
        return [FieldIssue(field, "must be in whole cents")]
    return []


def check_quantity(quantity: int, field: str = "quantity") -> list[FieldIssue]:
    """Refuse a quantity outside 1 to ``MAX_QUANTITY``."""
    if not 1 <= quantity <= MAX_QUANTITY:
        return [FieldIssue(field, f"must be from 1 to {MAX_QUANTITY}")]
    return []


def valid_product(command: AddProduct) -> list[FieldIssue]:
    """Refuse a product whose price or stock would not fit."""
    issues = check_price(command.price)
    if not 0 <= command.stock <= MAX_STOCK:
        issues.append(FieldIssue("stock", f"must be from 0 to {MAX_STOCK}"))
    return issues


def valid_restock(command: Restock) -> list[FieldIssue]:
    """Refuse a restock outside 1 to ``MAX_STOCK``."""
    if not 1 <= command.quantity <= MAX_STOCK:
        return [FieldIssue("quantity", f"must be from 1 to {MAX_STOCK}")]
    return []


def valid_order(command: PlaceOrder) -> list[FieldIssue]:
    """Refuse lines with a quantity out of bounds, or one SKU twice."""
    issues = []
    for index, line in enumerate(command.lines):
        issues += check_quantity(line.quantity, f"lines.{index}.quantity")
    skus = [line.sku for line in command.lines]
    if len(set(skus)) != len(skus):
        issues.append(FieldIssue("lines", "names a SKU twice"))
    return issues


def valid_item(command: AddItem) -> list[FieldIssue]:
    """Refuse a quantity or a price out of bounds."""
    issues = check_quantity(command.quantity)
    if command.unit_price is not None:
        issues += check_price(command.unit_price, "unit_price")
    return issues


def valid_delivery(command: ChangeDelivery) -> list[FieldIssue]:
    """Refuse an empty change, and a delivery field the order does not have."""
    if not command.changes:
        return [FieldIssue("changes", f"names no field to change ({', '.join(DELIVERY_FIELDS)})")]
    return [
        FieldIssue(f"changes.{name}", f"is not a delivery field ({', '.join(DELIVERY_FIELDS)})")
        for name in command.changes
        if name not in DELIVERY_FIELDS
    ]


VALIDATORS: dict[type[Command] | type[Query], list[Callable[[Any], Iterable[FieldIssue]]]] = {
    AddProduct: [valid_product],
    Restock: [valid_restock],
    PlaceOrder: [valid_order],
    AddItem: [valid_item],
    RemoveItem: [lambda command: check_quantity(command.quantity)],
    ChangeDelivery: [valid_delivery],
}
"""What ``ValidationBehavior`` checks before a handler runs; ``ValidationError`` names the field."""
