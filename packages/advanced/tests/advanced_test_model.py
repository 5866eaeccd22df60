"""The small shop domain the advanced package's tests share.

``Order`` and ``Invoice`` are event-sourced (their state is rebuilt from their
events); ``UserPreferences`` is state-stored and marked ``@non_event_sourced``,
as in the spec's "Decorator-Based Registration" example. The handlers hand
their events to the command both ways the framework offers: returned in a
``CommandResponse`` (the orchestrator then appends them, as registered), or
saved through a repository (which stores them itself: ``EventSourcedRepository``
in the event store, ``InMemoryRepository`` with the state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import Field

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcedRepository,
    aggregate_event_handler,
    non_event_sourced,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    CommandHandler,
    CommandResponse,
    DomainEvent,
    EventDispatcher,
    EventTypeRegistry,
    HandlerRegistry,
    InMemoryRepository,
    StoredEvent,
)
from cqrs_ddd_core.domain.entity import new_id

# ---------------------------------------------------------------- events


class OrderCreated(DomainEvent):
    customer_id: str


class ItemAdded(DomainEvent):
    sku: str
    quantity: int
    unit_price: Decimal


class ItemRemoved(DomainEvent):
    sku: str
    quantity: int
    unit_price: Decimal


class OrderPaid(DomainEvent):
    pass


class InvoiceIssued(DomainEvent):
    order_id: str
    amount: Decimal


class PreferencesChanged(DomainEvent):
    settings: dict[str, Any]


def shop_event_types() -> EventTypeRegistry:
    """Return a registry of every event class of the shop."""
    return EventTypeRegistry(
        [OrderCreated, ItemAdded, ItemRemoved, OrderPaid, InvoiceIssued, PreferencesChanged]
    )


# ---------------------------------------------------------------- aggregates


class NotEnoughItemsError(Exception):
    """The order holds fewer items of a SKU than a command asked to remove."""


class Order(EventSourcedAggregateMixin, AggregateRoot):
    """The spec's ``Order`` (``id``, ``customer_id``, ``status``), made event-sourced."""

    id: str
    customer_id: str
    status: str = "pending"
    items: dict[str, int] = Field(default_factory=dict)
    prices: dict[str, Decimal] = Field(default_factory=dict)
    total: Decimal = Decimal(0)

    @classmethod
    def create(cls, customer_id: str, order_id: str | None = None) -> Order:
        order = cls(id=order_id or new_id(), customer_id=customer_id)
        order.trigger_event(OrderCreated(customer_id=customer_id))
        return order

    def add_item(self, sku: str, quantity: int, unit_price: Decimal) -> None:
        self.trigger_event(ItemAdded(sku=sku, quantity=quantity, unit_price=unit_price))

    def remove_item(self, sku: str, quantity: int) -> None:
        if self.items.get(sku, 0) < quantity:
            raise NotEnoughItemsError(f"order {self.id} holds fewer than {quantity} of {sku}")
        self.trigger_event(ItemRemoved(sku=sku, quantity=quantity, unit_price=self.prices[sku]))

    def pay(self) -> None:
        self.trigger_event(OrderPaid())

    @aggregate_event_handler(OrderCreated)
    def on_created(self, event: OrderCreated) -> None:
        self.customer_id = event.customer_id
        self.status = "pending"

    @aggregate_event_handler
    def on_item_added(self, event: ItemAdded) -> None:
        self.items = {**self.items, event.sku: self.items.get(event.sku, 0) + event.quantity}
        self.prices = {**self.prices, event.sku: event.unit_price}
        self.total += event.quantity * event.unit_price

    @aggregate_event_handler
    def on_item_removed(self, event: ItemRemoved) -> None:
        left = self.items[event.sku] - event.quantity
        self.items = {sku: n for sku, n in {**self.items, event.sku: left}.items() if n}
        self.total -= event.quantity * event.unit_price

    @aggregate_event_handler(OrderPaid)
    def on_paid(self, event: OrderPaid) -> None:
        self.status = "paid"


class Invoice(EventSourcedAggregateMixin, AggregateRoot):
    id: str
    order_id: str
    amount: Decimal

    @classmethod
    def issue(cls, order_id: str, amount: Decimal, invoice_id: str | None = None) -> Invoice:
        invoice = cls(id=invoice_id or new_id(), order_id=order_id, amount=amount)
        invoice.trigger_event(InvoiceIssued(order_id=order_id, amount=amount))
        return invoice

    @aggregate_event_handler
    def on_issued(self, event: InvoiceIssued) -> None:
        self.order_id = event.order_id
        self.amount = event.amount


@non_event_sourced
class UserPreferences(AggregateRoot):
    """The spec's state-stored aggregate: its events are not kept in the event store."""

    user_id: str
    settings: dict[str, Any]

    def change(self, settings: dict[str, Any]) -> None:
        self.settings = {**self.settings, **settings}
        self.record_event(PreferencesChanged(settings=settings))


# ---------------------------------------------------------------- commands


class CreateOrder(Command):
    customer_id: str
    order_id: str | None = None


class AddItem(Command):
    order_id: str
    sku: str
    quantity: int
    unit_price: Decimal


class RemoveItem(Command):
    order_id: str
    sku: str
    quantity: int


class PayOrder(Command):
    order_id: str


class IssueInvoice(Command):
    order_id: str
    amount: Decimal
    invoice_id: str | None = None


class ChangePreferences(Command):
    user_id: str
    settings: dict[str, Any]


# ---------------------------------------------------------------- handlers


class CreateOrderHandler(CommandHandler[CreateOrder]):
    """Creates the order and returns its events in the ``CommandResponse``."""

    async def handle(self, command: CreateOrder) -> CommandResponse[str]:
        order = Order.create(command.customer_id, command.order_id)
        return CommandResponse(result=order.id, events=order.collect_events())


class CreateOrderThroughRepositoryHandler(CommandHandler[CreateOrder]):
    """Creates the order and appends its events through ``EventSourcedRepository.save``."""

    def __init__(self, orders: EventSourcedRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: CreateOrder) -> str:
        order = Order.create(command.customer_id, command.order_id)
        await self.orders.save(order)
        return order.id


class AddItemHandler(CommandHandler[AddItem]):
    def __init__(self, orders: EventSourcedRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: AddItem) -> None:
        order = await self.orders.get(command.order_id)
        order.add_item(command.sku, command.quantity, command.unit_price)
        await self.orders.save(order)


class RemoveItemHandler(CommandHandler[RemoveItem]):
    def __init__(self, orders: EventSourcedRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: RemoveItem) -> None:
        order = await self.orders.get(command.order_id)
        order.remove_item(command.sku, command.quantity)
        await self.orders.save(order)


class PayOrderHandler(CommandHandler[PayOrder]):
    def __init__(self, orders: EventSourcedRepository[Order]) -> None:
        self.orders = orders

    async def handle(self, command: PayOrder) -> None:
        order = await self.orders.get(command.order_id)
        order.pay()
        await self.orders.save(order)


class IssueInvoiceHandler(CommandHandler[IssueInvoice]):
    async def handle(self, command: IssueInvoice) -> CommandResponse[str]:
        invoice = Invoice.issue(command.order_id, command.amount, command.invoice_id)
        return CommandResponse(result=invoice.id, events=invoice.collect_events())


class ChangePreferencesHandler(CommandHandler[ChangePreferences]):
    def __init__(self, preferences: InMemoryRepository[UserPreferences]) -> None:
        self.preferences = preferences

    async def handle(self, command: ChangePreferences) -> None:
        found = await self.preferences.find(command.user_id)
        preferences = found or UserPreferences(
            id=command.user_id, user_id=command.user_id, settings={}
        )
        preferences.change(command.settings)
        await self.preferences.save(preferences)


# ---------------------------------------------------------------- wiring


@dataclass
class Shop:
    """The shop's stores and its handler registry, as a composition root builds them."""

    event_store: InMemoryEventStore
    registry: HandlerRegistry
    orders: EventSourcedRepository[Order]
    preferences: InMemoryRepository[UserPreferences]
    event_types: EventTypeRegistry = field(default_factory=shop_event_types)
    create_through_repository: bool = False
    """Whether ``CreateOrder``'s handler saves the order (else it returns its events)."""

    def order_loader(self) -> EventSourcedLoader[Order]:
        return EventSourcedLoader(
            aggregate_type=Order, event_store=self.event_store, event_registry=self.event_types
        )


def build_shop(
    event_store: InMemoryEventStore | None = None, *, create_through_repository: bool = False
) -> Shop:
    """Return the shop wired to ``event_store`` (a fresh one if None).

    ``create_through_repository`` picks how ``CreateOrder``'s handler hands on its
    events: through the repository, or (the default) in its ``CommandResponse``.
    """
    store = event_store if event_store is not None else InMemoryEventStore()
    event_types = shop_event_types()
    orders = EventSourcedRepository(
        EventSourcedLoader(aggregate_type=Order, event_store=store, event_registry=event_types)
    )
    preferences = InMemoryRepository(UserPreferences)
    registry = HandlerRegistry()
    registry.register_command_handler(
        CreateOrder,
        CreateOrderThroughRepositoryHandler(orders)
        if create_through_repository
        else CreateOrderHandler(),
    )
    registry.register_command_handler(AddItem, AddItemHandler(orders))
    registry.register_command_handler(RemoveItem, RemoveItemHandler(orders))
    registry.register_command_handler(PayOrder, PayOrderHandler(orders))
    registry.register_command_handler(IssueInvoice, IssueInvoiceHandler())
    registry.register_command_handler(ChangePreferences, ChangePreferencesHandler(preferences))
    return Shop(
        event_store=store,
        registry=registry,
        orders=orders,
        preferences=preferences,
        event_types=event_types,
        create_through_repository=create_through_repository,
    )


class RecordingDispatcher(EventDispatcher):
    """The real dispatcher with one subscriber that remembers what it received."""

    def __init__(self) -> None:
        super().__init__(on_error="raise")
        self.received: list[DomainEvent] = []

        async def remember(event: DomainEvent) -> None:
            self.received.append(event)

        self.subscribe(DomainEvent, remember)


@dataclass
class Append:
    """One call of ``EventStore.append``, as a ``RecordingEventStore`` saw it."""

    stream_id: str
    versions: list[int | None]
    expected_version: int


class RecordingEventStore:
    """An ``InMemoryEventStore`` that also remembers each ``append`` call it was given."""

    def __init__(self) -> None:
        self.inner = InMemoryEventStore()
        self.appends: list[Append] = []

    async def append(
        self, stream_id: str, events: Sequence[DomainEvent], *, expected_version: int
    ) -> list[StoredEvent]:
        self.appends.append(
            Append(stream_id, [event.version for event in events], expected_version)
        )
        return await self.inner.append(stream_id, events, expected_version=expected_version)

    async def load_stream(self, stream_id: str, *, from_version: int = 1) -> list[StoredEvent]:
        return await self.inner.load_stream(stream_id, from_version=from_version)

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return await self.inner.read_all(after_position=after_position, limit=limit)

    async def current_position(self) -> int:
        return await self.inner.current_position()
