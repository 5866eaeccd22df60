"""Event-sourced aggregates: their event handlers, their validation, rebuilding by the loader."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest
from advanced_test_model import (
    AddItem,
    CreateOrder,
    IssueInvoice,
    ItemAdded,
    ItemRemoved,
    NotEnoughItemsError,
    Order,
    OrderCreated,
    OrderPaid,
    PayOrder,
    RemoveItem,
    Shop,
    UserPreferences,
    build_shop,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from cqrs_ddd_advanced_core import (
    ConflictResolved,
    EventSourcedAggregateMixin,
    EventSourcedAggregateRequiredError,
    EventSourcedLoader,
    EventSourcedMediator,
    EventSourcedMediatorFactory,
    EventValidator,
    InvalidEventHandlerError,
    MissingEventHandlerError,
    StrictValidationViolationError,
    aggregate_event_handler,
    non_event_sourced,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core import (
    AggregateNotFoundError,
    AggregateRoot,
    Command,
    DomainEvent,
    EventDeserializationError,
    EventTypeRegistry,
    InMemoryUnitOfWork,
    UnknownEventTypeError,
)

WORKSPACE = Path(__file__).resolve().parents[4]


# ---------------------------------------------------------------- the domain of these tests


class OrderNoted(DomainEvent):
    """An event ``Order`` has no handler for."""

    note: str


class GiftItemAdded(ItemAdded):
    """A subclass of an event ``Order`` has a handler for."""


class Deposited(DomainEvent):
    amount: int


class Withdrawn(DomainEvent):
    amount: int


class InsufficientFundsError(Exception):
    """A withdrawal larger than the balance."""


class Ledger(EventSourcedAggregateMixin, AggregateRoot):
    """Remembers the version each event was applied at, and refuses to go below zero."""

    balance: int = 0
    applied_at_versions: list[int | None] = []

    @aggregate_event_handler
    def on_deposited(self, event: Deposited) -> None:
        self.balance += event.amount
        self.applied_at_versions = [*self.applied_at_versions, event.version]

    @aggregate_event_handler
    def on_withdrawn(self, event: Withdrawn) -> None:
        if event.amount > self.balance:
            raise InsufficientFundsError(f"cannot withdraw {event.amount} from {self.balance}")
        self.balance -= event.amount
        self.applied_at_versions = [*self.applied_at_versions, event.version]


class StrictOrder(EventSourcedAggregateMixin, AggregateRoot):
    event_validator: ClassVar[EventValidator] = EventValidator(strict=True)
    recorded_event_types: ClassVar[tuple[type[DomainEvent], ...]] = (OrderCreated, OrderNoted)

    customer_id: str = ""

    @aggregate_event_handler
    def on_created(self, event: OrderCreated) -> None:
        self.customer_id = event.customer_id


class RushOrder(Order):
    """Overrides how its base applies ``OrderCreated``."""

    @aggregate_event_handler
    def on_rush_created(self, event: OrderCreated) -> None:
        self.customer_id = event.customer_id
        self.status = "rush"


class PlainCart(AggregateRoot):
    """A state-stored aggregate without the mixin."""

    skus: list[str] = []


@non_event_sourced
class ArchivedLedger(EventSourcedAggregateMixin, AggregateRoot):
    balance: int = 0


class HandlerWithTwoArguments(EventSourcedAggregateMixin, AggregateRoot):
    @aggregate_event_handler
    def on_deposited(self, event: Deposited, extra: int) -> None:
        pass


class HandlerWithoutEvent(EventSourcedAggregateMixin, AggregateRoot):
    @aggregate_event_handler
    def on_nothing(self) -> None:
        pass


class HandlerOfANonEvent(EventSourcedAggregateMixin, AggregateRoot):
    @aggregate_event_handler
    def on_number(self, event: int) -> None:
        pass


class TwoHandlersForOneEvent(EventSourcedAggregateMixin, AggregateRoot):
    @aggregate_event_handler
    def on_deposited(self, event: Deposited) -> None:
        pass

    @aggregate_event_handler
    def on_deposited_again(self, event: Deposited) -> None:
        pass


def order_loader(
    store: InMemoryEventStore, events: EventTypeRegistry | None = None
) -> EventSourcedLoader[Order]:
    registry = events or EventTypeRegistry([OrderCreated, ItemAdded, ItemRemoved, OrderPaid])
    return EventSourcedLoader(aggregate_type=Order, event_store=store, event_registry=registry)


# ---------------------------------------------------------------- handlers apply events


def test_a_handler_declared_with_its_event_class_applies_that_event() -> None:
    # given
    order = Order(id="o-1", customer_id="")
    # when
    applied = order.apply_event(OrderCreated(customer_id="cust-1"))
    # then: state changed, nothing recorded
    assert applied
    assert order.customer_id == "cust-1"
    assert (order.version, order.pending_events) == (0, ())


def test_a_bare_handler_applies_the_event_its_annotation_names() -> None:
    # given
    order = Order(id="o-1", customer_id="cust-1")
    # when
    order.apply_event(ItemAdded(sku="sku-1", quantity=3, unit_price=Decimal("2.00")))
    # then
    assert order.items == {"sku-1": 3}
    assert order.total == Decimal("6.00")


def test_an_aggregate_lists_the_events_it_has_handlers_for() -> None:
    # ConflictResolved: the mixin's own handler, for states merged after a conflict
    assert Order.handled_event_types() == {
        OrderCreated,
        ItemAdded,
        ItemRemoved,
        OrderPaid,
        ConflictResolved,
    }
    assert Order.event_handler_map()[OrderCreated] == "on_created"


def test_a_handler_of_an_event_class_also_applies_its_subclasses() -> None:
    # given
    order = Order(id="o-1", customer_id="cust-1")
    # when
    order.apply_event(GiftItemAdded(sku="sku-1", quantity=1, unit_price=Decimal(0)))
    # then
    assert order.items == {"sku-1": 1}


def test_a_subclass_may_override_its_base_s_handler() -> None:
    # when
    rush = RushOrder.create("cust-1", "o-1")
    plain = Order.create("cust-1", "o-2")
    # then
    assert rush.status == "rush"
    assert plain.status == "pending"
    assert RushOrder.event_handler_map()[OrderCreated] == "on_rush_created"


# ---------------------------------------------------------------- trigger_event


def test_triggering_an_event_applies_it_as_the_next_event_then_records_it() -> None:
    # given
    ledger = Ledger(id="l-1")
    ledger.trigger_event(Deposited(amount=10))
    # when
    recorded = ledger.trigger_event(Withdrawn(amount=4))
    # then
    assert ledger.balance == 6
    assert ledger.applied_at_versions == [1, 2]
    assert ledger.version == 2
    assert [event.version for event in ledger.pending_events] == [1, 2]
    assert (recorded.aggregate_id, recorded.aggregate_type, recorded.version) == (
        "l-1",
        "Ledger",
        2,
    )


def test_an_event_whose_handler_raises_is_not_recorded_and_the_version_stays() -> None:
    # given
    ledger = Ledger(id="l-1")
    ledger.trigger_event(Deposited(amount=10))
    # when
    with pytest.raises(InsufficientFundsError):
        ledger.trigger_event(Withdrawn(amount=11))
    # then
    assert ledger.balance == 10
    assert ledger.version == 1
    assert [type(event) for event in ledger.pending_events] == [Deposited]


# ---------------------------------------------------------------- validation


def test_a_lenient_aggregate_records_an_event_it_has_no_handler_for_without_change() -> None:
    # given
    order = Order.create("cust-1", "o-1")
    before = order.model_dump(exclude={"version"})
    # when
    applied = order.apply_event(OrderNoted(note="call first"))
    order.trigger_event(OrderNoted(note="call first"))
    # then
    assert not applied
    assert order.model_dump(exclude={"version"}) == before
    assert order.version == 2
    assert EventValidator().validate(Order, [OrderNoted]) == ["OrderNoted"]


def test_a_strict_aggregate_refuses_to_apply_an_event_it_has_no_handler_for() -> None:
    # given
    order = StrictOrder(id="s-1")
    order.trigger_event(OrderCreated(customer_id="cust-1"))
    # when
    with pytest.raises(MissingEventHandlerError) as raised:
        order.trigger_event(OrderNoted(note="call first"))
    # then
    assert (raised.value.aggregate_type, raised.value.event_type) == ("StrictOrder", "OrderNoted")
    assert order.version == 1
    assert [type(event) for event in order.pending_events] == [OrderCreated]


def test_strict_validation_names_the_recorded_events_that_lack_a_handler() -> None:
    # when
    with pytest.raises(StrictValidationViolationError) as raised:
        StrictOrder.event_validator.validate(StrictOrder)
    # then
    assert raised.value.aggregate_type == "StrictOrder"
    assert raised.value.missing_event_types == ("OrderNoted",)
    assert "OrderNoted" in str(raised.value)


def test_strict_validation_passes_when_every_recorded_event_has_a_handler() -> None:
    assert EventValidator(strict=True).validate(StrictOrder, [OrderCreated]) == []


@pytest.mark.parametrize(
    ("aggregate_type", "handler"),
    [
        (HandlerWithTwoArguments, "on_deposited"),
        (HandlerWithoutEvent, "on_nothing"),
        (HandlerOfANonEvent, "on_number"),
        (TwoHandlersForOneEvent, "on_deposited_again"),
    ],
    ids=["two-arguments", "no-event-argument", "not-a-domain-event", "two-handlers-one-event"],
)
def test_a_malformed_handler_declaration_is_refused(
    aggregate_type: type[EventSourcedAggregateMixin], handler: str
) -> None:
    # when
    with pytest.raises(InvalidEventHandlerError) as raised:
        EventValidator().validate(aggregate_type)
    # then
    assert (raised.value.aggregate_type, raised.value.handler) == (aggregate_type.__name__, handler)
    assert f"{aggregate_type.__name__}.{handler}" in str(raised.value)


def test_a_malformed_handler_declaration_is_refused_when_an_event_is_applied() -> None:
    # given
    aggregate = TwoHandlersForOneEvent()
    # when / then
    with pytest.raises(InvalidEventHandlerError, match="already handles Deposited"):
        aggregate.trigger_event(Deposited(amount=1))
    assert aggregate.version == 0


def test_a_handler_annotation_that_cannot_be_resolved_is_refused() -> None:
    # given: an event class the handler's module cannot see
    class LocalEvent(DomainEvent):
        pass

    class LocalAggregate(EventSourcedAggregateMixin, AggregateRoot):
        @aggregate_event_handler
        def on_local(self, event: LocalEvent) -> None:
            pass

    # when / then
    with pytest.raises(InvalidEventHandlerError, match="cannot resolve"):
        EventValidator().validate(LocalAggregate)


def test_the_decorator_given_an_event_class_type_checks() -> None:
    # given
    from mypy import api

    source = (
        "from cqrs_ddd_advanced_core import EventSourcedAggregateMixin, aggregate_event_handler\n"
        "from cqrs_ddd_core import AggregateRoot, DomainEvent\n"
        "class Opened(DomainEvent):\n"
        "    pass\n"
        "class Account(EventSourcedAggregateMixin, AggregateRoot):\n"
        "    @aggregate_event_handler(Opened)\n"
        "    def on_opened(self, event: Opened) -> None:\n"
        "        pass\n"
    )
    # when
    report, errors, status = api.run(
        [
            "--config-file",
            str(WORKSPACE / "pyproject.toml"),
            "--cache-dir",
            os.devnull,
            "-c",
            source,
        ]
    )
    # then
    assert status == 0, report + errors


# ---------------------------------------------------------------- the loader


def mediator_for(shop: Shop) -> EventSourcedMediator:
    return EventSourcedMediatorFactory(
        event_store=shop.event_store, uow_factory=InMemoryUnitOfWork, handler_registry=shop.registry
    ).create()


async def test_the_loader_rebuilds_exactly_the_aggregate_the_commands_produced(
    shop: Shop,
) -> None:
    # given: commands on an order, and the same changes made in memory
    mediator = mediator_for(shop)
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    await mediator.send(AddItem(order_id="o-1", sku="a", quantity=3, unit_price=Decimal("2.50")))
    await mediator.send(AddItem(order_id="o-1", sku="b", quantity=1, unit_price=Decimal("9.99")))
    await mediator.send(RemoveItem(order_id="o-1", sku="a", quantity=2))
    await mediator.send(PayOrder(order_id="o-1"))
    expected = Order.create("cust-1", "o-1")
    expected.add_item("a", 3, Decimal("2.50"))
    expected.add_item("b", 1, Decimal("9.99"))
    expected.remove_item("a", 2)
    expected.pay()
    # when
    rebuilt = await shop.order_loader().load("o-1")
    # then
    assert rebuilt.model_dump() == expected.model_dump()
    assert (rebuilt.version, rebuilt.status, rebuilt.total) == (5, "paid", Decimal("12.49"))
    assert rebuilt.pending_events == ()


async def test_loading_an_aggregate_without_events_raises_not_found(
    event_store: InMemoryEventStore,
) -> None:
    # given
    loader = order_loader(event_store)
    # when
    with pytest.raises(AggregateNotFoundError) as raised:
        await loader.load("o-404")
    # then
    assert (raised.value.aggregate_type, raised.value.aggregate_id) == ("Order", "o-404")
    assert await loader.find("o-404") is None


async def test_loading_the_id_of_an_aggregate_of_another_type_finds_no_order(shop: Shop) -> None:
    # given: an invoice, whose id is a stream in the same store
    await mediator_for(shop).send(IssueInvoice(order_id="o-1", amount=Decimal(1), invoice_id="x-1"))
    # when / then
    with pytest.raises(AggregateNotFoundError):
        await shop.order_loader().load("x-1")


@pytest.mark.parametrize("aggregate_type", [PlainCart, UserPreferences, ArchivedLedger])
def test_a_loader_for_an_aggregate_that_is_not_event_sourced_is_refused_when_built(
    event_store: InMemoryEventStore, aggregate_type: type[AggregateRoot]
) -> None:
    # when
    with pytest.raises(EventSourcedAggregateRequiredError) as raised:
        EventSourcedLoader(
            aggregate_type=aggregate_type,
            event_store=event_store,
            event_registry=EventTypeRegistry(),
        )
    # then
    assert raised.value.aggregate_type == aggregate_type.__name__
    assert raised.value.operation == "EventSourcedLoader"


async def test_a_stored_event_of_an_unregistered_type_is_refused_naming_stream_and_version(
    event_store: InMemoryEventStore,
) -> None:
    # given: a loader whose registry lacks OrderPaid
    order = Order.create("cust-1", "o-1")
    order.pay()
    await event_store.append("o-1", order.collect_events(), expected_version=0)
    loader = order_loader(event_store, EventTypeRegistry([OrderCreated]))
    # when
    with pytest.raises(UnknownEventTypeError) as raised:
        await loader.load("o-1")
    # then
    error = raised.value
    assert (error.event_type, error.stream_id, error.version) == ("OrderPaid", "o-1", 2)
    assert "'o-1' at version 2" in str(error)


class ItemAddedWithColour(DomainEvent):
    """A different class that claims the name ``ItemAdded``, with fields that do not fit."""

    event_type = "ItemAdded"

    colour: str


async def test_a_stored_payload_that_does_not_fit_its_class_is_refused_naming_stream_and_version(
    event_store: InMemoryEventStore,
) -> None:
    # given: ItemAdded stored, read back through a registry mapping the name to another class
    order = Order.create("cust-1", "o-1")
    order.add_item("sku-1", 1, Decimal(1))
    await event_store.append("o-1", order.collect_events(), expected_version=0)
    loader = order_loader(event_store, EventTypeRegistry([OrderCreated, ItemAddedWithColour]))
    # when
    with pytest.raises(EventDeserializationError) as raised:
        await loader.load("o-1")
    # then
    error = raised.value
    assert (error.event_type, error.stream_id, error.version) == ("ItemAdded", "o-1", 2)
    assert {"colour", "sku"} <= {issue.field for issue in error.issues}
    assert "'o-1' at version 2" in str(error)


async def test_a_strict_aggregate_refuses_to_load_a_stored_event_it_cannot_apply(
    event_store: InMemoryEventStore,
) -> None:
    # given: a stream holding an event the strict aggregate has no handler for
    events = [
        OrderCreated(customer_id="cust-1", aggregate_type="StrictOrder"),
        OrderNoted(note="call first", aggregate_type="StrictOrder"),
    ]
    await event_store.append("s-1", events, expected_version=0)
    loader = EventSourcedLoader(
        aggregate_type=StrictOrder,
        event_store=event_store,
        event_registry=EventTypeRegistry([OrderCreated, OrderNoted]),
    )
    # when / then
    with pytest.raises(MissingEventHandlerError, match="OrderNoted"):
        await loader.load("s-1")


def test_rebuilding_from_events_needs_no_store() -> None:
    # given
    order = Order.create("cust-1", "o-1")
    order.add_item("sku-1", 2, Decimal("1.10"))
    loader = order_loader(InMemoryEventStore())
    # when
    rebuilt = loader.rebuild("o-1", order.collect_events())
    # then
    assert rebuilt.model_dump() == order.model_dump()


# ---------------------------------------------------------------- replay matches the commands


skus = st.sampled_from(["sku-a", "sku-b", "sku-c"])
order_commands = st.lists(
    st.one_of(
        st.builds(
            AddItem,
            order_id=st.just("o-1"),
            sku=skus,
            quantity=st.integers(min_value=1, max_value=5),
            unit_price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2),
        ),
        st.builds(
            RemoveItem,
            order_id=st.just("o-1"),
            sku=skus,
            quantity=st.integers(min_value=1, max_value=5),
        ),
        st.builds(PayOrder, order_id=st.just("o-1")),
    ),
    max_size=15,
)


def apply_in_memory(order: Order, command: Command) -> None:
    """Make the change ``command`` asks for directly on ``order`` (the test's oracle)."""
    if isinstance(command, AddItem):
        order.add_item(command.sku, command.quantity, command.unit_price)
    elif isinstance(command, RemoveItem):
        order.remove_item(command.sku, command.quantity)
    elif isinstance(command, PayOrder):
        order.pay()


@settings(max_examples=75, deadline=None)
@given(commands=order_commands)
async def test_replaying_the_stored_events_rebuilds_the_aggregate_any_commands_produced(
    commands: list[Command],
) -> None:
    # given
    shop = build_shop()
    mediator = mediator_for(shop)
    await mediator.send(CreateOrder(customer_id="cust-1", order_id="o-1"))
    expected = Order.create("cust-1", "o-1")
    # when
    for command in commands:
        try:
            apply_in_memory(expected, command)
        except NotEnoughItemsError:
            with pytest.raises(NotEnoughItemsError):
                await mediator.send(command)
        else:
            await mediator.send(command)
    # then
    rebuilt = await shop.order_loader().load("o-1")
    stored = await shop.event_store.load_stream("o-1")
    assert rebuilt.model_dump() == expected.model_dump()
    assert [event.version for event in stored] == list(range(1, expected.version + 1))
    assert rebuilt.version == len(stored)
