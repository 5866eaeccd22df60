"""``--breakdown``: where the time of one command and one event goes, layer by layer.

For a one-event create, the same four statements our event store issues
(begin, read the stream's version, insert returning the position, commit) are
timed on the bare driver, then through SQLAlchemy Core, then through the whole
path (mediator, unit of work, event store). Per event, the pure-Python steps
are timed alone: recording, preparing an append, decoding a stored row.
The differences between the lines are the cost of each layer.
"""

from __future__ import annotations

import json
import sqlite3
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from benchmarks.databases import fresh_postgres, fresh_sqlite
from benchmarks.ours import Account, AccountOpened, MoneyDeposited, OpenAccount, OurBank
from cqrs_ddd_advanced_core import (
    EventSourcedLoader,
    EventSourcedMediator,
    EventSourcedPersistenceOrchestrator,
    EventSourcedRepository,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core import EventTypeRegistry, HandlerRegistry, InMemoryUnitOfWork, StoredEvent
from cqrs_ddd_core.serialization import encode_event, prepare_append
from cqrs_ddd_persistence_sqlalchemy.event_store import APPEND_LOCK_KEY
from cqrs_ddd_persistence_sqlalchemy.schema import events

COMMANDS = 300
INSERT = (
    "INSERT INTO cqrs_events (stream_id, version, event_id, event_type, schema_version, "
    "aggregate_type, occurred_at, correlation_id, causation_id, payload, metadata) "
    "VALUES ({}) ON CONFLICT DO NOTHING RETURNING position"
)
PAYLOAD = json.dumps({"owner": "ada", "currency": "EUR"})


def _line(label: str, microseconds: float) -> None:
    print(f"  {label:62s} {microseconds:9.1f} µs")


async def _per_call(function: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(30):
        await function()
    started = time.perf_counter()
    for _ in range(COMMANDS):
        await function()
    return (time.perf_counter() - started) / COMMANDS * 1e6


def _row(stream_id: str) -> dict[str, Any]:
    return {
        "stream_id": stream_id,
        "version": 1,
        "event_id": uuid.uuid4(),
        "event_type": "AccountOpened",
        "schema_version": 1,
        "aggregate_type": "Account",
        "occurred_at": datetime.now(UTC),
        "correlation_id": "c",
        "causation_id": "d",
        "payload": {"owner": "ada", "currency": "EUR"},
        "metadata": {},
    }


def _core_append(bank: OurBank, is_postgresql: bool) -> Callable[[], Awaitable[None]]:
    dialect: Any = postgresql if is_postgresql else sqlite
    insert = dialect.insert(events).on_conflict_do_nothing().returning(events.c.position)

    async def append() -> None:
        stream_id = str(uuid.uuid4())
        latest = select(func.max(events.c.version)).where(events.c.stream_id == stream_id)
        if is_postgresql:
            latest = select(func.pg_advisory_xact_lock(APPEND_LOCK_KEY), latest.scalar_subquery())
        async with bank.engine.connect() as connection:
            await connection.begin()
            await connection.execute(latest)
            (await connection.execute(insert, [_row(stream_id)])).all()
            await connection.commit()

    return append


async def _sqlite_driver(path: str) -> tuple[Callable[[], Awaitable[None]], Any]:
    connection = await aiosqlite.connect(path, isolation_level=None)

    async def append() -> None:
        stream_id = str(uuid.uuid4())
        await connection.execute("BEGIN IMMEDIATE")
        query = "SELECT max(version) FROM cqrs_events WHERE stream_id = ?"
        async with connection.execute(query, (stream_id,)) as cursor:
            await cursor.fetchall()
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
        values = (stream_id, 1, uuid.uuid4().hex, "AccountOpened", 1, "Account", now)
        async with connection.execute(
            INSERT.format(", ".join("?" * 11)), (*values, "c", "d", PAYLOAD, "{}")
        ) as cursor:
            await cursor.fetchall()
        await connection.execute("COMMIT")

    return append, connection.close


def _sqlite3_driver(path: str) -> tuple[Callable[[], Awaitable[None]], Any]:
    connection = sqlite3.connect(path, isolation_level=None)

    async def append() -> None:
        stream_id = str(uuid.uuid4())
        connection.execute("BEGIN IMMEDIATE")
        query = "SELECT max(version) FROM cqrs_events WHERE stream_id = ?"
        connection.execute(query, (stream_id,)).fetchall()
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
        values = (stream_id, 1, uuid.uuid4().hex, "AccountOpened", 1, "Account", now)
        connection.execute(
            INSERT.format(", ".join("?" * 11)), (*values, "c", "d", PAYLOAD, "{}")
        ).fetchall()
        connection.execute("COMMIT")

    async def close() -> None:
        connection.close()

    return append, close


async def _postgres_driver(dsn: str) -> tuple[Callable[[], Awaitable[None]], Any]:
    connection = await asyncpg.connect(dsn)
    statement = INSERT.format(", ".join(f"${number}" for number in range(1, 12)))
    latest = (
        "SELECT pg_advisory_xact_lock($1), "
        "(SELECT max(version) FROM cqrs_events WHERE stream_id = $2)"
    )

    async def append() -> None:
        stream_id = str(uuid.uuid4())
        async with connection.transaction():
            await connection.fetch(latest, APPEND_LOCK_KEY, stream_id)
            values = (stream_id, 1, uuid.uuid4(), "AccountOpened", 1, "Account")
            await connection.fetch(statement, *values, datetime.now(UTC), "c", "d", PAYLOAD, "{}")

    return append, connection.close


async def _command_layers(bank: OurBank, backend: str, where: str) -> None:
    print(f"\n{backend}: one command creating an aggregate with one event")
    if backend == "sqlite":
        driver, close = _sqlite3_driver(where)
        _line("bare sqlite3 on the loop's thread, our 4 statements", await _per_call(driver))
        await close()
        driver, close = await _sqlite_driver(where)
    else:
        driver, close = await _postgres_driver(where)
    _line(
        f"bare {'aiosqlite' if backend == 'sqlite' else 'asyncpg'}, our 4 statements",
        await _per_call(driver),
    )
    await close()
    _line(
        "SQLAlchemy Core, our 4 statements",
        await _per_call(_core_append(bank, backend != "sqlite")),
    )
    _line("whole path: mediator + unit of work + event store", await _per_call(bank.open_account))


def _event_steps() -> None:
    print("\nper event, pure Python (no I/O)")
    account = Account.open("ada", "EUR")
    number = 20_000
    seconds = timeit.timeit(lambda: account.deposit(1, "salary"), number=number)
    _line(
        "record: MoneyDeposited(...) + trigger_event (stamp, apply, record)", seconds / number * 1e6
    )
    event = account.collect_events()[-1]
    for label, step in (
        ("encode_event (model_dump + JSON safety walk)", lambda: encode_event(event)),
        ("  of which model_dump(mode='json')", lambda: event.model_dump(mode="json")),
        (
            "prepare_append, one event",
            lambda: prepare_append(
                event.aggregate_id or "", [event], expected_version=(event.version or 1) - 1
            ),
        ),
    ):
        _line(label, timeit.timeit(step, number=number) / number * 1e6)
    stored = StoredEvent(
        position=1,
        stream_id="s",
        version=2,
        event_type="MoneyDeposited",
        schema_version=1,
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        payload={"amount": 1, "currency": "EUR", "note": "salary"},
        aggregate_type="Account",
    )
    registry = EventTypeRegistry([MoneyDeposited])
    _line(
        "decode: EventTypeRegistry.from_stored",
        timeit.timeit(lambda: registry.from_stored(stored), number=number) / number * 1e6,
    )


async def _in_memory() -> None:
    print("\nin memory: the same command with no database")
    store = InMemoryEventStore()
    registry = HandlerRegistry()
    accounts = EventSourcedRepository(
        EventSourcedLoader(Account, store, EventTypeRegistry([AccountOpened, MoneyDeposited]))
    )

    async def open_account(command: OpenAccount) -> None:
        await accounts.save(Account.open(command.owner, "EUR"))

    registry.register_command_handler(OpenAccount, open_account)
    mediator = EventSourcedMediator(
        registry=registry,
        uow_factory=InMemoryUnitOfWork,
        event_persistence_orchestrator=EventSourcedPersistenceOrchestrator(
            default_event_store=store
        ),
    )
    _line(
        "mediator + in-memory unit of work + in-memory event store",
        await _per_call(lambda: mediator.send(OpenAccount(owner="ada"))),
    )


async def breakdown() -> None:
    """Print the layer-by-layer costs on SQLite and PostgreSQL."""
    _event_steps()
    await _in_memory()
    async with fresh_sqlite() as target:
        bank = await OurBank.build(target.sqlalchemy_url)
        await _command_layers(bank, "sqlite", str(target.path))
        await bank.close()
    async with fresh_postgres() as target:
        bank = await OurBank.build(target.sqlalchemy_url)
        await _command_layers(bank, "postgres", target.dsn)
        await bank.close()
