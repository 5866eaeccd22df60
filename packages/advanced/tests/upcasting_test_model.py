"""An event whose schema moved twice, for the upcasting tests of every package.

``ParcelShipped`` is at schema version 3. Release 1 stored ``weight_kg`` (a
float); release 2 stored ``weight_grams`` (an int); release 3 adds ``carrier``.
``ParcelShippedV1`` and ``ParcelShippedV2`` are the classes those releases wrote
with (same stored name, older ``schema_version``), so tests can put old events
into a real store. ``Parcel`` is the event-sourced aggregate that applies them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from cqrs_ddd_advanced_core import EventSourcedAggregateMixin, aggregate_event_handler
from cqrs_ddd_advanced_core.upcasting import EventUpcaster
from cqrs_ddd_core import AggregateRoot, DomainEvent, EventTypeRegistry


class ParcelShipped(DomainEvent):
    """The current schema (version 3)."""

    schema_version: ClassVar[int] = 3

    weight_grams: int
    carrier: str


class ParcelShippedV1(DomainEvent):
    """``ParcelShipped`` as release 1 wrote it."""

    event_type: ClassVar[str] = "ParcelShipped"

    weight_kg: float


class ParcelShippedV2(DomainEvent):
    """``ParcelShipped`` as release 2 wrote it."""

    event_type: ClassVar[str] = "ParcelShipped"
    schema_version: ClassVar[int] = 2

    weight_grams: int


class ParcelShippedV1ToV2(EventUpcaster):
    event_type = "ParcelShipped"
    source_version = 1

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        rest = {key: value for key, value in data.items() if key != "weight_kg"}
        return {**rest, "weight_grams": round(data["weight_kg"] * 1000)}


class ParcelShippedV2ToV3(EventUpcaster):
    event_type = "ParcelShipped"
    source_version = 2

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "carrier": data.get("carrier", "post")}


class Parcel(EventSourcedAggregateMixin, AggregateRoot):
    weight_grams: int = 0
    carrier: str = ""

    @aggregate_event_handler
    def on_shipped(self, event: ParcelShipped) -> None:
        self.weight_grams = event.weight_grams
        self.carrier = event.carrier


def parcel_event_types() -> EventTypeRegistry:
    """Return a registry holding the current ``ParcelShipped``."""
    return EventTypeRegistry([ParcelShipped])


def shipped_by_release_1(parcel_id: str, weight_kg: float) -> ParcelShippedV1:
    """Return the event release 1 recorded when a parcel of ``weight_kg`` shipped."""
    return ParcelShippedV1(weight_kg=weight_kg, aggregate_type="Parcel", aggregate_id=parcel_id)


def shipped_by_release_2(parcel_id: str, weight_grams: int) -> ParcelShippedV2:
    """Return the event release 2 recorded when a parcel of ``weight_grams`` shipped."""
    return ParcelShippedV2(
        weight_grams=weight_grams, aggregate_type="Parcel", aggregate_id=parcel_id
    )
