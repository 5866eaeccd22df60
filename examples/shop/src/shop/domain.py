"""The shop's domain: event-sourced orders and products, and a state-stored customer.

An order's life: ``open`` while its cart changes (items added and removed,
delivery details edited), ``checked_out`` once the customer pays, then
``reserved`` (the stock is held for it), ``paid`` and ``confirmed``; or
``cancelled`` (the payment failed and the stock was released) or ``expired``
(it was not paid in time); a confirmed order is ``shipped`` at last.

Every limit the read models depend on is here, so that whatever a command
accepts fits their columns on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Final

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    aggregate_event_handler,
    non_event_sourced,
)
from cqrs_ddd_advanced_core.upcasting import EventUpcaster
from cqrs_ddd_core import AggregateRoot, DomainEvent, ValueObject


class OrderError(Exception):
    """A rule of an order or a product was broken; the message says which."""


class OutOfStockError(OrderError):
    """A product has fewer units left than an order asks for."""


class LimitExceededError(OrderError):
    """A quantity would take a total or a stock past what the shop (and its read models) hold.

    ``field`` names the input that did it; the handlers report it as invalid input.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class PaymentDeclinedError(Exception):
    """The payment provider refused the charge."""


MAX_ID_LENGTH: Final = 64
"""The longest customer id, order id and SKU the shop accepts (its columns are this wide)."""

MAX_NAME_LENGTH: Final = 200
"""The longest customer or product name."""

MAX_QUANTITY: Final = 10_000
"""The most units of one SKU a cart line holds."""

MAX_STOCK: Final = 1_000_000_000
"""The most units of one product the shop keeps."""

MAX_PRICE: Final = Decimal("100000.00")
"""The highest unit price."""

MAX_ORDER_TOTAL: Final = Decimal("1000000000.00")
"""The largest total an order may reach: 10,000 units at the highest price."""

CENT: Final = Decimal("0.01")

DELIVERY_FIELDS: Final = ("address", "instructions", "slot")
"""The delivery details a customer edits; each holds at most ``MAX_DELIVERY_TEXT`` characters."""

MAX_DELIVERY_TEXT: Final = 500

DECLINED_PAYMENT_METHOD: Final = "card-declined"
"""The payment method the shop's stand-in payment provider always refuses."""

CONFIRMED_LATER_PAYMENT_METHOD: Final = "card-3ds"
"""The payment method the stand-in provider charges only once the customer confirms it.

The provider then tells the shop (``POST /orders/{id}/payment-confirmation``);
until it does, the saga waits, and compensates when its timeout passes first.
Any other payment method is charged at once.
"""


class Money(ValueObject):
    """An amount in a currency."""

    amount: Decimal
    currency: str = "EUR"


# --------------------------------------------------------------------- products


class ProductAdded(DomainEvent):
    """A product joined the catalogue."""

    name: str
    price: Money
    stock: int


class ProductRestocked(DomainEvent):
    """Units of a product arrived."""

    quantity: int


class StockHeld(DomainEvent):
    """Units of a product were set aside for an order."""

    order_id: str
    quantity: int


class StockReleased(DomainEvent):
    """Units set aside for an order went back on the shelf."""

    order_id: str
    quantity: int


class StockDispatched(DomainEvent):
    """Units set aside for an order left with its shipment."""

    order_id: str
    quantity: int


class Product(EventSourcedAggregateMixin, AggregateRoot):
    """A product of the catalogue; its id is its SKU.

    Long-lived: every order holding or releasing units adds an event to its
    stream, so the shop loads it from a snapshot (see ``shop.application``).
    """

    name: str = ""
    price: Money = Money(amount=Decimal(0))
    stock: int = 0
    held: dict[str, int] = {}

    @classmethod
    def add(cls, sku: str, name: str, price: Decimal, stock: int) -> Product:
        """Add a product to the catalogue."""
        product = cls(id=sku)
        product.trigger_event(ProductAdded(name=name, price=Money(amount=price), stock=stock))
        return product

    def restock(self, quantity: int) -> None:
        """Put ``quantity`` more units on the shelf."""
        if self.stock + quantity > MAX_STOCK:
            raise LimitExceededError(
                "quantity", f"product {self.id} would hold more than {MAX_STOCK} units"
            )
        self.trigger_event(ProductRestocked(quantity=quantity))

    def hold(self, order_id: str, quantity: int) -> None:
        """Set ``quantity`` units aside for ``order_id`` (once per order)."""
        if order_id in self.held:
            return
        if quantity > self.stock:
            raise OutOfStockError(
                f"product {self.id} has {self.stock} unit(s) left, order {order_id} asks {quantity}"
            )
        self.trigger_event(StockHeld(order_id=order_id, quantity=quantity))

    def release(self, order_id: str) -> None:
        """Put back what was set aside for ``order_id``; nothing when nothing was."""
        if order_id in self.held:
            self.trigger_event(StockReleased(order_id=order_id, quantity=self.held[order_id]))

    def dispatch(self, order_id: str) -> None:
        """Let what was set aside for ``order_id`` leave the warehouse (once)."""
        if order_id in self.held:
            self.trigger_event(StockDispatched(order_id=order_id, quantity=self.held[order_id]))

    @aggregate_event_handler
    def _added(self, event: ProductAdded) -> None:
        self.name, self.price, self.stock = event.name, event.price, event.stock

    @aggregate_event_handler
    def _restocked(self, event: ProductRestocked) -> None:
        self.stock += event.quantity

    @aggregate_event_handler
    def _held(self, event: StockHeld) -> None:
        self.stock -= event.quantity
        self.held = {**self.held, event.order_id: event.quantity}

    @aggregate_event_handler
    def _released(self, event: StockReleased) -> None:
        self.stock += event.quantity
        self.held = {key: value for key, value in self.held.items() if key != event.order_id}

    @aggregate_event_handler
    def _dispatched(self, event: StockDispatched) -> None:
        self.held = {key: value for key, value in self.held.items() if key != event.order_id}


# ----------------------------------------------------------------------- orders


class OrderPlaced(DomainEvent):
    """A customer opened an order."""

    customer_id: str


class ItemAdded(DomainEvent):
    """Units of a product went into the cart, at the catalogue's price then.

    Version 2 names the product as the catalogue did (``product_name``).
    Version 1, written by the shop's first release, did not;
    :class:`ItemAddedV1ToV2` reads those events as version 2.
    """

    schema_version: ClassVar[int] = 2
    sku: str
    product_name: str
    quantity: int
    unit_price: Money


class ItemAddedV1ToV2(EventUpcaster):
    """Reads an ``ItemAdded`` of version 1 as version 2: the SKU stands in for the name."""

    event_type = "ItemAdded"
    source_version = 1

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add ``product_name``, which version 1 did not record."""
        return {**data, "product_name": data["sku"]}


class ItemRemoved(DomainEvent):
    """Units of a product left the cart."""

    sku: str
    quantity: int
    unit_price: Money


class DeliveryChanged(DomainEvent):
    """The customer changed delivery details (only the fields named in ``changes``)."""

    changes: dict[str, str]


class OrderCheckedOut(DomainEvent):
    """The customer asked to pay: the order-fulfilment saga takes it from here."""

    customer_id: str
    total: Money
    payment_method: str


class OrderStockReserved(DomainEvent):
    """Every line of the order is held on the shelf."""


class PaymentCharged(DomainEvent):
    """The payment provider charged the order's total."""

    amount: Money
    reference: str


class PaymentRefunded(DomainEvent):
    """A charge was given back."""

    amount: Money


class OrderConfirmed(DomainEvent):
    """The order is paid and its stock held: it will ship."""

    total: Money


class OrderCancelled(DomainEvent):
    """The order will not be fulfilled; its stock was released."""

    reason: str


class OrderExpired(DomainEvent):
    """The order was not paid in time; its stock, if any was held, was released."""


class OrderShipped(DomainEvent):
    """The order left the warehouse."""

    carrier: str


OPEN_STATES: Final = frozenset({"open", "checked_out", "reserved"})
"""The states in which an order is not yet paid, and may still expire."""


class Order(EventSourcedAggregateMixin, AggregateRoot):
    """An order, rebuilt from its events."""

    customer_id: str = ""
    lines: dict[str, int] = {}
    prices: dict[str, Money] = {}
    total: Money = Money(amount=Decimal(0))
    status: str = "open"
    delivery: dict[str, str] = {}
    delivery_versions: dict[str, int] = {}
    payment_method: str = ""
    payment_reference: str = ""
    reason: str = ""

    @classmethod
    def place(cls, customer_id: str, order_id: str | None = None) -> Order:
        """Open a new order for ``customer_id``."""
        order = cls(id=order_id) if order_id else cls()
        order.trigger_event(OrderPlaced(customer_id=customer_id))
        return order

    def add_item(self, sku: str, name: str, quantity: int, unit_price: Money) -> None:
        """Put ``quantity`` units of ``sku`` (named ``name``) in the cart at ``unit_price``."""
        self._require("open", "items can no longer be added")
        if not 1 <= self.lines.get(sku, 0) + quantity <= MAX_QUANTITY:
            raise OrderError(f"a line holds from 1 to {MAX_QUANTITY} units; {sku} would not")
        if sku in self.prices and self.prices[sku] != unit_price:
            raise OrderError(f"{sku} is in the cart at {self.prices[sku].amount} already")
        if self.total.amount + unit_price.amount * quantity > MAX_ORDER_TOTAL:
            raise LimitExceededError(
                "quantity", f"order {self.id} would pass the largest total, {MAX_ORDER_TOTAL}"
            )
        self.trigger_event(
            ItemAdded(sku=sku, product_name=name, quantity=quantity, unit_price=unit_price)
        )

    def remove_item(self, sku: str, quantity: int) -> None:
        """Take ``quantity`` units of ``sku`` out of the cart."""
        self._require("open", "items can no longer be removed")
        if self.lines.get(sku, 0) < quantity:
            raise OrderError(f"order {self.id} holds {self.lines.get(sku, 0)} of {sku}")
        self.trigger_event(ItemRemoved(sku=sku, quantity=quantity, unit_price=self.prices[sku]))

    def change_delivery(self, changes: dict[str, str]) -> None:
        """Change the delivery details named in ``changes``."""
        self.check_delivery_open()
        self.trigger_event(DeliveryChanged(changes=changes))

    def check_delivery_open(self) -> None:
        """Refuse a change of delivery once the order shipped or ended."""
        if self.status in {"shipped", "cancelled", "expired"}:
            raise OrderError(f"order {self.id} is {self.status}; its delivery is settled")

    def check_out(self, payment_method: str) -> None:
        """Ask to pay for the order with ``payment_method``."""
        self._require("open", "it cannot be checked out again")
        if not self.lines:
            raise OrderError(f"order {self.id} is empty")
        self.trigger_event(
            OrderCheckedOut(
                customer_id=self.customer_id, total=self.total, payment_method=payment_method
            )
        )

    def stock_reserved(self) -> None:
        """Note that every line is held on the shelf."""
        self._require("checked_out", "its stock cannot be reserved")
        self.trigger_event(OrderStockReserved())

    def charge(self, reference: str) -> None:
        """Note the payment of the order's total."""
        self._require("reserved", "it cannot be charged")
        self.trigger_event(PaymentCharged(amount=self.total, reference=reference))

    def refund(self) -> None:
        """Give the payment back (once)."""
        if self.payment_reference:
            self.trigger_event(PaymentRefunded(amount=self.total))

    def confirm(self) -> None:
        """Confirm the paid order."""
        self._require("paid", "it cannot be confirmed")
        self.trigger_event(OrderConfirmed(total=self.total))

    def cancel(self, reason: str) -> None:
        """Cancel an order not confirmed yet, refunding a charge first (nothing once it ended)."""
        if self.status in OPEN_STATES or self.status == "paid":
            self.refund()
            self.trigger_event(OrderCancelled(reason=reason))

    def expire(self) -> None:
        """Expire the order if it is still unpaid; nothing otherwise."""
        if self.status in OPEN_STATES:
            self.trigger_event(OrderExpired())

    def ship(self, carrier: str) -> None:
        """Ship the confirmed order."""
        self._require("confirmed", "it cannot be shipped")
        self.trigger_event(OrderShipped(carrier=carrier))

    def _require(self, status: str, otherwise: str) -> None:
        if self.status != status:
            raise OrderError(f"order {self.id} is {self.status}; {otherwise}")

    @aggregate_event_handler
    def _placed(self, event: OrderPlaced) -> None:
        self.customer_id = event.customer_id

    @aggregate_event_handler
    def _item_added(self, event: ItemAdded) -> None:
        self.lines = {**self.lines, event.sku: self.lines.get(event.sku, 0) + event.quantity}
        self.prices = {**self.prices, event.sku: event.unit_price}
        self.total = Money(amount=self.total.amount + event.unit_price.amount * event.quantity)

    @aggregate_event_handler
    def _item_removed(self, event: ItemRemoved) -> None:
        left = self.lines[event.sku] - event.quantity
        self.lines = {sku: n for sku, n in {**self.lines, event.sku: left}.items() if n}
        if not left:
            self.prices = {sku: p for sku, p in self.prices.items() if sku != event.sku}
        self.total = Money(amount=self.total.amount - event.unit_price.amount * event.quantity)

    @aggregate_event_handler
    def _delivery_changed(self, event: DeliveryChanged) -> None:
        self.delivery = {**self.delivery, **event.changes}
        version = event.version or self.version + 1  # the version this event gives the order
        self.delivery_versions = {**self.delivery_versions, **dict.fromkeys(event.changes, version)}

    @aggregate_event_handler
    def _checked_out(self, event: OrderCheckedOut) -> None:
        self.status, self.payment_method = "checked_out", event.payment_method

    @aggregate_event_handler
    def _stock_reserved(self, event: OrderStockReserved) -> None:
        self.status = "reserved"

    @aggregate_event_handler
    def _charged(self, event: PaymentCharged) -> None:
        self.status, self.payment_reference = "paid", event.reference

    @aggregate_event_handler
    def _refunded(self, event: PaymentRefunded) -> None:
        self.payment_reference = ""

    @aggregate_event_handler
    def _confirmed(self, event: OrderConfirmed) -> None:
        self.status = "confirmed"

    @aggregate_event_handler
    def _cancelled(self, event: OrderCancelled) -> None:
        self.status, self.reason = "cancelled", event.reason

    @aggregate_event_handler
    def _expired(self, event: OrderExpired) -> None:
        self.status, self.reason = "expired", "not paid in time"

    @aggregate_event_handler
    def _shipped(self, event: OrderShipped) -> None:
        self.status = "shipped"


# -------------------------------------------------------------------- customers


class CustomerRegistered(DomainEvent):
    """A customer joined the shop."""

    name: str


@non_event_sourced
class Customer(AggregateRoot):
    """A customer, stored as its current state (its events go to the outbox)."""

    name: str = ""

    @classmethod
    def register(cls, customer_id: str, name: str) -> Customer:
        """Register a new customer."""
        customer = cls(id=customer_id, name=name)
        customer.record_event(CustomerRegistered(name=name))
        return customer
