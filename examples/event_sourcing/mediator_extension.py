"""The event-sourced mediator: which aggregates' events reach the event store, three ways.

    python examples/event_sourcing/mediator_extension.py

Runs three examples in order against the in-memory adapters
(``InMemoryEventStore``, ``InMemoryUnitOfWork``), printing what each command
stored, and checks every claim it prints (a failed check raises, and the
script exits non-zero):

1. ``EventSourcedMediator`` built by hand with an
   ``EventSourcedPersistenceOrchestrator``: ``Order`` is registered
   event-sourced, ``UserPreferences`` not; both handlers return their events
   in a ``CommandResponse`` without a repository, and the orchestrator appends
   the order's events and leaves the preferences' out.
2. ``EventSourcedMediatorFactory``: the same registrations (and ``Invoice``)
   made on the factory, which builds the mediator; orders are saved through an
   ``EventSourcedRepository`` (it appends their events itself), invoices by
   returning their events, preferences through a state-stored
   ``InMemoryRepository``.
3. ``@non_event_sourced``: the mark alone keeps ``UserPreferences`` out of the
   event store when the orchestrator is asked about the class; the types are
   also registered on the factory, as a handler that returns events (which
   name their aggregate type only) would need.

Whatever the example, a command's events are also returned in its
``CommandResponse``: only where they are stored differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cqrs_ddd_advanced_core import EventSourcedAggregateMixin, aggregate_event_handler
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_advanced_core.cqrs import EventSourcedMediator, EventSourcedMediatorFactory
from cqrs_ddd_advanced_core.decorators import non_event_sourced
from cqrs_ddd_advanced_core.event_sourcing import (
    EventSourcedLoader,
    EventSourcedPersistenceOrchestrator,
    EventSourcedRepository,
)
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    CommandResponse,
    DomainEvent,
    EventTypeRegistry,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
)
from cqrs_ddd_core.ports.event_store import StoredEvent

# ---------------------------------------------------------------- the domain


class OrderCreated(DomainEvent):
    customer_id: str


class OrderConfirmed(DomainEvent):
    pass


class Order(EventSourcedAggregateMixin, AggregateRoot):
    """Event-sourced: rebuilt from its stream of events."""

    customer_id: str = ""
    status: str = "pending"

    @classmethod
    def create(cls, customer_id: str) -> Order:
        order = cls()
        order.trigger_event(OrderCreated(customer_id=customer_id))
        return order

    def confirm(self) -> None:
        self.trigger_event(OrderConfirmed())

    @aggregate_event_handler
    def _created(self, event: OrderCreated) -> None:
        self.customer_id = event.customer_id

    @aggregate_event_handler
    def _confirmed(self, event: OrderConfirmed) -> None:
        self.status = "confirmed"


class InvoiceIssued(DomainEvent):
    order_id: str
    amount: str


class Invoice(EventSourcedAggregateMixin, AggregateRoot):
    """Event-sourced as well; its handler returns its events instead of saving it."""

    order_id: str = ""
    amount: str = "0"

    @aggregate_event_handler
    def _issued(self, event: InvoiceIssued) -> None:
        self.order_id, self.amount = event.order_id, event.amount


class PreferencesChanged(DomainEvent):
    settings: dict[str, Any]


@non_event_sourced
class UserPreferences(AggregateRoot):
    """State-stored: saved as its current state, its events kept out of the event store."""

    user_id: str = ""
    settings: dict[str, Any] = {}

    def change(self, settings: dict[str, Any]) -> None:
        self.settings = {**self.settings, **settings}
        self.record_event(PreferencesChanged(settings=settings))


class CreateOrder(Command):
    customer_id: str


class ConfirmOrder(Command):
    order_id: str


class IssueInvoice(Command):
    order_id: str
    amount: str


class ChangePreferences(Command):
    user_id: str
    settings: dict[str, Any]


EVENT_TYPES = EventTypeRegistry([OrderCreated, OrderConfirmed, InvoiceIssued, PreferencesChanged])


# ---------------------------------------------------------------- helpers


def check(condition: bool, claim: str) -> None:
    """Raise when ``claim`` does not hold (unlike ``assert``, also under ``python -O``)."""
    if not condition:
        raise AssertionError(f"the example claims {claim}, but it does not hold")


def show(stored: list[StoredEvent]) -> str:
    return ", ".join(f"{e.aggregate_type}.{e.event_type} v{e.version}" for e in stored) or "none"


def names(events: Sequence[DomainEvent]) -> list[str]:
    return [type(event).__name__ for event in events]


# ---------------------------------------------------------------- the examples


async def example_direct_mediator() -> None:
    """Example 1: an ``EventSourcedMediator`` built by hand around an orchestrator.

    The handlers save nothing: they return their aggregate's events in a
    ``CommandResponse``. Those are the events the orchestrator decides on, by
    registration: ``Order`` appended to the event store, ``UserPreferences``
    skipped (still returned to the caller).
    """
    print("Example 1: EventSourcedMediator with an EventSourcedPersistenceOrchestrator")
    event_store = InMemoryEventStore()
    orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=event_store)
    orchestrator.register_event_sourced_type("Order")
    orchestrator.register_non_event_sourced_type("UserPreferences")

    handler_registry = HandlerRegistry()

    @handler_registry.command_handler(CreateOrder)
    async def create_order(command: CreateOrder) -> CommandResponse[str]:
        order = Order.create(command.customer_id)
        return CommandResponse(result=order.id, events=order.collect_events())

    @handler_registry.command_handler(ChangePreferences)
    async def change_preferences(command: ChangePreferences) -> CommandResponse[None]:
        preferences = UserPreferences(id=command.user_id, user_id=command.user_id)
        preferences.change(command.settings)
        return CommandResponse(result=None, events=preferences.collect_events())

    mediator = EventSourcedMediator(
        registry=handler_registry,
        uow_factory=InMemoryUnitOfWork,
        event_persistence_orchestrator=orchestrator,
    )

    created = await mediator.send(CreateOrder(customer_id="cust-123"))
    print(f"  CreateOrder returned {names(created.events)}")
    changed = await mediator.send(ChangePreferences(user_id="u-1", settings={"theme": "dark"}))
    print(f"  ChangePreferences returned {names(changed.events)}")

    stored = await event_store.read_all()
    print(f"  event store: {show(stored)}")
    check(
        [(e.aggregate_type, e.event_type) for e in stored] == [("Order", "OrderCreated")],
        "that the event store holds the order's OrderCreated and nothing else",
    )
    check(stored[0].stream_id == created.result, "that the order's id names its stream")
    check(
        stored[0].correlation_id == created.correlation_id,
        "that the stored event carries the command's correlation id",
    )
    check(names(created.events) == ["OrderCreated"], "that OrderCreated is returned")
    check(names(changed.events) == ["PreferencesChanged"], "that PreferencesChanged is returned")
    print("  stored event stamped with the command's correlation id")
    print("  UserPreferences events in the event store: none")


async def example_factory() -> None:
    """Example 2: ``EventSourcedMediatorFactory`` registers the types and builds the mediator.

    ``Order`` goes through an ``EventSourcedRepository``, whose ``save``
    appends its events in the command's unit of work; ``Invoice`` events are
    returned by their handler and appended by the orchestrator;
    ``UserPreferences`` is saved as state by an ``InMemoryRepository``.
    """
    print("Example 2: EventSourcedMediatorFactory")
    event_store = InMemoryEventStore()
    orders = EventSourcedRepository(EventSourcedLoader(Order, event_store, EVENT_TYPES))
    preferences = InMemoryRepository(UserPreferences)
    handler_registry = HandlerRegistry()

    @handler_registry.command_handler(CreateOrder)
    async def create_order(command: CreateOrder) -> str:
        order = Order.create(command.customer_id)
        await orders.save(order)
        return order.id

    @handler_registry.command_handler(ConfirmOrder)
    async def confirm_order(command: ConfirmOrder) -> None:
        order = await orders.get(command.order_id)
        order.confirm()
        await orders.save(order)

    @handler_registry.command_handler(IssueInvoice)
    async def issue_invoice(command: IssueInvoice) -> CommandResponse[str]:
        invoice = Invoice()
        invoice.trigger_event(InvoiceIssued(order_id=command.order_id, amount=command.amount))
        return CommandResponse(result=invoice.id, events=invoice.collect_events())

    @handler_registry.command_handler(ChangePreferences)
    async def change_preferences(command: ChangePreferences) -> None:
        found = await preferences.find(command.user_id)
        user = found or UserPreferences(id=command.user_id, user_id=command.user_id)
        user.change(command.settings)
        await preferences.save(user)

    factory = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=handler_registry,
    )
    factory.register_event_sourced_type("Order")
    factory.register_event_sourced_type("Invoice")
    factory.register_non_event_sourced_type("UserPreferences")
    mediator = factory.create()

    order_id = (await mediator.send(CreateOrder(customer_id="cust-123"))).result
    await mediator.send(ConfirmOrder(order_id=order_id))
    invoice_id = (await mediator.send(IssueInvoice(order_id=order_id, amount="49.90"))).result
    await mediator.send(ChangePreferences(user_id="u-1", settings={"theme": "dark"}))

    stored = await event_store.read_all()
    print(f"  event store: {show(stored)}")
    check(
        [(e.stream_id, e.event_type) for e in stored]
        == [
            (order_id, "OrderCreated"),
            (order_id, "OrderConfirmed"),
            (invoice_id, "InvoiceIssued"),
        ],
        "that the order's two events and the invoice's one are stored, in order",
    )
    order = await orders.get(order_id)
    check(order.status == "confirmed" and order.version == 2, "that the order replays")
    print(f"  order rebuilt from its stream: status {order.status}, version {order.version}")
    user = await preferences.get("u-1")
    check(user.settings == {"theme": "dark"}, "that the preferences' state was saved")
    check(
        all(e.aggregate_type != "UserPreferences" for e in stored),
        "that no UserPreferences event reached the event store",
    )
    print(f"  preferences kept as state: {user.settings}, no events in the event store")


async def example_decorator() -> None:
    """Example 3: ``@non_event_sourced`` marks ``UserPreferences`` as state-stored.

    Asked about the class, the orchestrator honours the mark without any
    registration; about a bare name, it cannot see the mark and falls back to
    the default (event-sourced). So the types are registered as well, and a
    handler returning ``UserPreferences`` events without saving them would be
    covered too.
    """
    print("Example 3: @non_event_sourced")
    event_store = InMemoryEventStore()
    orders = EventSourcedRepository(EventSourcedLoader(Order, event_store, EVENT_TYPES))
    preferences = InMemoryRepository(UserPreferences)
    handler_registry = HandlerRegistry()

    @handler_registry.command_handler(CreateOrder)
    async def create_order(command: CreateOrder) -> str:
        order = Order.create(command.customer_id)
        await orders.save(order)
        return order.id

    @handler_registry.command_handler(ChangePreferences)
    async def change_preferences(command: ChangePreferences) -> None:
        found = await preferences.find(command.user_id)
        user = found or UserPreferences(id=command.user_id, user_id=command.user_id)
        user.change(command.settings)
        await preferences.save(user)

    factory = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=handler_registry,
    )
    orchestrator = factory.orchestrator
    marked = orchestrator.is_event_sourced(UserPreferences)
    by_name = orchestrator.is_event_sourced("UserPreferences")
    check(not marked, "that the mark alone makes the class non-event-sourced")
    check(by_name, "that a bare name without registration is event-sourced by default")
    check(orchestrator.is_event_sourced(Order), "that an unmarked class is event-sourced")
    print(f"  before registering: is_event_sourced(UserPreferences) = {marked} (the mark)")
    print(f"  before registering: is_event_sourced('UserPreferences') = {by_name} (the default)")

    factory.register_event_sourced_type("Order")
    factory.register_non_event_sourced_type("UserPreferences")
    by_name = orchestrator.is_event_sourced("UserPreferences")
    check(not by_name, "that the registration covers the bare name")
    print(f"  after registering: is_event_sourced('UserPreferences') = {by_name}")
    mediator = factory.create()

    order_id = (await mediator.send(CreateOrder(customer_id="cust-789"))).result
    first = await mediator.send(ChangePreferences(user_id="u-2", settings={"theme": "light"}))
    await mediator.send(ChangePreferences(user_id="u-2", settings={"language": "el"}))

    stored = await event_store.read_all()
    print(f"  event store: {show(stored)}")
    check(
        [(e.stream_id, e.event_type) for e in stored] == [(order_id, "OrderCreated")],
        "that only the order's event is stored",
    )
    check(names(first.events) == ["PreferencesChanged"], "that PreferencesChanged is returned")
    user = await preferences.get("u-2")
    check(
        user.settings == {"theme": "light", "language": "el"} and user.version == 2,
        "that both preference changes were saved as state",
    )
    print(f"  preferences kept as state: {user.settings}, version {user.version}")


async def main() -> None:
    await example_direct_mediator()
    await example_factory()
    await example_decorator()
    print("all three examples ran as described")


if __name__ == "__main__":
    asyncio.run(main())
