"""R7: hostile and malformed input at the append boundary, on SQLite and PostgreSQL at once.

Every input goes to both backends, and both must do the same with it: accept it
(and read back the same JSON values), or refuse it with the same typed error
naming the same field, before any SQL runs and with no row written. PostgreSQL's
jsonb refuses NUL, lone surrogates and NaN that SQLite's TEXT would store, so the
shared validation in the core must catch them first. Event type names from the
database are never imported: they resolve through an ``EventTypeRegistry`` only,
and a tampered row raises a typed error naming its stream, version and type.

Decisions and limits, as found: a 5 MiB payload is accepted by both backends (the
store has no size limit); a payload that cannot even be serialised (nesting 10,000
deep, bytes that are not UTF-8) is refused with field ``$`` (the serialiser's error
names no field). The worker RSS check of RELIABILITY.md is left out (no worker
reads these events yet), and so is the broker-subject check (no broker is involved).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scenario_support import Appended
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core import (
    CqrsDddError,
    DomainEvent,
    EventDeserializationError,
    EventSerializationError,
    EventTypeRegistry,
    UnknownEventTypeError,
    ValidationError,
)
from cqrs_ddd_core.exceptions import EventSchemaVersionError
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.serialization import encode_event, stream_id_issue
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    create_engine,
    read_only,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy.schema import events as events_table
from cqrs_ddd_testing import PostgresDatabase


class Hostile(DomainEvent):
    """An event whose payload is anything at all."""

    data: Any = None


class Unregistered(DomainEvent):
    """A real event class that no registry knows."""

    note: str = ""


@functools.cache
def event_class_named(event_type: str) -> type[Hostile]:
    """Return a `Hostile` subclass stored under ``event_type`` (one class per name)."""
    return type("Named", (Hostile,), {"event_type": event_type, "__module__": __name__})


HOSTILE_STREAM_IDS = [
    "x'; DROP TABLE cqrs_events;--",
    "orders.*",
    "orders.>",
    "orders.1",
    "a b",
    "x" * 1_000,
    "x" * 256,
    "",
    "\x00",
    "s\ud800",
    "ünïcode",
    "-leading-dash",
    "tab\there",
    "new\nline",
]

HOSTILE_TYPE_NAMES = [
    "os:system",
    "builtins:eval",
    "__import__",
    "this:s",
    "subprocess:Popen",
    "importlib:import_module",
    f"{Unregistered.__module__}:{Unregistered.__qualname__}",
    Unregistered.__qualname__,
    "cqrs_ddd_core.domain.events:DomainEvent",
]

HOSTILE_STRINGS = [
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "\u2028",
    "\ufeff",
    "'; DROP TABLE cqrs_events;--",
    "${jndi:ldap://x}",
    "\\u0000",
    "😀",
]


# ---------------------------------------------------------------- both backends


@dataclass
class Backend:
    """One database with its store, counting the SQL statements it runs."""

    name: str
    engine: AsyncEngine
    store: SQLAlchemyEventStore
    statements: int = 0

    async def row_count(self) -> int:
        async with read_only(self.engine).connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(events_table)) or 0)

    async def tamper(self, stream_id: str, version: int, column: str, value: object) -> None:
        """Overwrite one column of a stored row with raw SQL, as an attacker with DB access."""
        if column in {"payload", "metadata"} and self.name == "postgresql":
            assignment = f"{column} = CAST(:value AS jsonb)"
        else:
            assignment = f"{column} = :value"
        statement = f"UPDATE cqrs_events SET {assignment} WHERE stream_id = :s AND version = :v"  # noqa: S608 - fixed column names
        async with self.engine.begin() as connection:
            result = await connection.execute(
                text(statement), {"value": value, "s": stream_id, "v": version}
            )
        assert result.rowcount == 1


@pytest.fixture
async def backends(
    tmp_path: Path, postgres_database: PostgresDatabase
) -> AsyncIterator[list[Backend]]:
    """A fresh SQLite file and a fresh PostgreSQL database, both migrated."""
    engines = {
        "sqlite": create_engine(f"sqlite+aiosqlite:///{tmp_path / 'events.sqlite'}"),
        "postgresql": create_engine(postgres_database.sqlalchemy_url),
    }
    made = []
    for name, engine in engines.items():
        await upgrade_schema(engine)
        backend = Backend(name, engine, SQLAlchemyEventStore(engine))

        def count(*_: object, backend: Backend = backend) -> None:
            backend.statements += 1

        sqlalchemy_event.listen(engine.sync_engine, "before_cursor_execute", count)
        made.append(backend)
    yield made
    for engine in engines.values():
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a backend did with an append, in terms comparable across backends."""

    accepted: bool
    error: str | None = None
    fields: tuple[str, ...] = ()
    rows_written: int = 0
    statements_before_refusal: int = 0
    stored: tuple[StoredEvent, ...] = field(default=(), compare=False)

    @property
    def verdict(self) -> tuple[bool, str | None, tuple[str, ...]]:
        """Return accepted or not, the error class and the fields it names."""
        return self.accepted, self.error, self.fields


def accepted() -> Outcome:
    return Outcome(accepted=True)


def refused(error: type[CqrsDddError], *fields: str) -> Outcome:
    return Outcome(accepted=False, error=error.__name__, fields=fields)


async def attempt(backend: Backend, stream_id: str, events: list[DomainEvent]) -> Outcome:
    """Append ``events`` at the stream's current version; describe what happened."""
    version = (
        len(await backend.store.load_stream(stream_id)) if not stream_id_issue(stream_id) else 0
    )
    rows_before = await backend.row_count()
    statements_before = backend.statements
    try:
        stored = await backend.store.append(stream_id, events, expected_version=version)
    except ValidationError as error:
        outcome = Outcome(False, "ValidationError", error.fields)
    except EventSerializationError as error:
        outcome = Outcome(False, "EventSerializationError", (error.field,))
    except CqrsDddError as error:
        outcome = Outcome(False, type(error).__name__)
    except Exception as error:  # noqa: BLE001 - a raw error is itself a finding
        outcome = Outcome(False, f"raw {type(error).__module__}.{type(error).__qualname__}")
    else:
        rows_written = await backend.row_count() - rows_before
        return Outcome(True, rows_written=rows_written, stored=tuple(stored))
    statements = backend.statements - statements_before
    return Outcome(
        outcome.accepted,
        outcome.error,
        outcome.fields,
        rows_written=await backend.row_count() - rows_before,
        statements_before_refusal=statements,
    )


async def outcomes_on_both(
    backends: list[Backend], stream_id: str, events: list[DomainEvent]
) -> dict[str, Outcome]:
    return {backend.name: await attempt(backend, stream_id, events) for backend in backends}


def json_equivalent(left: object, right: object) -> bool:
    """Tell whether two JSON values are equal as JSON numbers, strings, arrays and objects.

    JSON does not tell 1e16 from 10000000000000000; jsonb normalises numbers (see
    the xfail test on number types below), so numbers compare by value here.
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        if isinstance(left, float) or isinstance(right, float):
            return float(left) == float(right)
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            json_equivalent(left[key], right[key]) for key in left
        )
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            json_equivalent(a, b) for a, b in zip(left, right, strict=True)
        )
    return type(left) is type(right) and left == right


def assert_same_outcome(
    outcomes: dict[str, Outcome], events: list[DomainEvent], context: str
) -> None:
    """Both backends did the same; refusals wrote nothing and ran no SQL."""
    sqlite, postgresql = outcomes["sqlite"], outcomes["postgresql"]
    assert sqlite == postgresql, f"{context}: sqlite {sqlite} != postgresql {postgresql}"
    if not sqlite.accepted:
        assert sqlite.rows_written == postgresql.rows_written == 0, context
        assert sqlite.statements_before_refusal == 0, f"{context}: refused after SQL ran"
        return
    assert sqlite.rows_written == len(events), context
    for outcome in outcomes.values():
        for sent, stored in zip(events, outcome.stored, strict=True):
            # what was sent, not its serialised form: the store must give back the values
            assert json_equivalent(stored.payload, {"data": getattr(sent, "data", None)}), context
            assert json_equivalent(stored.metadata, sent.metadata), context
            assert stored.event_type == sent.event_type, context
            assert stored.correlation_id == sent.correlation_id, context


# ---------------------------------------------------------------- generated input

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(HOSTILE_STRINGS)
)
json_keys = st.text(max_size=8) | st.sampled_from(HOSTILE_STRINGS)
# A lone surrogate in a metadata key is silently rewritten (see the xfail test below),
# so metadata keys leave it out to let the generated run find other divergences.
metadata_keys = st.text(max_size=8) | st.sampled_from(
    [text for text in HOSTILE_STRINGS if not any("\ud800" <= c <= "\udfff" for c in text)]
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=4)
    ),
    max_leaves=20,
)
short_texts = st.none() | st.text(max_size=40) | st.sampled_from(HOSTILE_STRINGS)
valid_stream_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-:@]{0,40}", fullmatch=True)
invalid_stream_ids = st.sampled_from(HOSTILE_STREAM_IDS) | st.text(max_size=300)
stream_ids = st.integers(min_value=1, max_value=10).flatmap(  # 7 in 10 valid, for the payloads
    lambda draw: valid_stream_ids if draw <= 7 else invalid_stream_ids
)
type_names = st.sampled_from(HOSTILE_TYPE_NAMES) | st.text(max_size=40)


@st.composite
def hostile_events(draw: st.DrawFn) -> DomainEvent:
    event_class = event_class_named(draw(type_names))
    return event_class(
        data=draw(json_values),
        metadata=draw(st.dictionaries(metadata_keys, json_values, max_size=3)),
        correlation_id=draw(short_texts),
        causation_id=draw(short_texts),
        aggregate_type=draw(short_texts),
    )


async def check_generated_append(
    backends: list[Backend], stream_id: str, events: list[DomainEvent]
) -> None:
    outcomes = await outcomes_on_both(backends, stream_id, events)
    verdict = outcomes["sqlite"].verdict
    event("accepted" if verdict[0] else f"refused: {verdict[1]} {verdict[2][:1]}")
    assert_same_outcome(outcomes, events, f"stream {stream_id!r}, events {events!r}")


GENERATED = settings(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(GENERATED, max_examples=200)
@given(stream_id=stream_ids, events=st.lists(hostile_events(), max_size=3))
async def test_generated_hostile_appends_get_the_same_outcome_on_sqlite_and_postgresql(
    backends: list[Backend], stream_id: str, events: list[DomainEvent]
) -> None:
    await check_generated_append(backends, stream_id, events)


@pytest.mark.soak
@settings(GENERATED, max_examples=1_000)
@given(stream_id=stream_ids, events=st.lists(hostile_events(), max_size=3))
async def test_generated_hostile_appends_get_the_same_outcome_on_both_backends_soak(
    backends: list[Backend], stream_id: str, events: list[DomainEvent]
) -> None:
    await check_generated_append(backends, stream_id, events)


# ---------------------------------------------------------------- the fixed corpus


def nested(depth: int) -> object:
    value: object = "bottom"
    for _ in range(depth):
        value = [value]
    return value


class WithBytes(DomainEvent):
    raw: bytes


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    stream_id: str
    build: Callable[[], list[DomainEvent]]
    expected: Outcome


def hostile(data: object = None, **envelope: Any) -> Callable[[], list[DomainEvent]]:
    return lambda: [Hostile(data=data, **envelope)]


def named(event_type: str) -> Callable[[], list[DomainEvent]]:
    return lambda: [event_class_named(event_type)()]


CORPUS = [
    Case("NUL in a string", "s-1", hostile("a\x00b"), refused(EventSerializationError, "data")),
    Case("NUL in a key", "s-1", hostile({"k\x00": 1}), refused(EventSerializationError, "data")),
    Case("lone surrogate", "s-1", hostile("\ud800"), refused(EventSerializationError, "data")),
    Case("NaN", "s-1", hostile(float("nan")), refused(EventSerializationError, "data")),
    Case("Infinity", "s-1", hostile(float("inf")), refused(EventSerializationError, "data")),
    Case("-Infinity", "s-1", hostile([-math.inf]), refused(EventSerializationError, "data[0]")),
    Case(
        "NaN in metadata",
        "s-1",
        hostile(1, metadata={"x": math.nan}),
        refused(EventSerializationError, "metadata.x"),
    ),
    Case(
        "surrogate in a correlation id",
        "s-1",
        hostile(1, correlation_id="\udfff"),
        refused(EventSerializationError, "correlation_id"),
    ),
    Case(
        "nesting 10,000 deep", "s-1", hostile(nested(10_000)), refused(EventSerializationError, "$")
    ),
    Case(
        "bytes that are not UTF-8",
        "s-1",
        lambda: [WithBytes(raw=b"\xff\xfe\x00")],
        refused(EventSerializationError, "$"),
    ),
    Case("a 5 MiB payload", "s-1", hostile("x" * (5 * 1024 * 1024)), accepted()),
    Case("a 255-character stream id", "s" * 255, hostile(1), accepted()),
    *(
        Case(
            f"stream id {stream_id[:30]!r}",
            stream_id,
            hostile(1),
            refused(ValidationError, "stream_id"),
        )
        for stream_id in HOSTILE_STREAM_IDS
    ),
    *(Case(f"event type {name!r}", "s-1", named(name), accepted()) for name in HOSTILE_TYPE_NAMES),
]


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
async def test_the_hostile_corpus_gets_the_same_outcome_on_sqlite_and_postgresql(
    backends: list[Backend], case: Case
) -> None:
    # given
    events = case.build()
    # when
    outcomes = await outcomes_on_both(backends, case.stream_id, events)
    # then
    assert_same_outcome(outcomes, events, case.name)
    assert outcomes["sqlite"].verdict == case.expected.verdict


# ---------------------------------------------------------------- reading hostile names back


async def test_hostile_event_type_names_are_never_imported_only_refused_by_the_registry(
    backends: list[Backend],
) -> None:
    # given: events stored under type names that look like code paths
    registry = EventTypeRegistry([Appended])
    for number, name in enumerate(HOSTILE_TYPE_NAMES):
        for backend in backends:
            await backend.store.append(
                f"s-{number}", [event_class_named(name)(data=number)], expected_version=0
            )
    for backend in backends:
        rows = await backend.store.read_all()
        assert [row.event_type for row in rows] == HOSTILE_TYPE_NAMES
        # when: a reader turns them back into events
        modules_before = set(sys.modules)
        errors = []
        for row in rows:
            with pytest.raises(UnknownEventTypeError) as unknown:
                registry.from_stored(row)
            errors.append(unknown.value)
        document = encode_event(Appended(writer="w", number=0)) | {"event_type": "os:system"}
        with pytest.raises(UnknownEventTypeError):
            registry.deserialize(document)
        # then: each is refused naming type, stream and version, and nothing was imported
        assert set(sys.modules) == modules_before, set(sys.modules) - modules_before
        assert "this" not in sys.modules
        for row, error in zip(rows, errors, strict=True):
            assert (error.event_type, error.stream_id, error.version) == (
                row.event_type,
                row.stream_id,
                row.version,
            )


TAMPERING = [
    ("payload", '{"writer": 7}', EventDeserializationError),
    ("payload", "[1, 2, 3]", EventDeserializationError),
    ("payload", '{"writer": "w", "number": 1, "event_id": "x"}', EventDeserializationError),
    ("metadata", '"not an object"', EventDeserializationError),
    ("event_type", "os:system", UnknownEventTypeError),
    ("event_type", "Unregistered", UnknownEventTypeError),
    ("schema_version", 99, EventSchemaVersionError),
]


@pytest.mark.parametrize(
    ("column", "value", "error"),
    TAMPERING,
    ids=[f"{column}={value}" for column, value, _ in TAMPERING],
)
async def test_a_tampered_row_raises_a_typed_error_naming_stream_version_and_type(
    backends: list[Backend], column: str, value: object, error: type[CqrsDddError]
) -> None:
    registry = EventTypeRegistry([Appended])
    for backend in backends:
        # given: a stored event whose row was then edited in the database
        events = [Appended(writer="w", number=n) for n in range(3)]
        await backend.store.append("s-1", events, expected_version=0)
        await backend.tamper("s-1", 2, column, value)
        rows = await backend.store.load_stream("s-1")
        modules_before = set(sys.modules)
        # when
        with pytest.raises(error) as raised:
            [registry.from_stored(row) for row in rows]
        # then: the error names where the bad row is, and nothing was imported
        assert set(sys.modules) == modules_before, backend.name
        found = raised.value
        assert (getattr(found, "stream_id", None), getattr(found, "version", None)) == ("s-1", 2)
        assert getattr(found, "event_type", None) == rows[1].event_type, backend.name
        # and the untouched rows still read
        assert registry.from_stored(rows[0]) == events[0].model_copy(
            update={"aggregate_id": "s-1", "version": 1}
        )


async def test_a_row_whose_payload_text_is_not_json_fails_only_its_own_event(
    tmp_path: Path,
) -> None:
    # given: SQLite's TEXT column, edited to hold text that is not JSON
    # (PostgreSQL's json column refuses such an edit in the first place)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'events.sqlite'}")
    try:
        await upgrade_schema(engine)
        store = SQLAlchemyEventStore(engine)
        events = [Appended(writer="w", number=n) for n in range(3)]
        await store.append("s-1", events, expected_version=0)
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE cqrs_events SET payload = '{broken' WHERE version = 2")
            )
        registry = EventTypeRegistry([Appended])
        # when: the stream and the global log are read
        rows = await store.load_stream("s-1")
        page = await store.read_all()
        # then: every row reads, and only the damaged one fails to decode, typed
        assert [row.version for row in rows] == [row.version for row in page] == [1, 2, 3]
        with pytest.raises(EventDeserializationError, match="not valid JSON") as raised:
            registry.from_stored(rows[1])
        assert (raised.value.stream_id, raised.value.version) == ("s-1", 2)
        assert [registry.from_stored(row).version for row in (rows[0], rows[2])] == [1, 3]
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- found divergences


@pytest.mark.parametrize(
    "envelope_field", ["event_type", "aggregate_type", "correlation_id", "causation_id"]
)
async def test_an_overlong_envelope_string_is_refused_alike_before_any_sql(
    backends: list[Backend], envelope_field: str
) -> None:
    # given
    long_text = "t" * 300
    if envelope_field == "event_type":
        events: list[DomainEvent] = [event_class_named(long_text)(data=1)]
    else:
        events = [Hostile.model_validate({"data": 1, envelope_field: long_text})]
    # when
    outcomes = await outcomes_on_both(backends, "s-1", events)
    # then
    assert_same_outcome(outcomes, events, envelope_field)
    assert not outcomes["sqlite"].accepted


@pytest.mark.filterwarnings(
    "ignore::UserWarning"
)  # pydantic's serializer warning, as in production
async def test_metadata_that_is_not_an_object_is_refused_before_any_sql(
    backends: list[Backend],
) -> None:
    # given
    events: list[DomainEvent] = [
        Hostile(data=1).model_copy(update={"metadata": ["not", "an", "object"]})
    ]
    # when
    outcomes = await outcomes_on_both(backends, "s-1", events)
    # then
    assert_same_outcome(outcomes, events, "metadata list")
    assert outcomes["sqlite"].verdict == refused(ValidationError, "events[0].metadata").verdict


async def test_floats_in_untyped_json_read_back_as_the_same_floats_on_both_backends(
    backends: list[Backend],
) -> None:
    # given
    sent = {"integral": 1e16, "large": 1e23, "negative_zero": -0.0, "plain": 0.1}
    for backend in backends:
        # when
        await backend.store.append("s-1", [Hostile(data=1, metadata=sent)], expected_version=0)
        stored = (await backend.store.load_stream("s-1"))[0].metadata
        # then
        assert {key: (type(v), repr(v)) for key, v in stored.items()} == {
            key: (type(v), repr(v)) for key, v in sent.items()
        }, backend.name


async def test_a_lone_surrogate_in_a_metadata_key_is_refused_not_rewritten(
    backends: list[Backend],
) -> None:
    # given
    events: list[DomainEvent] = [Hostile(data=1, metadata={"\ud800": 1})]
    # when
    outcomes = await outcomes_on_both(backends, "s-1", events)
    # then
    assert_same_outcome(outcomes, events, "surrogate metadata key")
    assert outcomes["sqlite"].verdict == refused(EventSerializationError, "metadata").verdict
