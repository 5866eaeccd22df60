from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pydantic
import pytest
from core_test_model import ItemAdded, Order, OrderPlaced

from cqrs_ddd_core import AggregateRoot, DomainEvent, Entity, ValueObject


class Money(ValueObject):
    amount: Decimal
    currency: str


def test_a_new_aggregate_is_at_version_zero_with_a_generated_id() -> None:
    first, second = Order(), Order()
    assert first.version == 0
    assert first.id != second.id


def test_recording_events_stamps_them_and_advances_the_version() -> None:
    order = Order.place("c-1", "o-1")
    order.add_item("sku-1", Decimal("3.50"))
    events = order.pending_events
    assert [type(e) for e in events] == [OrderPlaced, ItemAdded]
    assert [e.version for e in events] == [1, 2]
    assert {e.aggregate_id for e in events} == {"o-1"}
    assert {e.aggregate_type for e in events} == {"Order"}
    assert order.version == 2
    assert order.persisted_version == 0


def test_collected_events_are_handed_out_once() -> None:
    order = Order.place("c-1")
    first = order.collect_events()
    second = order.collect_events()
    assert len(first) == 1
    assert second == []
    assert order.persisted_version == order.version == 1


def test_domain_events_are_immutable_and_timestamped_in_utc() -> None:
    event = OrderPlaced(customer_id="c-1")
    with pytest.raises(pydantic.ValidationError):
        event.customer_id = "other"  # type: ignore[misc]
    assert event.occurred_at.tzinfo is not None
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_an_event_time_given_in_another_zone_is_normalised_to_utc() -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    event = OrderPlaced(customer_id="c", occurred_at=local)
    assert event.occurred_at == local
    assert event.occurred_at.tzinfo == UTC


def test_a_naive_event_time_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="occurred_at"):
        OrderPlaced(customer_id="c", occurred_at=datetime(2026, 1, 1))


def test_an_event_separates_its_payload_from_its_envelope() -> None:
    event = ItemAdded(sku="s", price=Decimal(2), metadata={"user": "u-1"})
    assert event.payload() == {"sku": "s", "price": Decimal(2)}
    assert "metadata" in DomainEvent.envelope_fields()


def test_entities_are_equal_by_identity_not_by_state() -> None:
    class Customer(Entity):
        name: str

    assert Customer(id="1", name="Ann") == Customer(id="1", name="Anna")
    assert Customer(id="1", name="Ann") != Customer(id="2", name="Ann")
    assert len({Customer(id="1", name="a"), Customer(id="1", name="b")}) == 1


def test_value_objects_are_equal_by_value_and_immutable() -> None:
    assert Money(amount=Decimal("1.0"), currency="EUR") == Money(
        amount=Decimal("1.0"), currency="EUR"
    )
    price = Money(amount=Decimal(1), currency="EUR")
    with pytest.raises(pydantic.ValidationError):
        price.amount = Decimal(2)  # type: ignore[misc]


def test_the_aggregate_type_name_defaults_to_the_class_name_and_can_be_fixed() -> None:
    class Invoice(AggregateRoot):
        pass

    class RenamedCart(AggregateRoot):
        aggregate_type_name = "Cart"

    assert Invoice.aggregate_type_name == "Invoice"
    assert RenamedCart().record_event(OrderPlaced(customer_id="c")).aggregate_type == "Cart"
