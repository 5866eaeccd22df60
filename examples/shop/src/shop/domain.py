"""The shop's domain: an event-sourced order, and a state-stored customer."""

from __future__ import annotations

from decimal import Decimal

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    aggregate_event_handler,
    non_event_sourced,
)
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


class Order(EventSourcedAggregateMixin, AggregateRoot):
    """An order, rebuilt from its events: open while items are added, then confirmed once."""

    customer_id: str = ""
    lines: dict[str, int] = {}
    total: Money = Money(amount=Decimal(0))
    status: str = "open"

    @classmethod
    def place(cls, customer_id: str, order_id: str | None = None) -> Order:
        """Open a new order for ``customer_id``."""
        order = cls(id=order_id) if order_id else cls()
        order.trigger_event(OrderPlaced(customer_id=customer_id))
        return order

    def add_item(self, sku: str, quantity: int, unit_price: Money) -> None:
        """Add ``quantity`` of ``sku``; refused once the order is confirmed."""
        if self.status != "open":
            raise OrderError(f"order {self.id} is {self.status}; items can no longer be added")
        if quantity < 1:
            raise OrderError("quantity must be at least 1")
        self.trigger_event(ItemAdded(sku=sku, quantity=quantity, unit_price=unit_price))

    def confirm(self) -> None:
        """Confirm the order; an empty or already confirmed order is refused."""
        if self.status != "open":
            raise OrderError(f"order {self.id} is already {self.status}")
        if not self.lines:
            raise OrderError(f"order {self.id} is empty")
        self.trigger_event(OrderConfirmed(total=self.total))

    @aggregate_event_handler
    def _placed(self, event: OrderPlaced) -> None:
        self.customer_id = event.customer_id

    @aggregate_event_handler
    def _item_added(self, event: ItemAdded) -> None:
        self.lines = {**self.lines, event.sku: self.lines.get(event.sku, 0) + event.quantity}
        added = event.unit_price.amount * event.quantity
        self.total = Money(amount=self.total.amount + added, currency=self.total.currency)

    @aggregate_event_handler
    def _confirmed(self, event: OrderConfirmed) -> None:
        self.status = "confirmed"


class CustomerRegistered(DomainEvent):
    """A customer joined the shop."""

    name: str


@non_event_sourced
class Customer(AggregateRoot):
    """A customer, stored as its current state (its events go to the outbox)."""

    name: str = ""
    orders_placed: int = 0

    @classmethod
    def register(cls, customer_id: str, name: str) -> Customer:
        """Register a new customer."""
        customer = cls(id=customer_id, name=name)
        customer.record_event(CustomerRegistered(name=name))
        return customer

    def count_order(self) -> None:
        """Note one more order placed by this customer."""
        self.orders_placed += 1
