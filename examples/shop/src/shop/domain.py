"""The shop's domain: an event-sourced order, and a state-stored customer."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    aggregate_event_handler,
    non_event_sourced,
)
from cqrs_ddd_core import AggregateRoot, DomainEvent, ValueObject


class OrderError(Exception):
    """A rule of the order was broken; the message says which."""


MAX_QUANTITY: Final = 10_000
"""The most units of one item a single ``add_item`` takes."""

MAX_ORDER_TOTAL: Final = Decimal("1000000000.00")
"""The largest total an order may reach (so its total in cents fits any read model's 64 bits)."""

CENT: Final = Decimal("0.01")


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
        """Add ``quantity`` of ``sku`` at ``unit_price``.

        Refused once the order is confirmed, for a quantity outside 1 to
        ``MAX_QUANTITY``, for a price that is negative or not in whole cents,
        and when the total would pass ``MAX_ORDER_TOTAL``.
        """
        if self.status != "open":
            raise OrderError(f"order {self.id} is {self.status}; items can no longer be added")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise OrderError(f"quantity must be between 1 and {MAX_QUANTITY}, not {quantity}")
        price = unit_price.amount
        if not 0 <= price <= MAX_ORDER_TOTAL or price != price.quantize(CENT):
            raise OrderError(
                f"a unit price must be whole cents from 0 to {MAX_ORDER_TOTAL}, not {price}"
            )
        if self.total.amount + price * quantity > MAX_ORDER_TOTAL:
            raise OrderError(f"order {self.id} would pass the largest total, {MAX_ORDER_TOTAL}")
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
