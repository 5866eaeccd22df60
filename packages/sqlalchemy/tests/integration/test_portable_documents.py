"""The whole encode path: a portable JSON document is stored unchanged, anything else refused.

One property over every store that keeps documents: the in-memory event store,
SQLite and PostgreSQL, for events (through ``append``) and for state-stored
aggregates (through the repositories). A document that is portable JSON (string
keys at every depth, finite floats, text without NUL or lone surrogates,
integers of at most 4,300 digits, moderate nesting) reads back unchanged, type
for type; anything else is refused before any write, with the same typed error
naming the same field on every store. Values sit at the top of an event and
inside a nested pydantic model, where keys used to be turned into strings.

The oracle (:func:`portable`) is written here, apart from the framework's check.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core import (
    AggregateRoot,
    CqrsDddError,
    DomainEvent,
    EventSerializationError,
    InMemoryRepository,
    InMemoryUnitOfWork,
    ValidationError,
    command_scope,
)
from cqrs_ddd_core.ports.event_store import EventStore
from cqrs_ddd_core.ports.unit_of_work import UnitOfWork
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy.schema import aggregates, events
from cqrs_ddd_testing import PostgresDatabase

DIGIT_LIMIT = 10**4300


class Inner(BaseModel):
    """A nested model: its mapping's keys are checked as the top level's are."""

    mapping: dict[Any, Any] = {}


class Carried(DomainEvent):
    data: Any = None
    inner: Inner = Inner()


class Holder(AggregateRoot):
    data: Any = None
    inner: Inner = Inner()


# ---------------------------------------------------------------- the oracle


def portable_text(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def portable(value: Any, depth: int = 0) -> bool:
    """Return whether ``value`` is JSON that every store keeps as it is."""
    if depth > 40:  # far below the limit for what the strategies build, far above for "deep"
        return False
    if isinstance(value, list):
        return all(portable(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and portable_text(key) and portable(item, depth + 1)
            for key, item in value.items()
        )
    return portable_scalar(value)


def portable_scalar(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -DIGIT_LIMIT < value < DIGIT_LIMIT
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return portable_text(value)
    return value is None


def same(left: Any, right: Any) -> bool:
    """Equal as JSON values, type for type (1 is not 1.0; -0.0 is not 0.0)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return left == right and math.copysign(1, left) == math.copysign(1, right)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[key], right[key]) for key in left)
    return bool(left == right)


# ---------------------------------------------------------------- documents

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**63, -(2**63) - 1, DIGIT_LIMIT - 1, 1 - DIGIT_LIMIT])
    | st.floats()
    | st.sampled_from([-0.0, 1e16, 1e308, 5e-324])
    | st.text(max_size=10)
    | st.sampled_from(["a\x00b", "\ud800", "lone \udfff", "\u2028", "😀", ""])
)
keys = st.text(max_size=6) | st.sampled_from(["\ud800", "nul\x00"]) | st.integers(-2, 2)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=12,
)


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


deep = st.integers(min_value=70, max_value=90).map(_nested)


# ---------------------------------------------------------------- stores


@dataclass
class Store:
    """One backend's event store and repository, with a way to count what it wrote."""

    name: str
    events: EventStore
    holders: InMemoryRepository[Holder] | SQLAlchemyRepository[Holder]
    engine: AsyncEngine | None = None

    def unit_of_work(self) -> UnitOfWork:
        return InMemoryUnitOfWork() if self.engine is None else SQLAlchemyUnitOfWork(self.engine)

    async def rows(self) -> int:
        if self.engine is None:
            log = await self.events.read_all(limit=1_000_000)
            return len(log) + len(self.holders)  # type: ignore[arg-type]
        async with self.engine.connect() as connection:
            counts = [
                await connection.scalar(select(func.count()).select_from(table))
                for table in (events, aggregates)
            ]
        return sum(int(count or 0) for count in counts)


@pytest_asyncio.fixture
async def stores(tmp_path: Path, postgres_database: PostgresDatabase) -> AsyncIterator[list[Store]]:
    """The in-memory stores, then a fresh SQLite file and PostgreSQL database."""
    made = [Store("memory", InMemoryEventStore(), InMemoryRepository(Holder))]
    engines = {
        "sqlite": create_engine(f"sqlite+aiosqlite:///{tmp_path / 'documents.sqlite'}"),
        "postgresql": create_engine(postgres_database.sqlalchemy_url),
    }
    for name, engine in engines.items():
        await upgrade_schema(engine)
        made.append(
            Store(name, SQLAlchemyEventStore(engine), SQLAlchemyRepository(Holder, engine), engine)
        )
    yield made
    for engine in engines.values():
        await engine.dispose()


Outcome = tuple[str, tuple[str, ...]] | Any
_ids = itertools.count()


def refusal(error: CqrsDddError) -> tuple[str, tuple[str, ...]]:
    if isinstance(error, EventSerializationError):
        return ("EventSerializationError", (error.field,))
    if isinstance(error, ValidationError):
        return ("ValidationError", error.fields)
    return (type(error).__name__, ())


async def append_and_read(store: Store, stream_id: str, event: Carried) -> Outcome:
    rows = await store.rows()
    try:
        await store.events.append(stream_id, [event], expected_version=0)
    except CqrsDddError as error:
        assert await store.rows() == rows, f"{store.name} wrote before refusing"
        return refusal(error)
    [stored] = await store.events.load_stream(stream_id)
    return stored.payload


async def save_and_read(store: Store, holder: Holder) -> Outcome:
    rows = await store.rows()
    try:
        async with store.unit_of_work() as uow:
            with command_scope(uow):
                await store.holders.save(holder.model_copy(deep=True))
            await uow.commit()
    except CqrsDddError as error:
        assert await store.rows() == rows, f"{store.name} wrote before refusing"
        return refusal(error)
    found = await store.holders.get(holder.id)
    return {"data": found.data, "inner": found.inner.model_dump()}


def expect_everywhere(outcomes: dict[str, Outcome], document: Any, mapping: Any) -> None:
    expected_to_keep = portable(document) and portable(mapping)
    event("kept" if expected_to_keep else "refused")
    if expected_to_keep:
        for name, outcome in outcomes.items():
            assert same(outcome, {"data": document, "inner": {"mapping": mapping}}), name
        return
    verdicts = set(map(repr, outcomes.values()))
    assert len(verdicts) == 1, outcomes
    verdict = next(iter(outcomes.values()))
    assert isinstance(verdict, tuple), outcomes
    assert verdict[0] in {"EventSerializationError", "ValidationError"}, verdict


PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(document=documents | deep, mapping=st.dictionaries(keys, documents, max_size=3))
async def test_an_event_payload_round_trips_unchanged_or_is_refused_alike_everywhere(
    stores: list[Store], document: Any, mapping: Any
) -> None:
    # given
    stream_id = f"s-{next(_ids)}"
    event = Carried(data=document, inner=Inner(mapping=mapping))
    # when
    outcomes = {store.name: await append_and_read(store, stream_id, event) for store in stores}
    # then
    expect_everywhere(outcomes, document, mapping)


@PROPERTY
@given(document=documents | deep, mapping=st.dictionaries(keys, documents, max_size=3))
async def test_an_aggregate_state_round_trips_unchanged_or_is_refused_alike_everywhere(
    stores: list[Store], document: Any, mapping: Any
) -> None:
    # given
    holder = Holder(id=f"h-{next(_ids)}", data=document, inner=Inner(mapping=mapping))
    # when
    outcomes = {store.name: await save_and_read(store, holder) for store in stores}
    # then
    expect_everywhere(outcomes, document, mapping)


async def test_an_integer_past_4300_digits_is_refused_alike_everywhere(
    stores: list[Store],
) -> None:
    # given: an integer the json module can neither write nor read back
    event = Carried(data={"big": [DIGIT_LIMIT]})
    # when
    outcomes = {store.name: await append_and_read(store, "s-1", event) for store in stores}
    # then
    assert set(outcomes.values()) == {("EventSerializationError", ("data.big[0]",))}


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({1: "a"}, "inner.mapping"),
        ({1: "a", "1": "b"}, "inner.mapping"),
        ({"ok": {2: "nested deeper"}}, "inner.mapping.ok"),
    ],
    ids=["int-key", "colliding-keys", "deeper"],
)
async def test_a_key_that_is_not_a_string_inside_a_nested_model_is_refused_everywhere(
    stores: list[Store], mapping: dict[Any, Any], field: str
) -> None:
    # given: what used to be stored as {"1": "a"} (and {"1": "b"}, a value lost)
    event = Carried(inner=Inner(mapping=mapping))
    # when
    outcomes = {store.name: await append_and_read(store, "s-1", event) for store in stores}
    # then
    assert set(outcomes.values()) == {("EventSerializationError", (field,))}
