"""Every code example of the spec's event-sourcing sections, run against in-memory adapters.

The sections: "Event Sourcing" (its Quick Example), "Migration Guides", the
second half from "Key Methods" through "Package Exports", "Architecture
Decisions", "Usage Examples" 1-3 and "Migration Path". The examples' code is
kept as the spec writes it; around it stand only the user's own domain (the
shop of ``advanced_test_model``) and the in-memory event store and unit of work.
"""

from __future__ import annotations

import importlib
from decimal import Decimal
from typing import Any

import pytest
from advanced_test_model import (
    ChangePreferences,
    CreateOrder,
    IssueInvoice,
    Order,
    OrderCreated,
    PreferencesChanged,
    RecordingDispatcher,
    Shop,
    UserPreferences,
    build_shop,
)

import cqrs_ddd_advanced_core
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_advanced_core.cqrs import EventSourcedMediator, EventSourcedMediatorFactory
from cqrs_ddd_advanced_core.decorators import non_event_sourced
from cqrs_ddd_advanced_core.event_sourcing import EventSourcedPersistenceOrchestrator
from cqrs_ddd_core import (
    AggregateRoot,
    CommandResponse,
    ConcurrencyError,
    DomainEvent,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    Query,
)
from cqrs_ddd_core.cqrs import Mediator


@pytest.fixture(
    params=[False, True], ids=["handler-returns-events", "handler-saves-through-repository"]
)
def shop(request: pytest.FixtureRequest, event_store: InMemoryEventStore) -> Shop:
    """The shop, with ``CreateOrder`` handing on its events each way the framework offers."""
    through_repository: bool = request.param
    return build_shop(event_store, create_through_repository=through_repository)


async def stream_types(event_store: InMemoryEventStore, stream_id: str) -> list[str]:
    return [event.event_type for event in await event_store.load_stream(stream_id)]


async def all_types(event_store: InMemoryEventStore) -> list[str]:
    return [event.event_type for event in await event_store.read_all()]


# ---------------------------------------------------------------- Event Sourcing: Quick Example


async def test_the_quick_example_appends_the_new_order_s_events_to_its_stream(shop: Shop) -> None:
    # given
    event_store, uow_factory, handler_registry = shop.event_store, InMemoryUnitOfWork, shop.registry
    # the spec's setup
    factory = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=uow_factory,
        handler_registry=handler_registry,
    )
    factory.register_event_sourced_type("Order")
    mediator = factory.create()
    # when: events auto-persisted
    await mediator.send(CreateOrder(order_id="order_123", customer_id="cust_456"))
    # then
    stored = await event_store.load_stream("order_123")
    assert [event.event_type for event in stored] == ["OrderCreated"]
    assert stored[0].payload == {"customer_id": "cust_456"}
    assert (stored[0].aggregate_type, stored[0].version) == ("Order", 1)


# ---------------------------------------------------------------- Migration Guides


async def test_the_migration_guide_s_mediator_before_and_after_serve_the_same_registry(
    shop: Shop,
) -> None:
    # given: the mediator before the migration
    event_store, uow_factory, handler_registry = shop.event_store, InMemoryUnitOfWork, shop.registry
    before = Mediator(
        registry=handler_registry,
        uow_factory=uow_factory,
    )
    # and the mediator after it
    factory = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=uow_factory,
        handler_registry=handler_registry,
    )
    factory.register_event_sourced_type("Order")
    after = factory.create()
    # when
    old_id = (await before.send(CreateOrder(customer_id="cust-1"))).result
    new_id = (await after.send(CreateOrder(customer_id="cust-2"))).result
    # then: events a handler returns are kept by the event-sourced mediator only;
    # an EventSourcedRepository appends the events it saves under either mediator
    kept_before = ["OrderCreated"] if shop.create_through_repository else []
    assert await stream_types(event_store, old_id) == kept_before
    assert await stream_types(event_store, new_id) == ["OrderCreated"]


# ---------------------------------------------------------------- Key Methods (orchestrator)


async def test_the_orchestrator_s_key_methods_route_and_persist_events(shop: Shop) -> None:
    # given
    other_store = InMemoryEventStore()
    orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=shop.event_store)
    orchestrator.register_event_sourced_type("Order")
    orchestrator.register_event_sourced_type("Invoice", event_store=other_store)
    orchestrator.register_non_event_sourced_type("UserPreferences")
    order = Order.create("cust-1", "o-1")
    order.pay()
    first, second = order.collect_events()
    command_response = CommandResponse(result=None, correlation_id="corr-1", causation_id="cmd-1")
    # when
    await orchestrator.persist_event(first, command_response)
    await orchestrator.persist_events([second], command_response)
    # then
    assert orchestrator.is_event_sourced("Order")
    assert orchestrator.is_event_sourced("Invoice")
    assert not orchestrator.is_event_sourced("UserPreferences")
    stored = await shop.event_store.load_stream("o-1")
    assert [event.event_type for event in stored] == ["OrderCreated", "OrderPaid"]
    assert {(event.correlation_id, event.causation_id) for event in stored} == {("corr-1", "cmd-1")}


# ---------------------------------------------------------------- EventSourcedMediator usage


async def test_the_event_sourced_mediator_usage_example_persists_order_events(
    shop: Shop,
) -> None:
    # given
    event_store, uow_factory, handler_registry = shop.event_store, InMemoryUnitOfWork, shop.registry
    orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=event_store)
    orchestrator.register_event_sourced_type("Order")

    mediator = EventSourcedMediator(
        registry=handler_registry,
        uow_factory=uow_factory,
        event_persistence_orchestrator=orchestrator,
    )
    # when
    response = await mediator.send(CreateOrder(customer_id="cust-1"))
    # then
    assert await stream_types(event_store, response.result) == ["OrderCreated"]


# ---------------------------------------------------------------- EventSourcedMediatorFactory usage


async def test_the_factory_usage_example_keeps_order_events_and_not_preference_events(
    shop: Shop,
) -> None:
    # given
    event_store, uow_factory, handler_registry = shop.event_store, InMemoryUnitOfWork, shop.registry
    factory = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=uow_factory,
        handler_registry=handler_registry,
    )
    factory.register_event_sourced_type("Order")
    factory.register_non_event_sourced_type("UserPreferences")
    mediator = factory.create()
    # when
    order_id = (await mediator.send(CreateOrder(customer_id="cust-1"))).result
    await mediator.send(ChangePreferences(user_id="u-1", settings={"theme": "dark"}))
    # then
    assert await all_types(event_store) == ["OrderCreated"]
    assert await stream_types(event_store, order_id) == ["OrderCreated"]
    assert (await shop.preferences.get("u-1")).settings == {"theme": "dark"}


# ---------------------------------------------------------------- @non_event_sourced usage


async def test_the_decorator_usage_example_keeps_a_marked_aggregate_out_of_the_event_store(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given: the spec's UserPreferences, marked @non_event_sourced in the shared model
    factory = EventSourcedMediatorFactory(
        event_store=shop.event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=shop.registry,
        event_dispatcher=dispatcher,
    )
    mediator = factory.create()
    # when: no registration at all, only the mark
    await mediator.send(ChangePreferences(user_id="u-1", settings={"theme": "dark"}))
    # then
    assert await shop.event_store.read_all() == []
    assert [type(event) for event in dispatcher.received] == [PreferencesChanged]


# ---------------------------------------------------------------- Package Exports


def test_the_package_exports_example_imports_every_listed_name() -> None:
    # when
    from cqrs_ddd_advanced_core import (
        EventHandlerError,
        EventSourcedAggregateRequiredError,
        EventSourcedMediator,
        EventSourcedMediatorFactory,
        EventSourcedPersistenceOrchestrator,
        EventSourcingConfigurationError,
        InvalidEventHandlerError,
        MissingEventHandlerError,
        StrictValidationViolationError,
        non_event_sourced,
    )

    # then
    listed = {
        EventSourcedMediator,
        EventSourcedMediatorFactory,
        EventSourcedPersistenceOrchestrator,
        non_event_sourced,
        EventHandlerError,
        MissingEventHandlerError,
        InvalidEventHandlerError,
        StrictValidationViolationError,
        EventSourcedAggregateRequiredError,
        EventSourcingConfigurationError,
    }
    assert {getattr(item, "__name__", None) for item in listed} <= set(
        cqrs_ddd_advanced_core.__all__
    )


# ---------------------------------------------------------------- Architecture Decisions


class GetOrderStatus(Query):
    order_id: str


async def test_extending_instead_of_modifying_leaves_core_handlers_and_queries_unchanged(
    shop: Shop,
) -> None:
    # given: one registry with command and query handlers, under both mediators
    loader = shop.order_loader()

    @shop.registry.query_handler(GetOrderStatus)
    async def get_status(query: GetOrderStatus) -> str:
        return (await loader.load(query.order_id)).status

    core = Mediator(registry=shop.registry, uow_factory=InMemoryUnitOfWork)
    extended = EventSourcedMediator(
        registry=shop.registry,
        uow_factory=InMemoryUnitOfWork,
        event_persistence_orchestrator=EventSourcedPersistenceOrchestrator(
            default_event_store=shop.event_store
        ),
    )
    # when
    core_response = await core.send(CreateOrder(customer_id="cust-1", order_id="o-core"))
    extended_response = await extended.send(CreateOrder(customer_id="cust-1", order_id="o-es"))
    # then: the same results, and queries answer through either mediator
    assert (core_response.result, extended_response.result) == ("o-core", "o-es")
    assert await extended.query(GetOrderStatus(order_id="o-es")) == "pending"
    assert await core.query(GetOrderStatus(order_id="o-es")) == "pending"


class CreateOrderForUser(ChangePreferences):
    """Creates an order and remembers it in the user's preferences, in one command."""

    customer_id: str


def register_create_order_for_user(shop: Shop) -> None:
    @shop.registry.command_handler(CreateOrderForUser)
    async def create_order_for_user(command: CreateOrderForUser) -> str:
        order = Order.create(command.customer_id)
        await shop.orders.save(order)
        found = await shop.preferences.find(command.user_id)
        preferences = found or UserPreferences(
            id=command.user_id, user_id=command.user_id, settings={}
        )
        preferences.change({**command.settings, "last_order": order.id})
        await shop.preferences.save(preferences)
        return order.id


async def test_aggregate_state_and_events_are_committed_in_the_same_transaction(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given: the spec's storage flow, a state-stored and an event-sourced aggregate in one command
    register_create_order_for_user(shop)
    factory = EventSourcedMediatorFactory(
        event_store=shop.event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=shop.registry,
        event_dispatcher=dispatcher,
    )
    mediator = factory.create()
    # when
    command = CreateOrderForUser(user_id="u-1", customer_id="cust-1", settings={})
    order_id = (await mediator.send(command)).result
    # then: state row and events are both there, dispatched after the commit
    assert (await shop.preferences.get("u-1")).settings == {"last_order": order_id}
    assert await stream_types(shop.event_store, order_id) == ["OrderCreated"]
    assert [type(event) for event in dispatcher.received] == [OrderCreated, PreferencesChanged]


async def test_when_the_state_write_fails_the_events_are_not_stored_either(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given: preferences that a first command saved, and a copy of them that goes stale
    register_create_order_for_user(shop)
    mediator = EventSourcedMediatorFactory(
        event_store=shop.event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=shop.registry,
        event_dispatcher=dispatcher,
    ).create()
    await mediator.send(ChangePreferences(user_id="u-1", settings={"theme": "dark"}))
    stale = await shop.preferences.get("u-1")
    await mediator.send(ChangePreferences(user_id="u-1", settings={"theme": "light"}))
    dispatcher.received.clear()
    registry = HandlerRegistry()

    @registry.command_handler(CreateOrderForUser)
    async def create_order_for_stale_user(command: CreateOrderForUser) -> str:
        order = Order.create(command.customer_id, "o-1")
        await shop.orders.save(order)
        stale.change({"last_order": order.id})
        await shop.preferences.save(stale)
        return order.id

    late = EventSourcedMediatorFactory(
        event_store=shop.event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=registry,
        event_dispatcher=dispatcher,
    ).create()
    # when
    with pytest.raises(ConcurrencyError):
        await late.send(CreateOrderForUser(user_id="u-1", customer_id="cust-1", settings={}))
    # then
    assert await shop.event_store.load_stream("o-1") == []
    assert await shop.event_store.read_all() == []
    assert (await shop.preferences.get("u-1")).settings == {"theme": "light"}
    assert dispatcher.received == []


# ---------------------------------------------------------------- Usage Examples


async def test_example_1_direct_event_sourced_mediator_usage(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given
    event_store, uow_factory, handler_registry = shop.event_store, InMemoryUnitOfWork, shop.registry
    # Setup orchestrator (requires default_event_store)
    orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=event_store)
    orchestrator.register_event_sourced_type("Order")
    orchestrator.register_non_event_sourced_type("UserPreferences")

    # Create mediator with event persistence (same registry/uow_factory as core Mediator)
    mediator = EventSourcedMediator(
        registry=handler_registry,
        uow_factory=uow_factory,
        event_persistence_orchestrator=orchestrator,
        event_dispatcher=dispatcher,
    )
    command = CreateOrder(customer_id="cust-123")
    # when: use mediator - events auto-persisted
    response = await mediator.send(command)
    await mediator.send(ChangePreferences(user_id="u-1", settings={"lang": "en"}))
    # then: the order's stream holds its event, stamped with the command's ids
    order_id = response.result
    stored = await event_store.load_stream(order_id)
    assert [event.event_type for event in stored] == ["OrderCreated"]
    assert stored[0].payload == {"customer_id": "cust-123"}
    assert stored[0].correlation_id == str(command.command_id)
    assert stored[0].causation_id == str(command.command_id)
    # and the preferences' event reached the dispatcher, not the event store
    assert await all_types(event_store) == ["OrderCreated"]
    assert [type(event) for event in dispatcher.received] == [OrderCreated, PreferencesChanged]
    assert dispatcher.received[0].event_id == stored[0].event_id


async def test_example_1_events_carry_a_correlation_id_given_by_the_caller(shop: Shop) -> None:
    # given
    orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=shop.event_store)
    orchestrator.register_event_sourced_type("Order")
    mediator = EventSourcedMediator(
        registry=shop.registry,
        uow_factory=InMemoryUnitOfWork,
        event_persistence_orchestrator=orchestrator,
    )
    command = CreateOrder(customer_id="cust-123", correlation_id="checkout-7")
    # when
    order_id = (await mediator.send(command)).result
    # then
    [stored] = await shop.event_store.load_stream(order_id)
    assert (stored.correlation_id, stored.causation_id) == ("checkout-7", str(command.command_id))


async def test_example_2_factory_keeps_order_and_invoice_events_but_not_preferences(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given
    event_store, uow_factory, handler_registry = shop.event_store, InMemoryUnitOfWork, shop.registry
    # Factory takes event_store, uow_factory, handler_registry
    factory = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=uow_factory,
        handler_registry=handler_registry,
        event_dispatcher=dispatcher,
    )
    factory.register_event_sourced_type("Order")
    factory.register_event_sourced_type("Invoice")
    factory.register_non_event_sourced_type("UserPreferences")
    mediator = factory.create()
    # when: events automatically persisted
    order_id = (await mediator.send(CreateOrder(customer_id="cust-123"))).result
    invoice = IssueInvoice(order_id=order_id, amount=Decimal("12.50"), invoice_id="inv-1")
    await mediator.send(invoice)
    await mediator.send(ChangePreferences(user_id="u-1", settings={"lang": "en"}))
    # then
    assert await stream_types(event_store, order_id) == ["OrderCreated"]
    assert await stream_types(event_store, "inv-1") == ["InvoiceIssued"]
    assert await all_types(event_store) == ["OrderCreated", "InvoiceIssued"]
    assert [event.event_type for event in dispatcher.received] == [
        "OrderCreated",
        "InvoiceIssued",
        "PreferencesChanged",
    ]


async def test_example_3_decorator_based_registration(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given: Order event-sourced by default, UserPreferences marked @non_event_sourced
    event_store, uow_factory, handler_registry = shop.event_store, InMemoryUnitOfWork, shop.registry
    # Register types explicitly with factory
    factory = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=uow_factory,
        handler_registry=handler_registry,
        event_dispatcher=dispatcher,
    )
    factory.register_event_sourced_type("Order")
    factory.register_non_event_sourced_type("UserPreferences")
    mediator = factory.create()
    # when
    order_id = (await mediator.send(CreateOrder(customer_id="cust-123"))).result
    await mediator.send(ChangePreferences(user_id="u-1", settings={"lang": "en"}))
    # then
    assert await all_types(event_store) == ["OrderCreated"]
    assert await stream_types(event_store, order_id) == ["OrderCreated"]
    assert [type(event) for event in dispatcher.received] == [OrderCreated, PreferencesChanged]


class PlainOrderCreated(DomainEvent):
    customer_id: str


class PlainOrder(AggregateRoot):
    """Example 3's ``Order`` as the spec writes it: a plain ``AggregateRoot``."""

    id: str
    customer_id: str
    status: str = "pending"


@non_event_sourced
class PlainPreferences(AggregateRoot):
    """Example 3's ``UserPreferences`` as the spec writes it."""

    user_id: str
    settings: dict[str, Any]


async def test_example_3_defaults_without_any_registration(
    event_store: InMemoryEventStore, dispatcher: RecordingDispatcher
) -> None:
    # given: the example's two classes, and a mediator told nothing about them;
    # the handler saves the state-stored preferences through their repository
    # and returns the order's events
    registry = HandlerRegistry()
    preferences_repository = InMemoryRepository(PlainPreferences)

    @registry.command_handler(CreateOrder)
    async def create(command: CreateOrder) -> CommandResponse[str]:
        order = PlainOrder(id=command.order_id or "o-1", customer_id=command.customer_id)
        order.record_event(PlainOrderCreated(customer_id=command.customer_id))
        preferences = PlainPreferences(user_id=command.customer_id, settings={})
        preferences.record_event(PreferencesChanged(settings={}))
        await preferences_repository.save(preferences)
        return CommandResponse(result=order.id, events=order.collect_events())

    mediator = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=registry,
        event_dispatcher=dispatcher,
    ).create()
    # when
    await mediator.send(CreateOrder(customer_id="cust-123", order_id="o-1"))
    # then: the plain aggregate is event-sourced by default; the marked one is not
    assert await all_types(event_store) == ["PlainOrderCreated"]
    assert len(preferences_repository) == 1
    # and both are dispatched: what repositories saved first, then what the handler returned
    assert [event.event_type for event in dispatcher.received] == [
        "PreferencesChanged",
        "PlainOrderCreated",
    ]


# ---------------------------------------------------------------- Migration Path


async def test_migration_path_steps_1_and_2_swap_the_mediator_keeping_registry_and_uow(
    shop: Shop,
) -> None:
    # given: step 1 (old and new imports) and the old mediator
    event_store, uow_factory, handler_registry = shop.event_store, InMemoryUnitOfWork, shop.registry
    old = Mediator(registry=handler_registry, uow_factory=uow_factory)
    # step 2: create orchestrator (requires default_event_store)
    orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=event_store)
    orchestrator.register_event_sourced_type("Order")
    orchestrator.register_event_sourced_type("Invoice")

    # same registry and uow_factory, add event_persistence_orchestrator
    mediator = EventSourcedMediator(
        registry=handler_registry,
        uow_factory=uow_factory,
        event_persistence_orchestrator=orchestrator,
    )
    # when
    await old.send(CreateOrder(customer_id="cust-1", order_id="o-old"))
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-new"))
    await mediator.send(IssueInvoice(order_id="o-new", amount=Decimal("3"), invoice_id="inv-1"))
    # then: the old mediator keeps only what an EventSourcedRepository appended
    kept_by_old = ["OrderCreated"] if shop.create_through_repository else []
    assert await stream_types(event_store, "o-old") == kept_by_old
    assert await stream_types(event_store, "o-new") == ["OrderCreated"]
    assert await stream_types(event_store, "inv-1") == ["InvoiceIssued"]


async def test_migration_path_step_3_configures_types_on_the_created_mediator(
    shop: Shop,
) -> None:
    # given: a mediator whose orchestrator was told Order and Invoice are state-stored
    orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=shop.event_store)
    orchestrator.register_non_event_sourced_type("Order")
    mediator = EventSourcedMediator(
        registry=shop.registry,
        uow_factory=InMemoryUnitOfWork,
        event_persistence_orchestrator=orchestrator,
    )
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-before"))
    await mediator.send(
        IssueInvoice(order_id="o-before", amount=Decimal("1"), invoice_id="inv-before")
    )
    # when: step 3
    mediator.configure_event_sourced_type("Order")
    mediator.configure_non_event_sourced_type("Invoice")
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-after"))
    await mediator.send(
        IssueInvoice(order_id="o-after", amount=Decimal("1"), invoice_id="inv-after")
    )
    # then: the registrations decide for the events a handler returns; an
    # EventSourcedRepository appends the events it saves whatever they say
    appended_by_repository = ["OrderCreated"] if shop.create_through_repository else []
    assert await all_types(shop.event_store) == [
        *appended_by_repository,
        "InvoiceIssued",
        "OrderCreated",
    ]
    assert await stream_types(shop.event_store, "o-before") == appended_by_repository
    assert await stream_types(shop.event_store, "o-after") == ["OrderCreated"]
    assert await stream_types(shop.event_store, "inv-before") == ["InvoiceIssued"]
    assert await shop.event_store.load_stream("inv-after") == []


# ---------------------------------------------------------------- one object, several paths


@pytest.mark.parametrize(
    ("name", "modules"),
    [
        (
            "EventSourcedMediatorFactory",
            [
                "cqrs_ddd_advanced_core",
                "cqrs_ddd_advanced_core.event_sourcing",
                "cqrs_ddd_advanced_core.cqrs",
                "cqrs_ddd_advanced_core.cqrs.factory",
            ],
        ),
        (
            "EventSourcedMediator",
            [
                "cqrs_ddd_advanced_core",
                "cqrs_ddd_advanced_core.cqrs",
                "cqrs_ddd_advanced_core.cqrs.event_sourced_mediator",
                "cqrs_ddd_advanced_core.event_sourcing.mediator",
            ],
        ),
        (
            "EventSourcedPersistenceOrchestrator",
            [
                "cqrs_ddd_advanced_core",
                "cqrs_ddd_advanced_core.event_sourcing",
                "cqrs_ddd_advanced_core.event_sourcing.persistence",
                "cqrs_ddd_advanced_core.event_sourcing.persistence_orchestrator",
            ],
        ),
        ("non_event_sourced", ["cqrs_ddd_advanced_core", "cqrs_ddd_advanced_core.decorators"]),
        *[
            (error, ["cqrs_ddd_advanced_core", "cqrs_ddd_advanced_core.domain.exceptions"])
            for error in (
                "EventHandlerError",
                "MissingEventHandlerError",
                "InvalidEventHandlerError",
                "StrictValidationViolationError",
                "EventSourcedAggregateRequiredError",
                "EventSourcingConfigurationError",
            )
        ],
    ],
)
def test_every_path_the_spec_names_gives_the_very_same_object(
    name: str, modules: list[str]
) -> None:
    # when
    found = [getattr(importlib.import_module(module), name) for module in modules]
    # then
    assert all(item is found[0] for item in found)


def test_the_event_sourced_mediator_is_a_core_mediator() -> None:
    assert issubclass(EventSourcedMediator, Mediator)
