"""Upcasting: events stored under an older schema are read at their class's version.

The stored events are written by the classes older releases used (same stored
name, lower ``schema_version``) into a real in-memory event store, and read
back through ``EventSourcedLoader`` or ``EventDecoder``.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from upcasting_test_model import (
    Parcel,
    ParcelShipped,
    ParcelShippedV1ToV2,
    ParcelShippedV2ToV3,
    parcel_event_types,
    shipped_by_release_1,
    shipped_by_release_2,
)

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcingConfigurationError,
    aggregate_event_handler,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_advanced_core.domain.exceptions import UpcasterRegistrationError, UpcastingError
from cqrs_ddd_advanced_core.upcasting import EventDecoder, EventUpcaster, UpcasterRegistry
from cqrs_ddd_core import AggregateRoot, DomainEvent, EventTypeRegistry
from cqrs_ddd_core.exceptions import EventSchemaVersionError

# ---------------------------------------------------------------- the user's domain


class OrderCreated(DomainEvent):
    """The current ``OrderCreated``: release 2 added ``currency`` and made ``amount`` exact."""

    schema_version: ClassVar[int] = 2

    customer_id: str
    amount: Decimal
    currency: str


class OrderCreatedV1(DomainEvent):
    """``OrderCreated`` as release 1 stored it: a float amount, no currency."""

    event_type: ClassVar[str] = "OrderCreated"

    customer_id: str
    amount: float


class OrderCreatedWithoutAmount(DomainEvent):
    """A release-1 ``OrderCreated`` from before ``amount`` was required."""

    event_type: ClassVar[str] = "OrderCreated"

    customer_id: str


class Order(EventSourcedAggregateMixin, AggregateRoot):
    customer_id: str = ""
    amount: Decimal = Decimal(0)
    currency: str = ""

    @aggregate_event_handler
    def on_created(self, event: OrderCreated) -> None:
        self.customer_id = event.customer_id
        self.amount = event.amount
        self.currency = event.currency


# The spec's upcaster, as the spec writes it.
class OrderCreatedV1ToV2(EventUpcaster):
    event_type = "OrderCreated"
    source_version = 1

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            **data,
            "currency": data.get("currency", "EUR"),  # Add default
            "amount": Decimal(str(data["amount"])),  # float → Decimal
        }


async def store_release_1_order(
    event_store: InMemoryEventStore, order_id: str, event: DomainEvent | None = None
) -> None:
    """Append the ``OrderCreated`` release 1 recorded for ``order_id``."""
    created = event or OrderCreatedV1(customer_id="cust_456", amount=19.99)
    stamped = created.model_copy(update={"aggregate_type": "Order", "aggregate_id": order_id})
    await event_store.append(order_id, [stamped], expected_version=0)


# ---------------------------------------------------------------- the spec's example


def test_the_spec_s_upcaster_adds_the_default_currency_and_makes_the_amount_a_decimal() -> None:
    # when
    upcast = OrderCreatedV1ToV2().upcast({"customer_id": "cust_456", "amount": 19.99})
    # then
    assert upcast == {"customer_id": "cust_456", "amount": Decimal("19.99"), "currency": "EUR"}
    assert isinstance(upcast["amount"], Decimal)
    assert OrderCreatedV1ToV2().target_version == 2


def test_the_spec_s_upcaster_keeps_a_currency_the_payload_already_has() -> None:
    upcast = OrderCreatedV1ToV2().upcast({"customer_id": "c", "amount": 5, "currency": "USD"})
    assert (upcast["currency"], upcast["amount"]) == ("USD", Decimal(5))


async def test_the_upcasting_example_loads_an_order_created_at_version_1_as_version_2(
    event_store: InMemoryEventStore,
) -> None:
    # given: the order release 1 stored, and the current event classes
    await store_release_1_order(event_store, "order_123")
    event_registry = EventTypeRegistry([OrderCreated])
    # the spec's example
    registry = UpcasterRegistry()
    registry.register(OrderCreatedV1ToV2())

    # Events automatically upcasted when loaded
    loader = EventSourcedLoader(
        aggregate_type=Order,
        event_store=event_store,
        event_registry=event_registry,
        upcaster_registry=registry,
    )
    # when
    order = await loader.load("order_123")
    # then
    assert (order.customer_id, order.amount, order.currency) == (
        "cust_456",
        Decimal("19.99"),
        "EUR",
    )
    assert order.version == 1


async def test_upcasting_on_load_leaves_the_stored_event_as_it_was(
    event_store: InMemoryEventStore,
) -> None:
    # given
    await store_release_1_order(event_store, "order_123")
    [before] = await event_store.load_stream("order_123")
    payload_before = copy.deepcopy(before.payload)
    loader = EventSourcedLoader(
        aggregate_type=Order,
        event_store=event_store,
        event_registry=EventTypeRegistry([OrderCreated]),
        upcaster_registry=UpcasterRegistry([OrderCreatedV1ToV2()]),
    )
    # when
    await loader.load("order_123")
    # then
    [after] = await event_store.load_stream("order_123")
    assert after.schema_version == 1
    assert after.payload == payload_before == {"customer_id": "cust_456", "amount": 19.99}


async def test_without_an_upcaster_an_old_event_is_a_schema_version_error(
    event_store: InMemoryEventStore,
) -> None:
    # given
    await store_release_1_order(event_store, "order_123")
    loader = EventSourcedLoader(Order, event_store, EventTypeRegistry([OrderCreated]))
    # when
    with pytest.raises(EventSchemaVersionError) as raised:
        await loader.load("order_123")
    # then
    assert (raised.value.stored_version, raised.value.class_version) == (1, 2)
    assert (raised.value.stream_id, raised.value.version) == ("order_123", 1)


async def test_an_event_already_at_the_class_s_version_is_not_upcast(
    event_store: InMemoryEventStore,
) -> None:
    # given: an order written by the current release
    current = OrderCreated(customer_id="c", amount=Decimal("3.10"), currency="CHF")
    await store_release_1_order(event_store, "o-2", current)
    loader = EventSourcedLoader(
        Order,
        event_store,
        EventTypeRegistry([OrderCreated]),
        upcaster_registry=UpcasterRegistry([OrderCreatedV1ToV2()]),
    )
    # when
    order = await loader.load("o-2")
    # then
    assert (order.amount, order.currency) == (Decimal("3.10"), "CHF")


# ---------------------------------------------------------------- chains


def registered_one_by_one_from_v1() -> UpcasterRegistry:
    registry = UpcasterRegistry()
    registry.register(ParcelShippedV1ToV2())
    registry.register(ParcelShippedV2ToV3())
    return registry


def registered_one_by_one_from_v2() -> UpcasterRegistry:
    registry = UpcasterRegistry()
    registry.register(ParcelShippedV2ToV3())
    registry.register(ParcelShippedV1ToV2())
    return registry


def registered_at_once() -> UpcasterRegistry:
    return UpcasterRegistry([ParcelShippedV2ToV3(), ParcelShippedV1ToV2()])


chain_registrations = pytest.mark.parametrize(
    "build_registry",
    [registered_one_by_one_from_v1, registered_one_by_one_from_v2, registered_at_once],
    ids=["v1-then-v2", "v2-then-v1", "constructor"],
)


@chain_registrations
async def test_a_chain_reads_an_event_stored_at_version_1_as_version_3(
    build_registry: Callable[[], UpcasterRegistry], event_store: InMemoryEventStore
) -> None:
    # given: a parcel shipped under release 1
    await event_store.append("p-1", [shipped_by_release_1("p-1", 1.25)], expected_version=0)
    loader = EventSourcedLoader(
        Parcel, event_store, parcel_event_types(), upcaster_registry=build_registry()
    )
    # when
    parcel = await loader.load("p-1")
    # then
    assert (parcel.weight_grams, parcel.carrier) == (1250, "post")


@chain_registrations
async def test_a_chain_reads_an_event_stored_at_version_2_from_the_middle(
    build_registry: Callable[[], UpcasterRegistry], event_store: InMemoryEventStore
) -> None:
    # given
    await event_store.append("p-1", [shipped_by_release_2("p-1", 800)], expected_version=0)
    [stored] = await event_store.load_stream("p-1")
    # when
    event = EventDecoder(parcel_event_types(), build_registry()).decode(stored)
    # then
    assert isinstance(event, ParcelShipped)
    assert (event.weight_grams, event.carrier) == (800, "post")
    assert (event.aggregate_id, event.version, event.event_id) == ("p-1", 1, stored.event_id)


def test_upcasting_a_stored_event_returns_it_at_the_version_the_chain_reaches() -> None:
    # when
    payload, version = registered_at_once().upcast("ParcelShipped", 1, {"weight_kg": 0.5})
    # then
    assert (payload, version) == ({"weight_grams": 500, "carrier": "post"}, 3)


def test_an_event_type_without_upcasters_passes_through_unchanged() -> None:
    payload = {"anything": 1}
    assert registered_at_once().upcast("OrderPaid", 4, payload) == (payload, 4)


async def test_a_chain_that_stops_short_of_the_class_s_version_is_a_schema_version_error(
    event_store: InMemoryEventStore,
) -> None:
    # given: v1 -> v2 only, and the class at version 3
    await event_store.append("p-1", [shipped_by_release_1("p-1", 2.0)], expected_version=0)
    loader = EventSourcedLoader(
        Parcel,
        event_store,
        parcel_event_types(),
        upcaster_registry=UpcasterRegistry([ParcelShippedV1ToV2()]),
    )
    # when
    with pytest.raises(EventSchemaVersionError) as raised:
        await loader.load("p-1")
    # then
    assert raised.value.event_type == "ParcelShipped"
    assert raised.value.class_version == 3
    assert (raised.value.stream_id, raised.value.version) == ("p-1", 1)


# ---------------------------------------------------------------- registration errors


def test_a_second_upcaster_for_the_same_type_and_version_is_refused() -> None:
    # given
    registry = UpcasterRegistry([OrderCreatedV1ToV2()])

    class AnotherOrderCreatedV1ToV2(OrderCreatedV1ToV2):
        pass

    # when
    with pytest.raises(UpcasterRegistrationError) as raised:
        registry.register(AnotherOrderCreatedV1ToV2())
    # then
    assert (raised.value.event_type, raised.value.source_version) == ("OrderCreated", 1)
    assert "OrderCreatedV1ToV2" in str(raised.value)
    assert isinstance(raised.value, EventSourcingConfigurationError)


def test_two_upcasters_for_the_same_type_and_version_in_the_constructor_are_refused() -> None:
    with pytest.raises(UpcasterRegistrationError) as raised:
        UpcasterRegistry([OrderCreatedV1ToV2(), OrderCreatedV1ToV2()])
    assert (raised.value.event_type, raised.value.source_version) == ("OrderCreated", 1)


class ParcelShippedV3ToV4(EventUpcaster):
    event_type = "ParcelShipped"
    source_version = 3

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "insured": False}


def test_an_upcaster_that_would_leave_a_gap_in_the_chain_is_refused_at_registration() -> None:
    # given
    registry = UpcasterRegistry()
    registry.register(ParcelShippedV1ToV2())
    # when: v3 -> v4 without v2 -> v3
    with pytest.raises(UpcasterRegistrationError) as raised:
        registry.register(ParcelShippedV3ToV4())
    # then
    assert raised.value.event_type == "ParcelShipped"
    assert "no upcaster from version 2" in str(raised.value)


def test_a_gap_in_a_chain_given_to_the_constructor_is_refused() -> None:
    with pytest.raises(UpcasterRegistrationError, match="no upcaster from version 2"):
        UpcasterRegistry([ParcelShippedV3ToV4(), ParcelShippedV1ToV2()])


def test_a_refused_upcaster_leaves_the_registry_as_it_was() -> None:
    # given: a refused v3 -> v4
    registry = UpcasterRegistry([ParcelShippedV1ToV2()])
    with pytest.raises(UpcasterRegistrationError):
        registry.register(ParcelShippedV3ToV4())
    # when: the chain is completed in order
    registry.register(ParcelShippedV2ToV3())
    registry.register(ParcelShippedV3ToV4())
    # then
    assert registry.upcast("ParcelShipped", 1, {"weight_kg": 1.0}) == (
        {"weight_grams": 1000, "carrier": "post", "insured": False},
        4,
    )


@pytest.mark.parametrize("source_version", [0, -1])
def test_an_upcaster_from_a_version_below_1_is_refused(source_version: int) -> None:
    class FromNowhere(EventUpcaster):
        event_type = "ParcelShipped"

        def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
            return data

    FromNowhere.source_version = source_version
    with pytest.raises(UpcasterRegistrationError):
        UpcasterRegistry().register(FromNowhere())


def test_an_upcaster_without_an_event_type_is_refused() -> None:
    class Untyped(EventUpcaster):
        source_version = 1

        def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
            return data

    with pytest.raises(UpcasterRegistrationError, match="event_type"):
        UpcasterRegistry().register(Untyped())


# ---------------------------------------------------------------- failing upcasters


async def test_an_upcaster_that_raises_is_an_upcasting_error_naming_type_stream_and_version(
    event_store: InMemoryEventStore,
) -> None:
    # given: an OrderCreated stored before amount existed; the spec's upcaster needs one
    await store_release_1_order(event_store, "order_9", OrderCreatedWithoutAmount(customer_id="c"))
    loader = EventSourcedLoader(
        Order,
        event_store,
        EventTypeRegistry([OrderCreated]),
        upcaster_registry=UpcasterRegistry([OrderCreatedV1ToV2()]),
    )
    # when
    with pytest.raises(UpcastingError) as raised:
        await loader.load("order_9")
    # then
    error = raised.value
    assert (error.event_type, error.stream_id, error.version) == ("OrderCreated", "order_9", 1)
    assert error.schema_version == 1
    assert isinstance(error.__cause__, KeyError)
    assert all(part in str(error) for part in ("'OrderCreated'", "'order_9'", "version 1"))


def test_a_failure_in_the_second_link_names_the_version_it_started_from() -> None:
    # given: a v2 payload lacking what v2 -> v3 needs
    class BrokenV2ToV3(EventUpcaster):
        event_type = "ParcelShipped"
        source_version = 2

        def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
            return {**data, "carrier": data["courier"]}

    registry = UpcasterRegistry([ParcelShippedV1ToV2(), BrokenV2ToV3()])
    # when
    with pytest.raises(UpcastingError) as raised:
        registry.upcast("ParcelShipped", 1, {"weight_kg": 1.0}, stream_id="p-1", version=7)
    # then
    assert (raised.value.schema_version, raised.value.stream_id, raised.value.version) == (
        2,
        "p-1",
        7,
    )


class Invoiced(DomainEvent):
    """Release 2 of ``Invoiced`` added ``currency``, with a default for new events."""

    schema_version: ClassVar[int] = 2

    amount: int
    currency: str = "EUR"


class InvoicedV1(DomainEvent):
    """``Invoiced`` as release 1 stored it: invoices were all in dollars then."""

    event_type: ClassVar[str] = "Invoiced"

    amount: int


class InvoicedV1ToV2SetInPlace(EventUpcaster):
    """Sets the currency in place and forgets to return the payload (returns None)."""

    event_type = "Invoiced"
    source_version = 1

    def upcast(self, data: dict[str, Any]) -> Any:
        data["currency"] = "USD"


class Invoice(EventSourcedAggregateMixin, AggregateRoot):
    amount: int = 0
    currency: str = ""

    @aggregate_event_handler
    def on_invoiced(self, event: Invoiced) -> None:
        self.amount = event.amount
        self.currency = event.currency


def upcaster_returning(result: object) -> EventUpcaster:
    """Return an upcaster of ``Invoiced`` from version 1 whose ``upcast`` returns ``result``."""

    class ReturnsNotAMapping(EventUpcaster):
        event_type = "Invoiced"
        source_version = 1

        def upcast(self, data: dict[str, Any]) -> Any:
            return result

    return ReturnsNotAMapping()


async def test_an_upcaster_that_returns_none_is_an_upcasting_error_naming_it_and_the_event(
    event_store: InMemoryEventStore,
) -> None:
    # given: an invoice release 1 stored, read by an upcaster that forgets to return
    old = InvoicedV1(amount=12, aggregate_type="Invoice", aggregate_id="inv-7")
    await event_store.append("inv-7", [old], expected_version=0)
    [stored] = await event_store.load_stream("inv-7")
    decoder = EventDecoder(
        EventTypeRegistry([Invoiced]), UpcasterRegistry([InvoicedV1ToV2SetInPlace()])
    )
    # when
    with pytest.raises(UpcastingError) as raised:
        decoder.decode(stored)
    # then
    error = raised.value
    assert (error.event_type, error.stream_id, error.version) == ("Invoiced", "inv-7", 1)
    assert (error.schema_version, error.upcaster) == (1, "InvoicedV1ToV2SetInPlace")
    message = str(error)
    for part in ("'Invoiced'", "'inv-7'", "at version 1", "schema version 1"):
        assert part in message
    assert "InvoicedV1ToV2SetInPlace" in message
    assert "None" in message


async def test_an_old_payload_is_never_read_under_the_new_version_when_its_upcaster_returns_none(
    event_store: InMemoryEventStore,
) -> None:
    # given: a release-1 invoice (in dollars), loaded through an upcaster that returns None
    old = InvoicedV1(amount=12, aggregate_type="Invoice", aggregate_id="inv-1")
    await event_store.append("inv-1", [old], expected_version=0)
    loader = EventSourcedLoader(
        Invoice,
        event_store,
        EventTypeRegistry([Invoiced]),
        upcaster_registry=UpcasterRegistry([InvoicedV1ToV2SetInPlace()]),
    )
    # when: the load refuses, rather than reading release 1's payload as version 2 (in euros)
    with pytest.raises(UpcastingError) as raised:
        await loader.load("inv-1")
    # then
    assert (raised.value.stream_id, raised.value.version) == ("inv-1", 1)
    [stored] = await event_store.load_stream("inv-1")
    assert (stored.schema_version, stored.payload) == (1, {"amount": 12})


@pytest.mark.parametrize(
    "result",
    [None, [("amount", 12)], "amount=12", 12, {"amount", "currency"}],
    ids=["none", "list", "str", "int", "set"],
)
def test_an_upcaster_that_returns_anything_but_a_mapping_is_an_upcasting_error(
    result: object,
) -> None:
    # given
    registry = UpcasterRegistry([upcaster_returning(result)])
    # when
    with pytest.raises(UpcastingError) as raised:
        registry.upcast("Invoiced", 1, {"amount": 12}, stream_id="inv-3", version=4)
    # then
    error = raised.value
    assert (error.event_type, error.schema_version, error.stream_id, error.version) == (
        "Invoiced",
        1,
        "inv-3",
        4,
    )
    assert error.upcaster == "ReturnsNotAMapping"
    assert type(result).__name__ in str(error)


def test_a_mapping_that_is_not_a_dict_is_read_as_a_plain_dict() -> None:
    # given: an upcaster returning a read-only mapping, then one that sets a key on its input
    class ReadOnlyV1ToV2(EventUpcaster):
        event_type = "Invoiced"
        source_version = 1

        def upcast(self, data: dict[str, Any]) -> Any:
            return MappingProxyType({**data, "currency": "USD"})

    class TaggingV2ToV3(EventUpcaster):
        event_type = "Invoiced"
        source_version = 2

        def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
            data["tagged"] = True
            return data

    registry = UpcasterRegistry([ReadOnlyV1ToV2(), TaggingV2ToV3()])
    # when
    payload, version = registry.upcast("Invoiced", 1, {"amount": 12})
    # then
    assert type(payload) is dict
    assert (payload, version) == ({"amount": 12, "currency": "USD", "tagged": True}, 3)


def test_a_mapping_returned_by_the_last_upcaster_is_read_as_a_plain_dict() -> None:
    registry = UpcasterRegistry([upcaster_returning(MappingProxyType({"amount": 5}))])
    payload, version = registry.upcast("Invoiced", 1, {"amount": 12})
    assert type(payload) is dict
    assert (payload, version) == ({"amount": 5}, 2)


# ---------------------------------------------------------------- global reads


async def test_a_global_read_through_the_decoder_upcasts_old_events_too(
    event_store: InMemoryEventStore,
) -> None:
    # given: events of three releases in one log
    await store_release_1_order(event_store, "o-1")
    await event_store.append("p-1", [shipped_by_release_1("p-1", 0.2)], expected_version=0)
    current = OrderCreated(customer_id="cust-2", amount=Decimal("7.00"), currency="USD")
    await store_release_1_order(event_store, "o-2", current)
    await event_store.append("p-2", [shipped_by_release_2("p-2", 40)], expected_version=0)
    decoder = EventDecoder(
        EventTypeRegistry([OrderCreated, ParcelShipped]),
        UpcasterRegistry([OrderCreatedV1ToV2(), ParcelShippedV1ToV2(), ParcelShippedV2ToV3()]),
    )
    # when: what a projection or a replay does
    events = [decoder.decode(stored) for stored in await event_store.read_all()]
    # then
    assert [event.payload() for event in events] == [
        {"customer_id": "cust_456", "amount": Decimal("19.99"), "currency": "EUR"},
        {"weight_grams": 200, "carrier": "post"},
        {"customer_id": "cust-2", "amount": Decimal("7.00"), "currency": "USD"},
        {"weight_grams": 40, "carrier": "post"},
    ]
    assert [event.aggregate_id for event in events] == ["o-1", "p-1", "o-2", "p-2"]


async def test_a_decoder_without_upcasters_refuses_old_events_of_a_global_read(
    event_store: InMemoryEventStore,
) -> None:
    await store_release_1_order(event_store, "o-1")
    [stored] = await event_store.read_all()
    with pytest.raises(EventSchemaVersionError):
        EventDecoder(EventTypeRegistry([OrderCreated])).decode(stored)


# ---------------------------------------------------------------- one-step chains, by property


Payload = dict[str, Any]
Step = Callable[[Payload], Payload]

keys = st.sampled_from(["a", "b", "c", "amount", "currency", "x_1"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
payloads = st.dictionaries(keys, json_values, max_size=5)


def adding(key: str, value: Any) -> Step:
    return lambda data: {**data, key: value}


def renaming(old: str, new: str) -> Step:
    def rename(data: Payload) -> Payload:
        if old not in data:
            return dict(data)
        rest = {key: value for key, value in data.items() if key != old}
        return {**rest, new: data[old]}

    return rename


def dropping(key: str) -> Step:
    return lambda data: {k: v for k, v in data.items() if k != key}


def wrapping(key: str) -> Step:
    return lambda data: {**data, key: {"was": data.get(key)}}


steps = st.one_of(
    st.builds(adding, keys, json_values),
    st.builds(renaming, keys, keys),
    st.builds(dropping, keys),
    st.builds(wrapping, keys),
)


def link(source_version: int, step: Step) -> EventUpcaster:
    """Return an upcaster of "Evolving" from ``source_version`` that applies ``step``."""

    class Link(EventUpcaster):
        event_type = "Evolving"

        def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
            return step(data)

    Link.source_version = source_version
    return Link()


@settings(max_examples=200, deadline=None)
@given(
    first=st.integers(min_value=1, max_value=5),
    chain=st.lists(steps, min_size=1, max_size=6),
    payload=payloads,
    data=st.data(),
)
def test_a_chain_applied_in_one_step_equals_its_links_applied_one_by_one(
    first: int, chain: list[Step], payload: Payload, data: st.DataObject
) -> None:
    # given: links registered in a random order, and a random version to read from
    links = [link(first + index, step) for index, step in enumerate(chain)]
    registry = UpcasterRegistry(data.draw(st.permutations(links)))
    start = data.draw(st.integers(min_value=0, max_value=len(links) - 1))
    untouched = copy.deepcopy(payload)
    # when
    upcast, version = registry.upcast("Evolving", first + start, payload)
    # then
    expected = copy.deepcopy(payload)
    for upcaster in links[start:]:
        expected = upcaster.upcast(expected)
    assert upcast == expected
    assert version == first + len(links)
    assert payload == untouched


@settings(max_examples=100, deadline=None)
@given(chain=st.lists(steps, min_size=1, max_size=6), payload=payloads, data=st.data())
def test_a_chain_registered_one_by_one_in_any_contiguous_order_upcasts_the_same(
    chain: list[Step], payload: Payload, data: st.DataObject
) -> None:
    # given: links registered growing the chain at either end from a random one
    links = [link(1 + index, step) for index, step in enumerate(chain)]
    low = high = data.draw(st.integers(min_value=0, max_value=len(links) - 1))
    one_by_one = UpcasterRegistry()
    one_by_one.register(links[low])
    while high - low + 1 < len(links):
        downwards = low > 0 and (high == len(links) - 1 or data.draw(st.booleans()))
        if downwards:
            low -= 1
            one_by_one.register(links[low])
        else:
            high += 1
            one_by_one.register(links[high])
    # when / then
    assert one_by_one.upcast("Evolving", 1, payload) == UpcasterRegistry(links).upcast(
        "Evolving", 1, payload
    )


# ---------------------------------------------------------------- one object, several paths


@pytest.mark.parametrize("name", ["EventUpcaster", "UpcasterRegistry", "EventDecoder"])
def test_upcasting_is_the_very_same_object_under_both_paths_the_spec_names(name: str) -> None:
    home = importlib.import_module("cqrs_ddd_advanced_core.upcasting")
    alias = importlib.import_module("cqrs_ddd_advanced_core.event_sourcing.upcasting")
    assert getattr(alias, name) is getattr(home, name)
