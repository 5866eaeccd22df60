"""One path for a command's events: the repository that saves an aggregate decides where they go.

An event-sourced aggregate saved through ``EventSourcedRepository`` has its
events appended to its stream, once, by the repository; a state-stored one
saved through ``InMemoryRepository`` keeps them with its state and never in the
event store, whatever the orchestrator's registrations say. Only the events a
handler returns without saving them are left to the orchestrator.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from advanced_test_model import (
    AddItem,
    ChangePreferences,
    CreateOrder,
    IssueInvoice,
    Order,
    PayOrder,
    RecordingDispatcher,
    RecordingEventStore,
    Shop,
    build_shop,
    shop_event_types,
)

from cqrs_ddd_advanced_core import (
    EventSourcedLoader,
    EventSourcedMediator,
    EventSourcedMediatorFactory,
    EventSourcedRepository,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core import (
    AggregateRoot,
    Command,
    ConcurrencyError,
    DomainEvent,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    Mediator,
)
from cqrs_ddd_core.cqrs import CommandPhase, phase_of


class CustomerRegistered(DomainEvent):
    name: str


class Customer(AggregateRoot):
    """A state-stored aggregate that is neither marked nor registered."""

    name: str = ""


class RegisterCustomer(Command):
    customer_id: str
    name: str


def customers_handled_by(registry: HandlerRegistry) -> InMemoryRepository[Customer]:
    """Register a ``RegisterCustomer`` handler saving through a new in-memory repository."""
    customers = InMemoryRepository(Customer)

    @registry.command_handler(RegisterCustomer)
    async def register(command: RegisterCustomer) -> None:
        customer = Customer(id=command.customer_id, name=command.name)
        customer.record_event(CustomerRegistered(name=command.name))
        await customers.save(customer)

    return customers


def factory_for(shop: Shop, dispatcher: RecordingDispatcher) -> EventSourcedMediatorFactory:
    return EventSourcedMediatorFactory(
        event_store=shop.event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=shop.registry,
        event_dispatcher=dispatcher,
    )


async def types_in(store: InMemoryEventStore) -> list[str]:
    return [event.event_type for event in await store.read_all()]


# ---------------------------------------------------------------- state-stored aggregates


@pytest.mark.parametrize("registered_event_sourced", [False, True], ids=["unregistered", "mistake"])
async def test_a_state_stored_aggregate_s_events_never_reach_the_event_store(
    shop: Shop, dispatcher: RecordingDispatcher, registered_event_sourced: bool
) -> None:
    # given: an unmarked state-stored aggregate, perhaps registered event-sourced by mistake
    factory = factory_for(shop, dispatcher)
    customers = customers_handled_by(shop.registry)
    if registered_event_sourced:
        factory.register_event_sourced_type(Customer)
    mediator = factory.create()
    # when
    response = await mediator.send(RegisterCustomer(customer_id="c-1", name="Ada"))
    # then: the state is stored, the event returned and dispatched, and not appended
    assert (await customers.get("c-1")).name == "Ada"
    assert [event.event_type for event in response.events] == ["CustomerRegistered"]
    assert [event.event_type for event in dispatcher.received] == ["CustomerRegistered"]
    assert await shop.event_store.read_all() == []


async def test_a_marked_aggregate_configured_event_sourced_still_keeps_its_events_with_its_state(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given: the @non_event_sourced UserPreferences, configured event-sourced on the mediator
    mediator = factory_for(shop, dispatcher).create()
    mediator.configure_event_sourced_type("UserPreferences")
    # when
    await mediator.send(ChangePreferences(user_id="u-1", settings={"theme": "dark"}))
    # then
    assert await shop.event_store.read_all() == []
    assert [event.event_type for event in dispatcher.received] == ["PreferencesChanged"]
    assert (await shop.preferences.get("u-1")).settings == {"theme": "dark"}


# ---------------------------------------------------------------- event-sourced aggregates


async def test_an_event_sourced_repository_appends_each_save_once_in_the_command(
    dispatcher: RecordingDispatcher,
) -> None:
    # given: a shop whose event store remembers every append
    store = RecordingEventStore()
    orders = EventSourcedRepository(EventSourcedLoader(Order, store, shop_event_types()))
    registry = HandlerRegistry()

    @registry.command_handler(CreateOrder)
    async def create_and_pay(command: CreateOrder) -> None:
        order = Order.create(command.customer_id, command.order_id)
        await orders.save(order)
        order.pay()
        await orders.save(order)

    mediator = EventSourcedMediatorFactory(
        event_store=store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=registry,
        event_dispatcher=dispatcher,
    ).create()
    command = CreateOrder(customer_id="cust-1", order_id="o-1")
    # when
    response = await mediator.send(command)
    # then: one append per save, none by the orchestrator
    assert [(a.stream_id, a.versions, a.expected_version) for a in store.appends] == [
        ("o-1", [1], 0),
        ("o-1", [2], 1),
    ]
    stored = await store.load_stream("o-1")
    assert [event.event_id for event in stored] == [event.event_id for event in response.events]
    assert {(event.correlation_id, event.causation_id) for event in stored} == {
        (str(command.command_id), str(command.command_id))
    }
    assert [event.event_id for event in dispatcher.received] == [e.event_id for e in stored]


async def test_an_event_sourced_repository_appends_even_when_its_type_is_registered_state_stored(
    event_store: InMemoryEventStore, dispatcher: RecordingDispatcher
) -> None:
    # given: the order's repository is event-sourced; the registration says otherwise
    shop = build_shop(event_store, create_through_repository=True)
    factory = factory_for(shop, dispatcher)
    factory.register_non_event_sourced_type(Order)
    mediator = factory.create()
    # when
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    await mediator.send(PayOrder(order_id="o-1"))
    # then: the repository decides
    assert await types_in(event_store) == ["OrderCreated", "OrderPaid"]
    assert (await shop.orders.get("o-1")).status == "paid"


async def test_an_event_sourced_repository_under_the_core_mediator_stores_its_events(
    event_store: InMemoryEventStore, dispatcher: RecordingDispatcher
) -> None:
    # given: the plain core mediator, which persists nothing itself
    shop = build_shop(event_store, create_through_repository=True)
    mediator = Mediator(
        registry=shop.registry, uow_factory=InMemoryUnitOfWork, event_dispatcher=dispatcher
    )
    command = AddItem(order_id="o-1", sku="sku-1", quantity=2, unit_price=Decimal("1.50"))
    # when
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    response = await mediator.send(command)
    # then
    stored = await event_store.load_stream("o-1")
    assert [(event.event_type, event.version) for event in stored] == [
        ("OrderCreated", 1),
        ("ItemAdded", 2),
    ]
    assert (stored[1].causation_id, stored[1].event_id) == (
        str(command.command_id),
        response.events[0].event_id,
    )
    assert (await shop.orders.get("o-1")).total == Decimal(3)
    assert [event.event_type for event in dispatcher.received] == ["OrderCreated", "ItemAdded"]


async def test_a_stale_aggregate_is_refused_by_save_while_the_handler_runs(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given: an order, a stale copy of it, and a change committed since
    mediator = factory_for(shop, dispatcher).create()
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    stale = await shop.orders.get("o-1")
    await mediator.send(PayOrder(order_id="o-1"))
    refusals: list[ConcurrencyError] = []
    registry = HandlerRegistry()

    @registry.command_handler(AddItem)
    async def add_to_stale_copy(command: AddItem) -> None:
        stale.add_item(command.sku, command.quantity, command.unit_price)
        try:
            await shop.orders.save(stale)
        except ConcurrencyError as error:
            refusals.append(error)
            raise

    stale_mediator = EventSourcedMediator(registry=registry, uow_factory=InMemoryUnitOfWork)
    # when
    with pytest.raises(ConcurrencyError) as raised:
        await stale_mediator.send(
            AddItem(order_id="o-1", sku="sku-1", quantity=1, unit_price=Decimal(1))
        )
    # then: the handler saw the refusal, and the error is tagged as raised while handling
    assert refusals == [raised.value]
    assert (raised.value.expected_version, raised.value.actual_version) == (1, 2)
    assert phase_of(raised.value) is CommandPhase.HANDLE
    assert await types_in(shop.event_store) == ["OrderCreated", "OrderPaid"]


# ---------------------------------------------------------------- events a handler returns


async def test_events_a_handler_returns_without_a_repository_are_appended_by_default(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given
    mediator = factory_for(shop, dispatcher).create()
    # when: the invoice's handler returns its events instead of saving the invoice
    await mediator.send(IssueInvoice(order_id="o-1", amount=Decimal(5), invoice_id="inv-1"))
    # then
    assert await types_in(shop.event_store) == ["InvoiceIssued"]


async def test_events_a_handler_returns_of_a_type_registered_state_stored_are_not_appended(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given
    factory = factory_for(shop, dispatcher)
    factory.register_non_event_sourced_type("Invoice")
    mediator = factory.create()
    # when
    await mediator.send(IssueInvoice(order_id="o-1", amount=Decimal(5), invoice_id="inv-1"))
    # then
    assert await shop.event_store.read_all() == []
    assert [event.event_type for event in dispatcher.received] == ["InvoiceIssued"]


async def test_one_command_saving_both_kinds_appends_only_the_event_sourced_events(
    event_store: InMemoryEventStore, dispatcher: RecordingDispatcher
) -> None:
    # given: a handler saving a new order and a new customer
    shop = build_shop(event_store)
    customers = InMemoryRepository(Customer)
    registry = HandlerRegistry()

    @registry.command_handler(RegisterCustomer)
    async def register_with_first_order(command: RegisterCustomer) -> None:
        customer = Customer(id=command.customer_id, name=command.name)
        customer.record_event(CustomerRegistered(name=command.name))
        await customers.save(customer)
        await shop.orders.save(Order.create(command.customer_id, f"{command.customer_id}-o1"))

    mediator = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=registry,
        event_dispatcher=dispatcher,
    ).create()
    # when
    response = await mediator.send(RegisterCustomer(customer_id="c-1", name="Ada"))
    # then
    assert await types_in(event_store) == ["OrderCreated"]
    assert [event.event_type for event in response.events] == [
        "CustomerRegistered",
        "OrderCreated",
    ]
    assert [event.event_type for event in dispatcher.received] == [
        "CustomerRegistered",
        "OrderCreated",
    ]
