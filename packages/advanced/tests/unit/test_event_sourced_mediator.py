"""The event-sourced mediator: the core mediator, appending events inside the command's transaction.

The first tests are those the spec lists under "Tests Implemented", by behaviour.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from advanced_test_model import (
    AddItem,
    ChangePreferences,
    CreateOrder,
    IssueInvoice,
    ItemAdded,
    Order,
    OrderCreated,
    PayOrder,
    PreferencesChanged,
    RecordingDispatcher,
    Shop,
)

from cqrs_ddd_advanced_core import (
    EventSourcedMediator,
    EventSourcedMediatorFactory,
    EventSourcedPersistenceOrchestrator,
    EventSourcingConfigurationError,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core import (
    CommandResponse,
    ConcurrencyError,
    HandlerRegistry,
    InMemoryUnitOfWork,
    Mediator,
    StoredEvent,
)
from cqrs_ddd_core.cqrs import NextStep
from cqrs_ddd_core.cqrs.behaviors import Message


def event_sourced_mediator(
    shop: Shop,
    dispatcher: RecordingDispatcher | None = None,
    registry: HandlerRegistry | None = None,
) -> EventSourcedMediator:
    """Return a mediator keeping events in the shop's store, with nothing registered."""
    return EventSourcedMediator(
        registry=registry or shop.registry,
        uow_factory=InMemoryUnitOfWork,
        event_persistence_orchestrator=EventSourcedPersistenceOrchestrator(
            default_event_store=shop.event_store
        ),
        event_dispatcher=dispatcher,
    )


@pytest.fixture
def mediator(shop: Shop, dispatcher: RecordingDispatcher) -> EventSourcedMediator:
    return event_sourced_mediator(shop, dispatcher)


async def types_in(store: InMemoryEventStore) -> list[str]:
    return [event.event_type for event in await store.read_all()]


# ---------------------------------------------------------------- the spec's listed tests


def test_the_event_sourced_mediator_extends_the_core_mediator(shop: Shop) -> None:
    # when
    mediator = event_sourced_mediator(shop)
    # then
    assert isinstance(mediator, Mediator)
    assert EventSourcedMediator._dispatch_command is not Mediator._dispatch_command


async def test_a_command_s_events_are_appended_to_the_stream_of_their_aggregate(
    mediator: EventSourcedMediator, shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    command = AddItem(order_id="o-1", sku="sku-1", quantity=2, unit_price=Decimal("4.50"))
    # when
    response = await mediator.send(command)
    # then
    stored = await shop.event_store.load_stream("o-1")
    assert [(event.event_type, event.version) for event in stored] == [
        ("OrderCreated", 1),
        ("ItemAdded", 2),
    ]
    assert stored[1].payload == {"sku": "sku-1", "quantity": 2, "unit_price": "4.50"}
    assert stored[1].causation_id == str(command.command_id)
    assert [event.event_id for event in response.events] == [stored[1].event_id]
    assert [event.event_id for event in dispatcher.received] == [e.event_id for e in stored]


async def test_the_events_of_a_non_event_sourced_aggregate_are_not_appended_but_dispatched(
    mediator: EventSourcedMediator, shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # when
    await mediator.send(ChangePreferences(user_id="u-1", settings={"theme": "dark"}))
    # then
    assert await shop.event_store.read_all() == []
    assert await shop.event_store.current_position() == 0
    assert [type(event) for event in dispatcher.received] == [PreferencesChanged]
    assert (await shop.preferences.get("u-1")).settings == {"theme": "dark"}


async def test_configuring_a_type_as_event_sourced_on_the_mediator_appends_the_events_returned(
    mediator: EventSourcedMediator, shop: Shop
) -> None:
    # given: invoices (whose handler returns their events) configured state-stored
    mediator.configure_non_event_sourced_type("Invoice")
    await mediator.send(IssueInvoice(order_id="o-1", amount=Decimal(5), invoice_id="inv-1"))
    # when: configured event-sourced after the mediator was built
    mediator.configure_event_sourced_type("Invoice")
    await mediator.send(IssueInvoice(order_id="o-1", amount=Decimal(5), invoice_id="inv-2"))
    # then
    assert [event.stream_id for event in await shop.event_store.read_all()] == ["inv-2"]


async def test_configuring_a_type_as_event_sourced_with_its_own_store_routes_its_events_there(
    mediator: EventSourcedMediator, shop: Shop
) -> None:
    # given
    invoices = InMemoryEventStore()
    # when
    mediator.configure_event_sourced_type("Invoice", event_store=invoices)
    await mediator.send(IssueInvoice(order_id="o-1", amount=Decimal(5), invoice_id="inv-1"))
    # then
    assert [event.event_type for event in await invoices.load_stream("inv-1")] == ["InvoiceIssued"]
    assert await shop.event_store.read_all() == []


async def test_configuring_a_type_as_non_event_sourced_on_the_mediator_skips_its_events(
    mediator: EventSourcedMediator, shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # when
    mediator.configure_non_event_sourced_type("Order")
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    # then
    assert await shop.event_store.read_all() == []
    assert [type(event) for event in dispatcher.received] == [OrderCreated]


class RememberingBehavior:
    """A pipeline behaviour that remembers the messages it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        self.seen.append(type(message).__name__)
        return await next_step()


async def test_the_factory_creates_a_mediator_configured_as_it_was_told(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given
    behavior = RememberingBehavior()
    factory = EventSourcedMediatorFactory(
        event_store=shop.event_store,
        uow_factory=InMemoryUnitOfWork,
        handler_registry=shop.registry,
        event_dispatcher=dispatcher,
        behaviors=[behavior],
    )
    factory.register_non_event_sourced_type("Invoice")
    # when
    mediator = factory.create()
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    await mediator.send(IssueInvoice(order_id="o-1", amount=Decimal(5), invoice_id="inv-1"))
    # then
    assert isinstance(mediator, EventSourcedMediator)
    assert await types_in(shop.event_store) == ["OrderCreated"]
    assert [event.event_type for event in dispatcher.received] == ["OrderCreated", "InvoiceIssued"]
    assert behavior.seen == ["CreateOrder", "IssueInvoice"]


async def test_registrations_on_the_factory_after_create_apply_to_the_created_mediator(
    shop: Shop,
) -> None:
    # given
    factory = EventSourcedMediatorFactory(
        event_store=shop.event_store, uow_factory=InMemoryUnitOfWork, handler_registry=shop.registry
    )
    mediator = factory.create()
    # when
    factory.register_non_event_sourced_type("Order")
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    # then
    assert await shop.event_store.read_all() == []


@pytest.mark.parametrize(
    "configure",
    [
        lambda mediator: mediator.configure_event_sourced_type("Order"),
        lambda mediator: mediator.configure_event_sourced_type("Order", InMemoryEventStore()),
        lambda mediator: mediator.configure_non_event_sourced_type("UserPreferences"),
    ],
    ids=["event-sourced", "event-sourced-with-store", "non-event-sourced"],
)
def test_configuring_a_type_on_a_mediator_without_an_orchestrator_is_refused(
    shop: Shop, configure: Any
) -> None:
    # given: building it is fine
    mediator = EventSourcedMediator(registry=shop.registry, uow_factory=InMemoryUnitOfWork)
    # when / then: the call that needs an orchestrator is the one refused
    with pytest.raises(EventSourcingConfigurationError, match="orchestrator"):
        configure(mediator)


async def test_without_an_orchestrator_the_mediator_works_like_the_core_one(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given
    mediator = EventSourcedMediator(
        registry=shop.registry, uow_factory=InMemoryUnitOfWork, event_dispatcher=dispatcher
    )
    # when
    response = await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    # then
    assert response.result == "o-1"
    assert [type(event) for event in dispatcher.received] == [OrderCreated]
    assert await shop.event_store.read_all() == []


# ---------------------------------------------------------------- transactions


async def test_a_handler_that_fails_after_recording_events_leaves_no_event_behind(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given: a handler that saves a new order, then fails
    registry = HandlerRegistry()

    @registry.command_handler(CreateOrder)
    async def create_then_fail(command: CreateOrder) -> None:
        order = Order.create(command.customer_id, command.order_id)
        await shop.orders.save(order)
        raise RuntimeError("payment gateway down")

    mediator = event_sourced_mediator(shop, dispatcher, registry)
    # when
    with pytest.raises(RuntimeError, match="payment gateway down"):
        await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    # then
    assert await shop.event_store.load_stream("o-1") == []
    assert await shop.event_store.read_all() == []
    assert dispatcher.received == []


async def test_a_failed_commit_takes_back_the_events_appended_in_the_command(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given: a unit of work whose commit fails after the events were appended
    class FailingUnitOfWork(InMemoryUnitOfWork):
        async def commit(self) -> None:
            raise ConnectionError("database went away")

    mediator = EventSourcedMediator(
        registry=shop.registry,
        uow_factory=FailingUnitOfWork,
        event_persistence_orchestrator=EventSourcedPersistenceOrchestrator(
            default_event_store=shop.event_store
        ),
        event_dispatcher=dispatcher,
    )
    # when
    with pytest.raises(ConnectionError):
        await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    # then: nothing stored, and the stream starts afresh at version 1
    assert await shop.event_store.read_all() == []
    assert dispatcher.received == []
    await event_sourced_mediator(shop).send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    assert [event.version for event in await shop.event_store.load_stream("o-1")] == [1]


async def test_events_appended_inside_a_command_are_invisible_until_it_commits(
    shop: Shop,
) -> None:
    # given: an order committed earlier, and a unit of work that looks at the store as it commits
    await event_sourced_mediator(shop).send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    seen: dict[str, list[StoredEvent] | int] = {}
    store = shop.event_store

    class LookingUnitOfWork(InMemoryUnitOfWork):
        async def commit(self) -> None:
            seen["read_all"] = await store.read_all()
            seen["load_stream"] = await store.load_stream("o-1")
            seen["current_position"] = await store.current_position()
            await super().commit()

    mediator = EventSourcedMediator(
        registry=shop.registry,
        uow_factory=LookingUnitOfWork,
        event_persistence_orchestrator=EventSourcedPersistenceOrchestrator(
            default_event_store=store
        ),
    )
    [committed] = await store.read_all()
    # when
    await mediator.send(PayOrder(order_id="o-1"))
    # then: before the commit, only what was committed before
    assert seen == {
        "read_all": [committed],
        "load_stream": [committed],
        "current_position": committed.position,
    }
    # and after it, the new event too
    assert await types_in(store) == ["OrderCreated", "OrderPaid"]


async def test_two_commands_racing_on_one_aggregate_have_one_winner_and_no_partial_write(
    shop: Shop, dispatcher: RecordingDispatcher
) -> None:
    # given: an order at version 2, and a handler that adds two items once both racers loaded it
    setup = event_sourced_mediator(shop)
    await setup.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    await setup.send(AddItem(order_id="o-1", sku="sku-0", quantity=1, unit_price=Decimal(1)))
    both_loaded = asyncio.Barrier(2)
    registry = HandlerRegistry()

    @registry.command_handler(AddItem)
    async def add_twice_after_the_other_loaded(command: AddItem) -> None:
        order = await shop.orders.get(command.order_id)
        await both_loaded.wait()
        order.add_item(command.sku, command.quantity, command.unit_price)
        order.add_item(command.sku, command.quantity, command.unit_price)
        await shop.orders.save(order)

    racing = event_sourced_mediator(shop, dispatcher, registry)
    first = AddItem(order_id="o-1", sku="a", quantity=1, unit_price=Decimal(1))
    second = AddItem(order_id="o-1", sku="b", quantity=1, unit_price=Decimal(2))
    # when
    outcomes = await asyncio.gather(racing.send(first), racing.send(second), return_exceptions=True)
    # then: exactly one wins
    assert sum(isinstance(outcome, CommandResponse) for outcome in outcomes) == 1
    errors = [outcome for outcome in outcomes if isinstance(outcome, ConcurrencyError)]
    assert len(errors) == 1
    assert (errors[0].expected_version, errors[0].actual_version) == (2, 4)
    winner = first if isinstance(outcomes[0], CommandResponse) else second
    # and the stream holds the winner's whole batch, right after version 2, and nothing else
    stored = await shop.event_store.load_stream("o-1")
    assert [event.version for event in stored] == [1, 2, 3, 4]
    assert {event.causation_id for event in stored[2:]} == {str(winner.command_id)}
    assert {event.payload["sku"] for event in stored[2:]} == {winner.sku}
    assert await shop.event_store.read_all() == stored
    assert [event.event_id for event in dispatcher.received] == [e.event_id for e in stored[2:]]
    assert all(isinstance(event, ItemAdded) for event in dispatcher.received)
