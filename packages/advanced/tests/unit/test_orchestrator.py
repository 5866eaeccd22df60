"""The persistence orchestrator: which aggregate types keep their events, where, and how."""

from __future__ import annotations

from decimal import Decimal

import pytest
from advanced_test_model import (
    Append,
    Invoice,
    Order,
    RecordingEventStore,
    UserPreferences,
    shop_event_types,
)

from cqrs_ddd_advanced_core import (
    EventSourcedPersistenceOrchestrator,
    EventSourcingConfigurationError,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core import (
    AggregateRoot,
    CommandResponse,
    ConcurrencyError,
    DomainEvent,
    InMemoryUnitOfWork,
    StoredEvent,
)
from cqrs_ddd_core.cqrs import command_scope


def orchestrator_with_store() -> tuple[EventSourcedPersistenceOrchestrator, InMemoryEventStore]:
    store = InMemoryEventStore()
    return EventSourcedPersistenceOrchestrator(default_event_store=store), store


def a_response(
    correlation_id: str = "corr-1", causation_id: str = "cmd-1"
) -> CommandResponse[None]:
    return CommandResponse(result=None, correlation_id=correlation_id, causation_id=causation_id)


async def types_in(store: InMemoryEventStore | RecordingEventStore) -> list[str]:
    return [event.event_type for event in await store.read_all()]


# ---------------------------------------------------------------- which types are event-sourced


@pytest.mark.parametrize("aggregate_type", [Order, "Order", Invoice, "Invoice"])
def test_a_type_neither_marked_nor_registered_is_event_sourced_when_a_store_is_configured(
    aggregate_type: type[AggregateRoot] | str,
) -> None:
    # given
    orchestrator, _ = orchestrator_with_store()
    # then
    assert orchestrator.is_event_sourced(aggregate_type)


def test_the_non_event_sourced_mark_alone_makes_a_class_state_stored() -> None:
    # given: no registration, only the mark on the class
    orchestrator, _ = orchestrator_with_store()
    # then
    assert not orchestrator.is_event_sourced(UserPreferences)


def test_a_type_given_by_name_is_decided_by_the_registrations_alone() -> None:
    # given: the class behind the name is marked, but a name is only a name
    orchestrator, _ = orchestrator_with_store()
    # then: unregistered, the default holds
    assert orchestrator.is_event_sourced("UserPreferences")
    # and when it is registered
    orchestrator.register_non_event_sourced_type("UserPreferences")
    # then
    assert not orchestrator.is_event_sourced("UserPreferences")


@pytest.mark.parametrize("registered_as", [UserPreferences, "UserPreferences"])
def test_an_explicit_event_sourced_registration_wins_over_the_mark(
    registered_as: type[AggregateRoot] | str,
) -> None:
    # given
    orchestrator, _ = orchestrator_with_store()
    # when
    orchestrator.register_event_sourced_type(registered_as)
    # then
    assert orchestrator.is_event_sourced(UserPreferences)
    assert orchestrator.is_event_sourced("UserPreferences")


@pytest.mark.parametrize("registered_as", [Invoice, "Invoice"])
def test_an_explicit_non_event_sourced_registration_wins_over_the_default(
    registered_as: type[AggregateRoot] | str,
) -> None:
    # given
    orchestrator, _ = orchestrator_with_store()
    # when
    orchestrator.register_non_event_sourced_type(registered_as)
    # then
    assert not orchestrator.is_event_sourced(Invoice)
    assert not orchestrator.is_event_sourced("Invoice")
    assert orchestrator.is_event_sourced("Order")


def test_the_latest_registration_of_a_type_wins() -> None:
    # given
    orchestrator, _ = orchestrator_with_store()
    orchestrator.register_event_sourced_type("Order")
    # when
    orchestrator.register_non_event_sourced_type("Order")
    # then
    assert not orchestrator.is_event_sourced("Order")
    # and when
    orchestrator.register_event_sourced_type("Order")
    # then
    assert orchestrator.is_event_sourced("Order")


# ---------------------------------------------------------------- configuration errors


def test_an_orchestrator_without_a_default_event_store_is_refused_when_built() -> None:
    # the spec: "Setup orchestrator (requires default_event_store)"
    with pytest.raises(EventSourcingConfigurationError, match="requires default_event_store"):
        EventSourcedPersistenceOrchestrator()


def test_a_type_given_its_own_store_appends_there_and_not_to_the_default() -> None:
    # given
    orchestrator, default = orchestrator_with_store()
    invoices = InMemoryEventStore()
    # when
    orchestrator.register_event_sourced_type("Invoice", event_store=invoices)
    # then
    assert orchestrator.event_store_for("Invoice") is invoices
    assert orchestrator.event_store_for("Order") is default


def test_asking_for_the_store_of_a_state_stored_type_is_refused() -> None:
    # given
    orchestrator, _ = orchestrator_with_store()
    # when / then
    with pytest.raises(EventSourcingConfigurationError, match="UserPreferences"):
        orchestrator.event_store_for(UserPreferences)


# ---------------------------------------------------------------- where events go


async def test_a_type_registered_with_its_own_store_keeps_its_events_there() -> None:
    # given
    orchestrator, default_store = orchestrator_with_store()
    invoice_store = InMemoryEventStore()
    orchestrator.register_event_sourced_type("Invoice", event_store=invoice_store)
    order = Order.create("cust-1", "o-1")
    invoice = Invoice.issue("o-1", Decimal("9.90"), "inv-1")
    # when
    await orchestrator.persist_events(
        [*order.collect_events(), *invoice.collect_events()], a_response()
    )
    # then
    assert await types_in(default_store) == ["OrderCreated"]
    assert await types_in(invoice_store) == ["InvoiceIssued"]
    assert orchestrator.event_store_for("Invoice") is invoice_store
    assert orchestrator.event_store_for(Order) is default_store


class CountingEventStore(RecordingEventStore):
    """A fake store that, like a collection, reports how many events it holds."""

    def __len__(self) -> int:
        return len(self.inner._log)


async def test_a_type_s_own_store_is_used_even_while_it_is_empty() -> None:
    # given
    orchestrator, default_store = orchestrator_with_store()
    invoice_store = CountingEventStore()
    orchestrator.register_event_sourced_type("Invoice", event_store=invoice_store)
    invoice = Invoice.issue("o-1", Decimal("9.90"), "inv-1")
    # when
    await orchestrator.persist_events(invoice.collect_events(), a_response())
    # then
    assert await types_in(invoice_store) == ["InvoiceIssued"]
    assert await types_in(default_store) == []


async def test_events_of_types_registered_state_stored_are_not_appended() -> None:
    # given
    orchestrator, store = orchestrator_with_store()
    preferences = UserPreferences(user_id="u-1", settings={})
    preferences.change({"theme": "dark"})
    invoice = Invoice.issue("o-1", Decimal(1), "inv-1")
    orchestrator.register_non_event_sourced_type(UserPreferences)
    orchestrator.register_non_event_sourced_type("Invoice")
    # when
    await orchestrator.persist_events(
        [*preferences.collect_events(), *invoice.collect_events()], a_response()
    )
    # then
    assert await store.read_all() == []


async def test_events_of_a_marked_but_unregistered_type_are_appended_by_the_default() -> None:
    # given: events name their aggregate type, not its class, so the mark is not seen here
    # (a repository saving the marked aggregate stores its events before they get here)
    orchestrator, store = orchestrator_with_store()
    preferences = UserPreferences(id="u-1", user_id="u-1", settings={})
    preferences.change({"theme": "dark"})
    # when
    await orchestrator.persist_events(preferences.collect_events(), a_response())
    # then
    assert await types_in(store) == ["PreferencesChanged"]


class StockCounted(DomainEvent):
    """An event no aggregate recorded: it has no aggregate id."""

    sku: str


async def test_events_without_an_aggregate_id_are_skipped() -> None:
    # given
    orchestrator, store = orchestrator_with_store()
    order = Order.create("cust-1", "o-1")
    # when
    await orchestrator.persist_events(
        [StockCounted(sku="sku-1"), *order.collect_events()], a_response()
    )
    await orchestrator.persist_event(StockCounted(sku="sku-2"), a_response())
    # then
    assert await types_in(store) == ["OrderCreated"]


# ---------------------------------------------------------------- stamping


async def test_persisted_events_are_stamped_with_the_response_s_correlation_and_causation_ids() -> (
    None
):
    # given: events recorded outside any command carry no ids yet
    orchestrator, store = orchestrator_with_store()
    order = Order.create("cust-1", "o-1")
    order.pay()
    created, paid = order.collect_events()
    assert (created.correlation_id, created.causation_id) == (None, None)
    # when
    await orchestrator.persist_event(created, a_response("corr-1", "cmd-1"))
    await orchestrator.persist_events([paid], a_response("corr-2", "cmd-2"))
    # then
    stored = await store.load_stream("o-1")
    assert [(event.correlation_id, event.causation_id) for event in stored] == [
        ("corr-1", "cmd-1"),
        ("corr-2", "cmd-2"),
    ]


async def test_ids_an_event_already_carries_are_kept() -> None:
    # given
    orchestrator, store = orchestrator_with_store()
    order = Order.create("cust-1", "o-1")
    [created] = order.collect_events()
    earlier = created.model_copy(update={"correlation_id": "checkout-7"})
    # when
    await orchestrator.persist_events([earlier], a_response("corr-1", "cmd-1"))
    # then
    [stored] = await store.load_stream("o-1")
    assert (stored.correlation_id, stored.causation_id) == ("checkout-7", "cmd-1")


async def test_without_a_command_response_events_are_persisted_as_they_are() -> None:
    # given
    orchestrator, store = orchestrator_with_store()
    order = Order.create("cust-1", "o-1")
    # when
    await orchestrator.persist_events(order.collect_events())
    # then
    [stored] = await store.load_stream("o-1")
    assert (stored.correlation_id, stored.causation_id) == (None, None)


# ---------------------------------------------------------------- appends and versions


async def test_each_stream_gets_one_append_with_the_version_its_first_event_implies() -> None:
    # given: an order already at version 2, and a new one
    store = RecordingEventStore()
    orchestrator = EventSourcedPersistenceOrchestrator(default_event_store=store)
    known = Order.create("cust-1", "o-1")
    known.add_item("sku-1", 1, Decimal(2))
    await orchestrator.persist_events(known.collect_events(), a_response())
    store.appends.clear()
    fresh = Order.create("cust-2", "o-2")
    known.add_item("sku-2", 1, Decimal(3))
    fresh.pay()
    known.pay()
    # when: their events arrive interleaved
    interleaved = [*fresh.pending_events[:1], *known.pending_events[:1]]
    interleaved += [*fresh.pending_events[1:], *known.pending_events[1:]]
    await orchestrator.persist_events(interleaved, a_response())
    # then
    assert store.appends == [
        Append("o-2", [1, 2], expected_version=0),
        Append("o-1", [3, 4], expected_version=2),
    ]
    assert [event.version for event in await store.load_stream("o-1")] == [1, 2, 3, 4]


async def test_a_stale_aggregate_is_refused_with_a_concurrency_error() -> None:
    # given: two copies of one order at version 1; the first one's change is stored
    orchestrator, store = orchestrator_with_store()
    original = Order.create("cust-1", "o-1")
    await orchestrator.persist_events(original.collect_events(), a_response())
    first, second = original.model_copy(deep=True), original.model_copy(deep=True)
    first.pay()
    await orchestrator.persist_events(first.collect_events(), a_response())
    second.add_item("sku-1", 1, Decimal(1))
    # when
    with pytest.raises(ConcurrencyError) as raised:
        await orchestrator.persist_events(second.collect_events(), a_response())
    # then
    error = raised.value
    assert (error.stream_id, error.expected_version, error.actual_version) == ("o-1", 1, 2)
    assert await types_in(store) == ["OrderCreated", "OrderPaid"]


async def test_inside_a_unit_of_work_the_append_becomes_visible_only_on_commit() -> None:
    # given
    orchestrator, store = orchestrator_with_store()
    order = Order.create("cust-1", "o-1")
    # when
    async with InMemoryUnitOfWork() as uow:
        with command_scope(uow, correlation_id="corr-1", causation_id="cmd-1"):
            await orchestrator.persist_events(order.collect_events(), a_response())
        before_commit: list[StoredEvent] = await store.load_stream("o-1")
        await uow.commit()
    # then
    assert before_commit == []
    assert await types_in(store) == ["OrderCreated"]


async def test_persisted_events_can_be_read_back_into_their_classes() -> None:
    # given
    orchestrator, store = orchestrator_with_store()
    order = Order.create("cust-1", "o-1")
    order.add_item("sku-1", 2, Decimal("1.25"))
    events = order.collect_events()
    # when
    await orchestrator.persist_events(events, a_response())
    # then
    registry = shop_event_types()
    read_back = [registry.from_stored(event) for event in await store.load_stream("o-1")]
    assert [event.payload() for event in read_back] == [event.payload() for event in events]
