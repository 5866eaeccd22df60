"""The shop's domain: an order that is placed, filled with items and confirmed."""

from __future__ import annotations

from decimal import Decimal

from cqrs_ddd_core import AggregateRoot, DomainEvent, ValueObject


class OrderError(Exception):
    """A rule of the order was broken; the message says which."""


class Money(ValueObject):
    """An amount in a currency."""

    amount: Decimal
    currency: str = "EUR"


class OrderPlaced(DomainEvent):
    """A customer opened an order."""

    customer_id: str


class ItemAdded(DomainEvent):
    """An item was put into an order."""

    sku: str
    quantity: int
    unit_price: Money


class OrderConfirmed(DomainEvent):
    """The order was confirmed with its final total; it takes no more items."""

    total: Money


class Order(AggregateRoot):
    """An order: open while items are added, then confirmed once."""

    customer_id: str = ""
    lines: dict[str, int] = {}
    total: Money = Money(amount=Decimal(0))
    status: str = "open"

    @classmethod
    def place(cls, customer_id: str, order_id: str | None = None) -> Order:
        """Open a new order for ``customer_id``."""
        order = cls(id=order_id) if order_id else cls()
        order.customer_id = customer_id
        order.record_event(OrderPlaced(customer_id=customer_id))
        return order

    def add_item(self, sku: str, quantity: int, unit_price: Money) -> None:
        """Add ``quantity`` of ``sku``; refused once the order is confirmed."""
        if self.status != "open":
            raise OrderError(f"order {self.id} is {self.status}; items can no longer be added")
        if quantity < 1:
            raise OrderError("quantity must be at least 1")
        self.lines = {**self.lines, sku: self.lines.get(sku, 0) + quantity}
        self.total = Money(amount=self.total.amount + unit_price.amount * quantity)
        self.record_event(ItemAdded(sku=sku, quantity=quantity, unit_price=unit_price))

    def confirm(self) -> None:
        """Confirm the order; an empty or already confirmed order is refused."""
        if self.status != "open":
            raise OrderError(f"order {self.id} is already {self.status}")
        if not self.lines:
            raise OrderError(f"order {self.id} is empty")
        self.status = "confirmed"
        self.record_event(OrderConfirmed(total=self.total))
