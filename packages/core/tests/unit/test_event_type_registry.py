from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime

from cqrs_ddd_core.domain import DomainEvent, ValueObject
from cqrs_ddd_core.exceptions import (
    EventDeserializationError,
    EventSchemaVersionError,
    EventTypeConflictError,
    UnknownEventTypeError,
)
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.serialization import ENVELOPE_KEYS, EventTypeRegistry, encode_event

# ------------------------------------------------------------------ test events


class Colour(Enum):
    RED = "red"
    GREEN = "green"


class Money(ValueObject):
    amount: Decimal
    currency: str


class EverythingHappened(DomainEvent):
    reference: UUID
    due_at: AwareDatetime
    total: Decimal
    quantity: int
    ratio: float
    urgent: bool
    note: str
    details: dict[str, Any]
    prices: list[Money]
    comment: str | None
    colour: Colour


class OrderShipped(DomainEvent):
    carrier: str
    parcels: int = 1


class OrderCreated(DomainEvent):
    event_type: ClassVar[str] = "order.created"

    customer: str


class PriceChanged(DomainEvent):
    schema_version: ClassVar[int] = 2

    price: Decimal


EVENT_ID = UUID("6f1c1d0e-5b2a-4c1e-9a57-1f0c3c2b9d11")
REFERENCE = UUID("0b8e7c55-2d0e-4a7e-8a55-3f7a2a9b6c01")
PLUS_TWO = timezone(timedelta(hours=2))
MINUS_FIVE_THIRTY = timezone(-timedelta(hours=5, minutes=30))


def everything_happened(**overrides: Any) -> EverythingHappened:
    fields: dict[str, Any] = {
        "reference": REFERENCE,
        "due_at": datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=MINUS_FIVE_THIRTY),
        "total": Decimal("12.50"),
        "quantity": 3,
        "ratio": 0.1,
        "urgent": True,
        "note": "Grüße, 東京 🚚 — «ok»",
        "details": {"gift": {"wrap": True, "colours": ["red", None, 2, 2.5]}, "empty": {}},
        "prices": [
            Money(amount=Decimal("9.99"), currency="EUR"),
            Money(amount=Decimal("100"), currency="JPY"),
            Money(amount=Decimal("0.010"), currency="USD"),
        ],
        "comment": None,
        "colour": Colour.GREEN,
        "event_id": EVENT_ID,
        "occurred_at": datetime(2024, 3, 1, 12, 0, tzinfo=PLUS_TWO),
        "aggregate_id": "order-42",
        "aggregate_type": "Order",
        "version": 7,
        "correlation_id": "corr-1",
        "causation_id": "cmd-9",
        "metadata": {"user": "ana", "tenant": {"id": 5}, "tags": ["a", "b"]},
    }
    fields.update(overrides)
    return EverythingHappened(**fields)


def order_shipped_document(**payload_overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"carrier": "DHL", "parcels": 2}
    payload.update(payload_overrides)
    return {
        "event_type": "OrderShipped",
        "schema_version": 1,
        "event_id": str(EVENT_ID),
        "occurred_at": "2024-03-01T10:00:00Z",
        "aggregate_id": "order-42",
        "aggregate_type": "Order",
        "version": 3,
        "correlation_id": None,
        "causation_id": None,
        "metadata": {},
        "payload": payload,
    }


def stored_order_shipped(**overrides: Any) -> StoredEvent:
    fields: dict[str, Any] = {
        "position": 17,
        "stream_id": "order-42",
        "version": 3,
        "event_type": "OrderShipped",
        "schema_version": 1,
        "event_id": EVENT_ID,
        "occurred_at": datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
        "payload": {"carrier": "DHL", "parcels": 2},
        "aggregate_type": "Order",
        "correlation_id": "corr-1",
        "causation_id": "cmd-9",
        "metadata": {"user": "ana"},
    }
    fields.update(overrides)
    return StoredEvent(**fields)


def issue_fields(error: EventDeserializationError) -> list[str]:
    return [issue.field for issue in error.issues]


@pytest.fixture
def event_types() -> EventTypeRegistry:
    return EventTypeRegistry([EverythingHappened, OrderShipped, OrderCreated, PriceChanged])


# ------------------------------------------------------------------ round trip


def test_an_event_with_every_kind_of_field_survives_a_round_trip(
    event_types: EventTypeRegistry,
) -> None:
    # given
    event = everything_happened()
    # when
    restored = event_types.deserialize(event_types.serialize(event))
    # then
    assert restored == event
    assert type(restored) is EverythingHappened


def test_a_serialised_event_is_strict_json_and_survives_a_trip_through_json_text(
    event_types: EventTypeRegistry,
) -> None:
    # given
    event = everything_happened()
    # when
    text = json.dumps(event_types.serialize(event), allow_nan=False)
    restored = event_types.deserialize(json.loads(text))
    # then
    assert restored == event


def test_deserialised_fields_come_back_as_their_original_types(
    event_types: EventTypeRegistry,
) -> None:
    # when
    restored = event_types.deserialize(event_types.serialize(everything_happened()))
    # then
    assert isinstance(restored, EverythingHappened)
    assert type(restored.reference) is UUID
    assert type(restored.event_id) is UUID
    assert type(restored.total) is Decimal
    assert isinstance(restored.due_at, datetime)
    assert isinstance(restored.occurred_at, datetime)
    assert type(restored.colour) is Colour
    assert all(type(price) is Money for price in restored.prices)
    assert all(type(price.amount) is Decimal for price in restored.prices)
    assert type(restored.ratio) is float
    assert type(restored.urgent) is bool
    assert restored.comment is None


def test_a_decimal_keeps_its_exponent_through_a_round_trip(
    event_types: EventTypeRegistry,
) -> None:
    # given
    event = everything_happened(
        total=Decimal("12.50"), prices=[Money(amount=Decimal("1.000"), currency="EUR")]
    )
    # when
    restored = event_types.deserialize(event_types.serialize(event))
    # then
    assert isinstance(restored, EverythingHappened)
    assert str(restored.total) == "12.50"
    assert str(restored.prices[0].amount) == "1.000"


def test_occurred_at_given_with_an_offset_comes_back_as_the_same_instant_in_utc(
    event_types: EventTypeRegistry,
) -> None:
    # given
    given_at = datetime(2024, 3, 1, 12, 0, tzinfo=PLUS_TWO)
    event = everything_happened(occurred_at=given_at)
    # when
    document = event_types.serialize(event)
    restored = event_types.deserialize(document)
    # then
    assert restored.occurred_at == given_at
    assert restored.occurred_at.utcoffset() == timedelta(0)
    assert restored.occurred_at.hour == 10
    assert document["occurred_at"] == "2024-03-01T10:00:00Z"


def test_a_payload_datetime_with_an_offset_comes_back_as_the_same_aware_instant(
    event_types: EventTypeRegistry,
) -> None:
    # given
    due_at = datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=MINUS_FIVE_THIRTY)
    event = everything_happened(due_at=due_at)
    # when
    restored = event_types.deserialize(event_types.serialize(event))
    # then
    assert isinstance(restored, EverythingHappened)
    assert restored.due_at == due_at
    assert restored.due_at.utcoffset() is not None


def test_every_envelope_field_survives_a_round_trip(event_types: EventTypeRegistry) -> None:
    # given
    event = everything_happened()
    # when
    restored = event_types.deserialize(event_types.serialize(event))
    # then
    assert restored.event_id == EVENT_ID
    assert restored.occurred_at == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert restored.aggregate_id == "order-42"
    assert restored.aggregate_type == "Order"
    assert restored.version == 7
    assert restored.correlation_id == "corr-1"
    assert restored.causation_id == "cmd-9"
    assert restored.metadata == {"user": "ana", "tenant": {"id": 5}, "tags": ["a", "b"]}


def test_a_document_holds_the_envelope_beside_a_payload_of_the_events_own_fields(
    event_types: EventTypeRegistry,
) -> None:
    # when
    document = event_types.serialize(everything_happened())
    # then
    assert set(document) == {*ENVELOPE_KEYS, "payload"}
    assert document["event_type"] == "EverythingHappened"
    assert document["schema_version"] == 1
    assert document["event_id"] == str(EVENT_ID)
    assert set(document["payload"]) == set(everything_happened().payload())
    assert document["payload"]["total"] == "12.50"
    assert document["payload"]["reference"] == str(REFERENCE)
    assert document["payload"]["colour"] == "green"


def test_encode_event_makes_the_same_document_as_a_registry(
    event_types: EventTypeRegistry,
) -> None:
    # given
    event = everything_happened()
    # then
    assert encode_event(event) == event_types.serialize(event)


# ------------------------------------------------------------------ round trip, property

json_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(json_text, children, max_size=3)
    ),
    max_leaves=12,
)
fixed_offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=fixed_offsets
)
finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)
money = st.builds(
    Money,
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=2),
    currency=st.sampled_from(["EUR", "USD", "JPY"]),
)
optional_text = st.none() | json_text


@st.composite
def everything_happened_events(draw: st.DrawFn) -> EverythingHappened:
    return EverythingHappened(
        reference=draw(st.uuids()),
        due_at=draw(aware_datetimes),
        total=draw(finite_decimals),
        quantity=draw(st.integers(min_value=-(2**63), max_value=2**63)),
        ratio=draw(st.floats(allow_nan=False, allow_infinity=False)),
        urgent=draw(st.booleans()),
        note=draw(json_text),
        details=draw(st.dictionaries(json_text, json_values, max_size=3)),
        prices=draw(st.lists(money, max_size=3)),
        comment=draw(optional_text),
        colour=draw(st.sampled_from(Colour)),
        event_id=draw(st.uuids()),
        occurred_at=draw(st.datetimes(timezones=st.just(UTC))),
        aggregate_id=draw(optional_text),
        aggregate_type=draw(optional_text),
        version=draw(st.none() | st.integers(min_value=1, max_value=2**31)),
        correlation_id=draw(optional_text),
        causation_id=draw(optional_text),
        metadata=draw(st.dictionaries(json_text, json_values, max_size=3)),
    )


@settings(max_examples=150, deadline=None)
@given(event=everything_happened_events())
def test_any_event_of_json_safe_values_survives_a_round_trip_through_json_text(
    event: EverythingHappened,
) -> None:
    # given
    event_types = EventTypeRegistry([EverythingHappened])
    # when
    text = json.dumps(event_types.serialize(event), allow_nan=False)
    restored = event_types.deserialize(json.loads(text))
    # then
    assert restored == event
    assert isinstance(restored, EverythingHappened)
    assert str(restored.total) == str(event.total)
    assert [str(p.amount) for p in restored.prices] == [str(p.amount) for p in event.prices]
    assert restored.occurred_at.utcoffset() == timedelta(0)


# ------------------------------------------------------------------ from_stored


def test_a_stored_event_is_built_from_its_row(event_types: EventTypeRegistry) -> None:
    # when
    event = event_types.from_stored(stored_order_shipped())
    # then
    assert event == OrderShipped(
        carrier="DHL",
        parcels=2,
        event_id=EVENT_ID,
        occurred_at=datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
        aggregate_id="order-42",
        aggregate_type="Order",
        version=3,
        correlation_id="corr-1",
        causation_id="cmd-9",
        metadata={"user": "ana"},
    )


def test_a_row_made_from_a_serialised_event_gives_the_event_back(
    event_types: EventTypeRegistry,
) -> None:
    # given
    event = everything_happened()
    document = event_types.serialize(event)
    stored = StoredEvent(
        position=1,
        stream_id=document["aggregate_id"],
        version=document["version"],
        event_type=document["event_type"],
        schema_version=document["schema_version"],
        event_id=UUID(document["event_id"]),
        occurred_at=datetime.fromisoformat(document["occurred_at"]),
        payload=document["payload"],
        aggregate_type=document["aggregate_type"],
        correlation_id=document["correlation_id"],
        causation_id=document["causation_id"],
        metadata=document["metadata"],
    )
    # when
    restored = event_types.from_stored(stored)
    # then
    assert restored == event


def test_a_malformed_stored_payload_is_rejected_naming_its_stream_and_version(
    event_types: EventTypeRegistry,
) -> None:
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.from_stored(stored_order_shipped(payload={"parcels": "many"}))
    # then
    error = caught.value
    assert error.stream_id == "order-42"
    assert error.version == 3
    assert "'order-42'" in str(error)
    assert "version 3" in str(error)
    assert set(issue_fields(error)) == {"carrier", "parcels"}


def test_a_stored_payload_clashing_with_the_envelope_is_rejected_naming_its_stream(
    event_types: EventTypeRegistry,
) -> None:
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.from_stored(
            stored_order_shipped(payload={"carrier": "DHL", "aggregate_id": "other"})
        )
    # then
    assert issue_fields(caught.value) == ["aggregate_id"]
    assert caught.value.stream_id == "order-42"
    assert caught.value.version == 3


def test_an_unknown_stored_event_type_is_rejected_naming_its_stream(
    event_types: EventTypeRegistry,
) -> None:
    # when
    with pytest.raises(UnknownEventTypeError) as caught:
        event_types.from_stored(stored_order_shipped(event_type="OrderVanished"))
    # then
    assert caught.value.event_type == "OrderVanished"
    assert caught.value.stream_id == "order-42"
    assert "'order-42'" in str(caught.value)


def test_an_unknown_stored_event_type_is_rejected_naming_its_version(
    event_types: EventTypeRegistry,
) -> None:
    # when
    with pytest.raises(UnknownEventTypeError) as caught:
        event_types.from_stored(stored_order_shipped(event_type="OrderVanished"))
    # then
    assert "version 3" in str(caught.value)


def test_a_stored_schema_version_mismatch_is_rejected_naming_its_stream_and_version(
    event_types: EventTypeRegistry,
) -> None:
    # when
    with pytest.raises(EventSchemaVersionError) as caught:
        event_types.from_stored(stored_order_shipped(schema_version=5))
    # then
    assert "'order-42'" in str(caught.value)
    assert "version 3" in str(caught.value)


# ------------------------------------------------------------------ registration


def test_an_unknown_event_type_is_rejected_with_its_name(event_types: EventTypeRegistry) -> None:
    # given
    document = order_shipped_document()
    document["event_type"] = "OrderVanished"
    # when
    with pytest.raises(UnknownEventTypeError) as caught:
        event_types.deserialize(document)
    # then
    assert caught.value.event_type == "OrderVanished"
    assert "'OrderVanished'" in str(caught.value)


def test_a_defined_but_unregistered_event_class_is_not_found_by_its_name() -> None:
    # given a registry that knows only OrderShipped, while OrderCreated is defined
    event_types = EventTypeRegistry([OrderShipped])
    document = order_shipped_document()
    document["event_type"] = "order.created"
    document["payload"] = {"customer": "c-1"}
    # when / then
    with pytest.raises(UnknownEventTypeError):
        event_types.deserialize(document)
    assert not event_types.is_registered("order.created")


def test_two_classes_under_one_event_type_name_conflict_at_registration() -> None:
    # given
    class FirstShipped(DomainEvent):
        event_type: ClassVar[str] = "shipped"

    class SecondShipped(DomainEvent):
        event_type: ClassVar[str] = "shipped"

    event_types = EventTypeRegistry([FirstShipped])
    # when
    with pytest.raises(EventTypeConflictError) as caught:
        event_types.register(SecondShipped)
    # then
    assert caught.value.event_type == "shipped"
    assert caught.value.existing is FirstShipped
    assert caught.value.incoming is SecondShipped
    assert "FirstShipped" in str(caught.value)
    assert "SecondShipped" in str(caught.value)
    assert event_types.resolve("shipped") is FirstShipped


def test_registering_the_same_class_twice_is_harmless() -> None:
    # given
    event_types = EventTypeRegistry([OrderShipped])
    # when
    returned = event_types.register(OrderShipped)
    # then
    assert returned is OrderShipped
    assert len(event_types) == 1
    assert list(event_types) == [OrderShipped]
    assert event_types.resolve("OrderShipped") is OrderShipped


def test_register_works_as_a_class_decorator() -> None:
    # given
    event_types = EventTypeRegistry()

    # when
    @event_types.register
    class InvoiceSent(DomainEvent):
        invoice_no: str

    # then
    event = InvoiceSent(invoice_no="I-1")
    assert event_types.resolve("InvoiceSent") is InvoiceSent
    assert event_types.deserialize(event_types.serialize(event)) == event


def test_serialising_an_event_of_an_unregistered_class_is_rejected_with_its_name() -> None:
    # given
    event_types = EventTypeRegistry([OrderShipped])
    # when
    with pytest.raises(UnknownEventTypeError) as caught:
        event_types.serialize(OrderCreated(customer="c-1"))
    # then
    assert caught.value.event_type == "order.created"
    assert "'order.created'" in str(caught.value)


def test_serialising_an_event_whose_name_belongs_to_another_class_is_rejected(
    event_types: EventTypeRegistry,
) -> None:
    # given a second class stored under the registered name "OrderShipped"
    class Impostor(DomainEvent):
        event_type: ClassVar[str] = "OrderShipped"

        carrier: str

    # when
    with pytest.raises(EventTypeConflictError) as caught:
        event_types.serialize(Impostor(carrier="DHL"))
    # then
    assert caught.value.existing is OrderShipped
    assert caught.value.incoming is Impostor


def test_the_schema_version_of_a_registered_type_is_the_classes(
    event_types: EventTypeRegistry,
) -> None:
    assert event_types.schema_version_of("PriceChanged") == 2
    assert event_types.schema_version_of("OrderShipped") == 1
    assert event_types.serialize(PriceChanged(price=Decimal("1.5")))["schema_version"] == 2


# ------------------------------------------------------------------ malformed documents


def test_a_payload_missing_a_required_field_is_rejected_naming_the_field(
    event_types: EventTypeRegistry,
) -> None:
    # given
    document = order_shipped_document()
    del document["payload"]["carrier"]
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.deserialize(document)
    # then
    assert issue_fields(caught.value) == ["carrier"]
    assert caught.value.event_type == "OrderShipped"
    assert "carrier" in str(caught.value)


def test_a_payload_field_of_the_wrong_type_is_rejected_naming_the_field(
    event_types: EventTypeRegistry,
) -> None:
    # given
    document = order_shipped_document(parcels="many")
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.deserialize(document)
    # then
    assert issue_fields(caught.value) == ["parcels"]
    assert "parcels" in str(caught.value)


def test_a_payload_with_an_unknown_field_is_rejected_naming_the_field(
    event_types: EventTypeRegistry,
) -> None:
    # given
    document = order_shipped_document(colour_of_sky="blue")
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.deserialize(document)
    # then
    assert issue_fields(caught.value) == ["colour_of_sky"]
    assert "colour_of_sky" in str(caught.value)


def test_a_malformed_nested_value_is_rejected_naming_its_dotted_path(
    event_types: EventTypeRegistry,
) -> None:
    # given
    document = event_types.serialize(everything_happened())
    document["payload"]["prices"][1]["amount"] = "a lot"
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.deserialize(document)
    # then
    assert issue_fields(caught.value) == ["prices.1.amount"]


@pytest.mark.parametrize("payload", [["carrier", "DHL"], "DHL", None, 3])
def test_a_payload_that_is_not_an_object_is_rejected(
    event_types: EventTypeRegistry, payload: object
) -> None:
    # given
    document = order_shipped_document()
    document["payload"] = payload
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.deserialize(document)
    # then
    assert issue_fields(caught.value) == ["payload"]


@pytest.mark.parametrize("key", [*ENVELOPE_KEYS, "payload"])
def test_a_document_missing_an_envelope_key_is_rejected_naming_the_key(
    event_types: EventTypeRegistry, key: str
) -> None:
    # given
    document = order_shipped_document()
    del document[key]
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.deserialize(document)
    # then
    assert issue_fields(caught.value) == [key]
    assert key in str(caught.value)


@pytest.mark.parametrize("schema_version", ["1", 1.0, True, None, [1]])
def test_a_schema_version_that_is_not_an_integer_is_rejected(
    event_types: EventTypeRegistry, schema_version: object
) -> None:
    # given
    document = order_shipped_document()
    document["schema_version"] = schema_version
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.deserialize(document)
    # then
    assert issue_fields(caught.value) == ["schema_version"]


def test_a_document_at_another_schema_version_than_its_class_is_rejected(
    event_types: EventTypeRegistry,
) -> None:
    # given a document written when PriceChanged was at version 1 (the class is at 2)
    document = event_types.serialize(PriceChanged(price=Decimal("3.10")))
    document["schema_version"] = 1
    # when
    with pytest.raises(EventSchemaVersionError) as caught:
        event_types.deserialize(document)
    # then
    error = caught.value
    assert error.event_type == "PriceChanged"
    assert error.stored_version == 1
    assert error.class_version == 2
    assert "version 1" in str(error)
    assert "version 2" in str(error)


@pytest.mark.parametrize("key", ENVELOPE_KEYS)
def test_a_payload_key_that_clashes_with_an_envelope_key_is_rejected(
    event_types: EventTypeRegistry, key: str
) -> None:
    # given
    document = order_shipped_document()
    document["payload"][key] = document[key]
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.deserialize(document)
    # then
    assert issue_fields(caught.value) == [key]


def test_an_envelope_value_of_the_wrong_type_is_rejected_naming_the_field(
    event_types: EventTypeRegistry,
) -> None:
    # given
    document = order_shipped_document()
    document["occurred_at"] = "yesterday"
    document["version"] = 0
    # when
    with pytest.raises(EventDeserializationError) as caught:
        event_types.deserialize(document)
    # then
    assert set(issue_fields(caught.value)) == {"occurred_at", "version"}


# ------------------------------------------------------------------ no imports from stored data


@pytest.mark.parametrize(
    "event_type",
    [
        "os:system",
        "builtins.eval",
        "subprocess.Popen",
        "this.s",
        "cqrs_ddd_core.domain.events.DomainEvent",
        "DomainEvent",
        "tests.unit.test_event_type_registry:OrderCreated",
        "__import__",
    ],
)
def test_a_stored_name_is_never_imported(event_types: EventTypeRegistry, event_type: str) -> None:
    # given
    document = order_shipped_document()
    document["event_type"] = event_type
    modules_before = set(sys.modules)
    # when
    with pytest.raises(UnknownEventTypeError) as caught:
        event_types.deserialize(document)
    # then
    assert caught.value.event_type == event_type
    assert set(sys.modules) == modules_before


def test_a_stored_row_name_is_never_imported(event_types: EventTypeRegistry) -> None:
    # given
    modules_before = set(sys.modules)
    # when
    with pytest.raises(UnknownEventTypeError):
        event_types.from_stored(stored_order_shipped(event_type="this.s"))
    # then
    assert set(sys.modules) == modules_before


# ------------------------------------------------------------------ event type names


def test_the_event_type_defaults_to_the_class_name(event_types: EventTypeRegistry) -> None:
    assert OrderShipped.event_type == "OrderShipped"
    assert event_types.serialize(OrderShipped(carrier="DHL"))["event_type"] == "OrderShipped"


def test_a_class_that_names_its_event_type_is_stored_under_that_name(
    event_types: EventTypeRegistry,
) -> None:
    # given
    event = OrderCreated(customer="c-1")
    # when
    document = event_types.serialize(event)
    # then
    assert document["event_type"] == "order.created"
    assert event_types.is_registered("order.created")
    assert not event_types.is_registered("OrderCreated")
    assert event_types.deserialize(document) == event


def test_a_subclass_is_stored_under_its_own_class_name_not_its_parents_chosen_name() -> None:
    # given
    class OrderCreatedByPhone(OrderCreated):
        phone: str

    # then
    assert OrderCreated.event_type == "order.created"
    assert OrderCreatedByPhone.event_type == "OrderCreatedByPhone"
