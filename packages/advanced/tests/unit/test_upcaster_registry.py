"""``UpcasterRegistry`` on its own: what it refuses, how far a chain goes, what it leaves alone.

The upcasters are built per test (``link``), so each test states the chain it
reads through; the stored events come from a real in-memory event store where a
test is about the stored row.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_advanced_core.domain.exceptions import (
    EventSourcingConfigurationError,
    UpcasterRegistrationError,
    UpcastingError,
)
from cqrs_ddd_advanced_core.upcasting import EventDecoder, EventUpcaster, UpcasterRegistry
from cqrs_ddd_core import DomainEvent, EventTypeRegistry

NO_VERSION = -1
"""The source version a registration error names when the upcaster has no valid one."""

MISSING = object()
"""Leaves an attribute out of the upcaster class ``link`` builds."""


def link(
    source_version: object,
    *,
    event_type: object = "Evolving",
    name: str = "Link",
    applied: list[int] | None = None,
) -> EventUpcaster:
    """Return an upcaster of ``event_type`` from ``source_version`` that records its step.

    The payload it returns has ``steps`` extended with ``source_version``; when
    ``applied`` is given, the upcaster appends ``source_version`` to it too.
    ``MISSING`` leaves ``event_type`` or ``source_version`` out of the class.
    """

    def upcast(self: EventUpcaster, data: dict[str, Any]) -> dict[str, Any]:
        if applied is not None:
            applied.append(self.source_version)
        return {**data, "steps": [*data.get("steps", []), self.source_version]}

    attributes = {"event_type": event_type, "source_version": source_version}
    namespace = {key: value for key, value in attributes.items() if value is not MISSING}
    namespace["upcast"] = upcast
    upcaster: EventUpcaster = type(name, (EventUpcaster,), namespace)()
    return upcaster


def chain(first: int, last: int, **options: Any) -> list[EventUpcaster]:
    """Return upcasters of "Evolving" from every version of ``first..last``."""
    return [link(version, **options) for version in range(first, last + 1)]


# ---------------------------------------------------------------- upcasting in place


class SetsInPlace(EventUpcaster):
    """Sets a key on the payload it is given and returns that same dict."""

    event_type = "Evolving"
    source_version = 1

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        data["x"] = 1
        return data


class AlsoSetsInPlace(EventUpcaster):
    event_type = "Evolving"
    source_version = 2

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        data["y"] = 2
        return data


def test_an_upcaster_that_sets_keys_in_place_leaves_the_payload_it_was_given_unchanged() -> None:
    # given
    registry = UpcasterRegistry([SetsInPlace(), AlsoSetsInPlace()])
    stored = {"a": 0}
    # when
    payload, version = registry.upcast("Evolving", 1, stored)
    # then
    assert (payload, version) == ({"a": 0, "x": 1, "y": 2}, 3)
    assert stored == {"a": 0}
    assert payload is not stored


class Evolving(DomainEvent):
    """The current "Evolving" (version 2): ``x`` arrived with the first upcaster."""

    schema_version: ClassVar[int] = 2

    a: int
    x: int


class EvolvingV1(DomainEvent):
    event_type: ClassVar[str] = "Evolving"

    a: int


async def test_decoding_through_an_in_place_upcaster_leaves_the_stored_event_unchanged(
    event_store: InMemoryEventStore,
) -> None:
    # given: a version-1 event in the store
    await event_store.append(
        "e-1", [EvolvingV1(a=5, aggregate_type="Thing", aggregate_id="e-1")], expected_version=0
    )
    [stored] = await event_store.load_stream("e-1")
    decoder = EventDecoder(EventTypeRegistry([Evolving]), UpcasterRegistry([SetsInPlace()]))
    # when
    event = decoder.decode(stored)
    # then: the event is at version 2; the row, as read and as stored, is still at version 1
    assert isinstance(event, Evolving)
    assert (event.a, event.x) == (5, 1)
    assert stored.payload == {"a": 5}
    [again] = await event_store.load_stream("e-1")
    assert (again.schema_version, again.payload) == (1, {"a": 5})


# ---------------------------------------------------------------- registration refusals


@pytest.mark.parametrize(
    "event_type", [MISSING, None, "", 42], ids=["missing", "none", "empty", "not-a-str"]
)
def test_an_upcaster_without_a_usable_event_type_is_refused(event_type: object) -> None:
    # when
    with pytest.raises(UpcasterRegistrationError) as raised:
        UpcasterRegistry().register(link(1, event_type=event_type, name="Nameless"))
    # then
    error = raised.value
    named = repr(None if event_type is MISSING else event_type)
    assert (error.event_type, error.source_version) == (named, NO_VERSION)
    assert error.reason == "Nameless must set event_type"
    assert isinstance(error, EventSourcingConfigurationError)


@pytest.mark.parametrize(
    "source_version",
    [MISSING, None, "2", 2.0, True, False, 0, -1],
    ids=["missing", "none", "str", "float", "true", "false", "zero", "negative"],
)
def test_an_upcaster_whose_source_version_is_not_an_int_of_at_least_1_is_refused(
    source_version: object,
) -> None:
    # when
    with pytest.raises(UpcasterRegistrationError) as raised:
        UpcasterRegistry().register(link(source_version, name="Unversioned"))
    # then
    error = raised.value
    assert (error.event_type, error.source_version) == ("Evolving", NO_VERSION)
    assert error.reason == "Unversioned.source_version must be an int >= 1"


@pytest.mark.parametrize(
    "source_version",
    [MISSING, None, "2", True, 0],
    ids=["missing", "none", "str", "bool", "zero"],
)
def test_the_constructor_refuses_a_bad_source_version_among_good_ones_as_register_does(
    source_version: object,
) -> None:
    # when: the bad one is in the middle of a batch (a str does not even compare with an int)
    with pytest.raises(UpcasterRegistrationError) as raised:
        UpcasterRegistry([link(1), link(source_version, name="Unversioned"), link(2)])
    # then
    assert (raised.value.event_type, raised.value.source_version) == ("Evolving", NO_VERSION)
    assert raised.value.reason == "Unversioned.source_version must be an int >= 1"


def test_the_constructor_refuses_an_upcaster_without_an_event_type_among_good_ones() -> None:
    with pytest.raises(UpcasterRegistrationError) as raised:
        UpcasterRegistry([link(1), link(2, event_type="", name="Nameless")])
    assert raised.value.reason == "Nameless must set event_type"


def test_version_1_is_the_lowest_source_version_accepted() -> None:
    registry = UpcasterRegistry()
    registry.register(link(1))
    assert registry.upcast("Evolving", 1, {}) == ({"steps": [1]}, 2)


def test_a_second_upcaster_from_a_registered_version_is_refused_naming_the_first() -> None:
    # given
    registry = UpcasterRegistry(chain(1, 3, name="First"))
    # when
    with pytest.raises(UpcasterRegistrationError) as raised:
        registry.register(link(2, name="Second"))
    # then
    error = raised.value
    assert (error.event_type, error.source_version) == ("Evolving", 2)
    assert error.reason == "First already upcasts it"
    assert str(error) == (
        "cannot register the upcaster of 'Evolving' from version 2: First already upcasts it"
    )


@pytest.mark.parametrize(
    ("registered", "refused", "missing"),
    [
        ((1,), 3, "2"),
        ((1,), 4, "2, 3"),
        ((4,), 1, "2, 3"),
        ((1, 2), 5, "3, 4"),
        ((3, 4), 1, "2"),
    ],
)
def test_an_upcaster_registered_one_by_one_that_leaves_a_gap_is_refused_naming_it_and_the_gap(
    registered: tuple[int, ...], refused: int, missing: str
) -> None:
    # given
    registry = UpcasterRegistry()
    for version in registered:
        registry.register(link(version))
    # when
    with pytest.raises(UpcasterRegistrationError) as raised:
        registry.register(link(refused))
    # then
    error = raised.value
    assert (error.event_type, error.source_version) == ("Evolving", refused)
    assert error.reason.endswith(f"has a gap: no upcaster from version {missing}")
    versions = sorted({*registered, refused})
    assert error.reason == f"the chain {versions} has a gap: no upcaster from version {missing}"


@pytest.mark.parametrize(
    ("versions", "first_missing", "missing"),
    [((1, 3), 2, "2"), ((4, 1), 2, "2, 3"), ((1, 2, 5, 7), 3, "3, 4, 6")],
)
def test_a_gap_in_the_constructor_s_chain_is_refused_naming_the_first_missing_version(
    versions: tuple[int, ...], first_missing: int, missing: str
) -> None:
    # when
    with pytest.raises(UpcasterRegistrationError) as raised:
        UpcasterRegistry([link(version) for version in versions])
    # then
    error = raised.value
    assert (error.event_type, error.source_version) == ("Evolving", first_missing)
    assert error.reason.endswith(f"no upcaster from version {missing}")


def test_a_gap_in_one_event_type_s_chain_is_refused_even_when_another_type_fills_it() -> None:
    with pytest.raises(UpcasterRegistrationError) as raised:
        UpcasterRegistry([link(1), link(2, event_type="Other"), link(3)])
    assert (raised.value.event_type, raised.value.source_version) == ("Evolving", 2)


@pytest.mark.parametrize("order", [(3, 1, 2), (2, 3, 1), (3, 2, 1)])
def test_a_contiguous_chain_given_out_of_order_to_the_constructor_is_accepted(
    order: tuple[int, ...],
) -> None:
    # given: two event types' chains, interleaved and out of order
    upcasters = [link(version) for version in order]
    upcasters.insert(1, link(6, event_type="Other"))
    upcasters.append(link(5, event_type="Other"))
    # when
    registry = UpcasterRegistry(upcasters)
    # then
    assert registry.upcast("Evolving", 1, {}) == ({"steps": [1, 2, 3]}, 4)
    assert registry.upcast("Other", 5, {}) == ({"steps": [5, 6]}, 7)


# ---------------------------------------------------------------- how far a chain goes


@pytest.mark.parametrize("length", [1, 2, 3])
@pytest.mark.parametrize("source", [1, 4])
def test_a_chain_of_n_upcasters_takes_an_event_at_its_start_to_exactly_n_versions_later(
    length: int, source: int
) -> None:
    # given
    applied: list[int] = []
    registry = UpcasterRegistry(chain(source, source + length - 1, applied=applied))
    # when
    payload, version = registry.upcast("Evolving", source, {"a": 1})
    # then
    assert version == source + length
    assert payload == {"a": 1, "steps": list(range(source, source + length))}
    assert applied == list(range(source, source + length))


@pytest.mark.parametrize(
    "stored_version",
    [5, 6, 9, 1, 2],
    ids=["at-the-end", "above-the-end", "far-above", "below-the-start", "just-below"],
)
def test_an_event_outside_the_chain_is_returned_unchanged_at_its_own_version(
    stored_version: int,
) -> None:
    # given: a chain from version 3 to version 5 (upcasters from 3 and 4)
    applied: list[int] = []
    registry = UpcasterRegistry(chain(3, 4, applied=applied))
    stored = {"a": 1}
    # when
    payload, version = registry.upcast("Evolving", stored_version, stored)
    # then
    assert (payload, version) == ({"a": 1}, stored_version)
    assert applied == []


def test_an_event_of_a_type_without_a_chain_is_returned_unchanged() -> None:
    registry = UpcasterRegistry(chain(1, 2))
    assert registry.upcast("Unrelated", 1, {"a": 1}) == ({"a": 1}, 1)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(min_value=1, max_value=8),
    length=st.integers(min_value=1, max_value=6),
    stored_version=st.integers(min_value=1, max_value=16),
    data=st.data(),
)
def test_the_version_reached_is_the_chain_s_end_from_inside_it_and_the_stored_one_outside(
    start: int, length: int, stored_version: int, data: st.DataObject
) -> None:
    # given: upcasters from start..end, registered in a random order
    end = start + length - 1
    applied: list[int] = []
    upcasters = data.draw(st.permutations(chain(start, end, applied=applied)))
    registry = UpcasterRegistry(upcasters)
    payload = {"a": stored_version}
    untouched = copy.deepcopy(payload)
    # when
    upcast, version = registry.upcast("Evolving", stored_version, payload)
    # then
    inside = start <= stored_version <= end
    assert version == (max(stored_version, end + 1) if inside else stored_version)
    expected_steps = list(range(stored_version, end + 1)) if inside else []
    assert applied == expected_steps
    assert upcast == ({**payload, "steps": expected_steps} if inside else payload)
    assert payload == untouched


# ---------------------------------------------------------------- the error of a failing step


def test_a_step_that_returns_no_mapping_names_the_upcaster_and_says_what_it_returned() -> None:
    # given: a chain whose second step returns None
    class ForgetsToReturn(EventUpcaster):
        event_type = "Evolving"
        source_version = 2

        def upcast(self, data: dict[str, Any]) -> Any:
            data["x"] = 1

    registry = UpcasterRegistry([link(1), ForgetsToReturn()])
    # when
    with pytest.raises(UpcastingError) as raised:
        registry.upcast("Evolving", 1, {}, stream_id="e-9", version=3)
    # then
    assert str(raised.value) == (
        "upcasting 'Evolving' from schema version 2 in stream 'e-9' at version 3 with "
        "ForgetsToReturn failed: upcast() returned NoneType, not a mapping"
    )


def test_a_step_that_raises_names_the_upcaster_and_the_error() -> None:
    class Raises(EventUpcaster):
        event_type = "Evolving"
        source_version = 1

        def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
            raise KeyError("amount")

    with pytest.raises(UpcastingError) as raised:
        UpcasterRegistry([Raises()]).upcast("Evolving", 1, {})
    assert raised.value.upcaster == "Raises"
    assert str(raised.value) == (
        "upcasting 'Evolving' from schema version 1 with Raises failed: KeyError: 'amount'"
    )
