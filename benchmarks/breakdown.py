"""``--breakdown``: where the time of one command and one event goes, layer by layer.

For a one-event create, our append statement is timed on the bare driver
(``BEGIN``, the statement, ``COMMIT``; on SQLite also on ``sqlite3`` on the
loop's thread, which a design without hand-offs would reach), then through
the unit of work and the event store, then through the whole path
(mediator, unit of work, event store). Per event, the pure-Python steps are
timed alone: recording, preparing an append, decoding a stored row. The
differences between the lines are the cost of each layer.
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

from sqlalchemy.util import greenlet_spawn

from benchmarks.databases import fresh_postgres, fresh_sqlite
from benchmarks.ours import Account, AccountOpened, MoneyDeposited, OpenAccount, OurBank
from cqrs_ddd_advanced_core import (
    EventSourcedLoader,
    EventSourcedMediator,
    EventSourcedPersistenceOrchestrator,
    EventSourcedRepository,
)
from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core import (
    EventTypeRegistry,
    HandlerRegistry,
    InMemoryUnitOfWork,
    StoredEvent,
    command_scope,
)
from cqrs_ddd_core.serialization import encode_event, prepare_append
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.postgres_append import PostgresAppend
from cqrs_ddd_persistence_sqlalchemy.sqlite_append import SQLiteAppend

COMMANDS = 300
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


def _documents(stream_id: str) -> list[dict[str, Any]]:
    event = AccountOpened(owner="ada", currency="EUR")
    return prepare_append(stream_id, [event], expected_version=0)


async def _driver_append(bank: OurBank) -> tuple[Callable[[], Awaitable[None]], Any]:
    """Our append statement on a bare driver connection, in BEGIN ... COMMIT."""
    engine = bank.engine
    is_sqlite = engine.dialect.name == "sqlite"
    append = SQLiteAppend(engine.dialect) if is_sqlite else PostgresAppend(engine.dialect)
    begin = "BEGIN IMMEDIATE" if is_sqlite else "BEGIN"
    raw = await engine.raw_connection()
    driver = raw.driver_connection

    async def run() -> None:
        stream_id = str(uuid.uuid4())
        documents = _documents(stream_id)
        await driver.execute(begin)
        await append.insert(driver, stream_id, documents, 0)
        await driver.execute("COMMIT")

    async def close() -> None:
        await greenlet_spawn(raw.close)

    return run, close


def _sqlite3_driver(path: str) -> tuple[Callable[[], Awaitable[None]], Any]:
    """The same statements on ``sqlite3`` on the loop's thread: no hand-off at all."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = FULL")
    statement = (
        "INSERT INTO cqrs_events (stream_id, version, event_id, event_type, schema_version, "
        "aggregate_type, occurred_at, correlation_id, causation_id, payload, metadata) "
        "SELECT ?, 1, ?, 'AccountOpened', 1, 'Account', ?, 'c', 'd', ?, '{}' "
        "WHERE (SELECT coalesce(max(version), 0) FROM cqrs_events WHERE stream_id = ?) = 0 "
        "ON CONFLICT DO NOTHING RETURNING position"
    )

    async def append() -> None:
        stream_id = str(uuid.uuid4())
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(statement, (stream_id, uuid.uuid4().hex, now, PAYLOAD, stream_id))
        connection.execute("COMMIT")

    async def close() -> None:
        connection.close()

    return append, close


async def _unit_of_work_and_store(bank: OurBank) -> None:
    async with SQLAlchemyUnitOfWork(bank.engine) as uow:
        with command_scope(uow):
            event = AccountOpened(owner="ada", currency="EUR")
            await bank.event_store.append(str(uuid.uuid4()), [event], expected_version=0)
            await uow.commit()


async def _unit_of_work_and_held_append(bank: OurBank) -> None:
    """The repository's way: ``append_at_commit`` (on PostgreSQL, sent with the commit)."""
    async with SQLAlchemyUnitOfWork(bank.engine) as uow:
        with command_scope(uow):
            event = AccountOpened(owner="ada", currency="EUR")
            await bank.event_store.append_at_commit(str(uuid.uuid4()), [event], expected_version=0)
            await uow.commit()


async def _driver_append_alone(bank: OurBank) -> tuple[Callable[[], Awaitable[None]], Any]:
    """Our append statement alone on a bare asyncpg connection: its own implicit transaction."""
    append = PostgresAppend(bank.engine.dialect)
    raw = await bank.engine.raw_connection()
    driver = raw.driver_connection

    async def run() -> None:
        stream_id = str(uuid.uuid4())
        await append.insert_alone(driver, stream_id, _documents(stream_id), 0)

    async def close() -> None:
        await greenlet_spawn(raw.close)

    return run, close


async def _command_layers(bank: OurBank, backend: str, where: str) -> None:
    print(f"\n{backend}: one command creating an aggregate with one event")
    if backend == "sqlite":
        driver, close = _sqlite3_driver(where)
        _line("bare sqlite3 on the loop's thread, our append statement", await _per_call(driver))
        await close()
    run, close = await _driver_append(bank)
    name = "aiosqlite" if backend == "sqlite" else "asyncpg"
    _line(f"bare {name}: BEGIN, our append statement, COMMIT", await _per_call(run))
    await close()
    if backend == "postgres":
        run, close = await _driver_append_alone(bank)
        _line("bare asyncpg: our append statement alone (no BEGIN/COMMIT)", await _per_call(run))
        await close()
    _line(
        "unit of work + event store append (sent at once)",
        await _per_call(lambda: _unit_of_work_and_store(bank)),
    )
    _line(
        "unit of work + append_at_commit (the repository's way)",
        await _per_call(lambda: _unit_of_work_and_held_append(bank)),
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
