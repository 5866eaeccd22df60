"""The unit of work runs its transaction on the driver: what a user relies on.

The unit of work sends BEGIN (on SQLite BEGIN IMMEDIATE) and COMMIT on the
asyncpg or aiosqlite connection, and SQLAlchemy's statements run inside that
transaction, so the event store can append straight on the driver. Whatever
is written through SQLAlchemy on the same unit of work must still be in the
one transaction, a failed statement must never be committed around, and no
pooled connection may be handed out again in the middle of a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import threading
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import String, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cqrs_ddd_core import ConcurrencyError, DomainEvent, command_scope
from cqrs_ddd_persistence_sqlalchemy import (
    LockTimeoutError,
    PersistenceError,
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy.schema import events
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import ambient_unit_of_work

pytest_plugins = ["sqlalchemy_fixtures"]

on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class Noted(DomainEvent):
    text: str


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "driver_notes"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)


async def notes_table(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)


async def count_notes(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(Note)) or 0)


async def count_events(engine: AsyncEngine, stream_id: str | None = None) -> int:
    query = select(func.count()).select_from(events)
    if stream_id is not None:
        query = query.where(events.c.stream_id == stream_id)
    async with engine.connect() as connection:
        return int(await connection.scalar(query) or 0)


@pytest.mark.parametrize("commit", [False, True])
async def test_sqlalchemy_writes_and_driver_appends_are_one_transaction(
    engine: AsyncEngine, commit: bool
) -> None:
    # given: a table written through SQLAlchemy beside the event store
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (id text PRIMARY KEY)"))
    store = SQLAlchemyEventStore(engine)

    # when: a unit of work writes both, then commits or rolls back
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await uow.connection.execute(text("INSERT INTO notes VALUES ('n-1')"))
            await store.append("s-1", [Noted(text="a")], expected_version=0)
            await (uow.commit() if commit else uow.rollback())

    # then: both are there, or neither
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM notes")) == int(commit)
    assert await count_events(engine) == int(commit)


@on_postgresql
async def test_a_commit_after_a_failed_statement_is_an_error_and_commits_nothing(
    engine: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(engine)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await store.append("s-1", [Noted(text="a")], expected_version=0)
            # a statement fails and the caller swallows its error
            with pytest.raises(Exception, match="division by zero"):
                await uow.connection.execute(text("SELECT 1 / 0"))
            with pytest.raises(PersistenceError, match="rolled back, not committed"):
                await uow.commit()
    assert await count_events(engine) == 0


async def test_writes_after_the_commit_are_not_committed_on_their_own(
    engine: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(engine)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await store.append("s-1", [Noted(text="a")], expected_version=0)
            await uow.commit()
            # a late write on the same unit of work: SQLAlchemy's own transaction,
            # rolled back when the unit of work closes
            await uow.connection.execute(
                text(
                    "INSERT INTO cqrs_events (stream_id, version, event_id, event_type, "
                    "schema_version, occurred_at, payload, metadata) VALUES ('late', 1, "
                    "'0c4f2b3a9d8e4f1a8b7c6d5e4f3a2b1c', 'Noted', 1, '2026-01-01 00:00:00', "
                    "'{}', '{}')"
                )
            )
    assert await count_events(engine, "s-1") == 1
    assert await count_events(engine, "late") == 0


@on_postgresql
async def test_the_engine_isolation_level_is_the_transaction_s(database_url: str) -> None:
    engine = create_engine(database_url, isolation_level="SERIALIZABLE")
    try:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            level = await uow.connection.scalar(text("SHOW transaction_isolation"))
            await uow.commit()
            assert level == "serializable"
        async with engine.connect() as connection:  # and the pool gives it back as it was
            assert await connection.scalar(text("SHOW transaction_isolation")) == "serializable"
    finally:
        await engine.dispose()


@on_postgresql
async def test_a_thousand_events_go_in_as_one_statement_in_version_order(
    engine: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(engine)
    statements: list[str] = []

    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            driver = uow.driver_connection
            assert driver is not None
            driver.add_query_logger(lambda record: statements.append(record.query))
            stored = await store.append(
                "s-1", [Noted(text=str(n)) for n in range(1000)], expected_version=0
            )
            await uow.commit()

    appends = [query for query in statements if "INSERT INTO cqrs_events" in query]
    assert len(appends) == 1
    assert [event.version for event in stored] == list(range(1, 1001))
    positions = [event.position for event in stored]
    assert positions == sorted(positions)
    assert len(set(positions)) == 1000
    assert len(await store.load_stream("s-1")) == 1000


@on_postgresql
async def test_no_pooled_connection_is_left_inside_a_transaction_after_cancellations(
    engine: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(engine)

    async def command(number: int) -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                assert ambient_unit_of_work(engine) is uow
                await store.append(f"s-{number}", [Noted(text="a")], expected_version=0)
                await asyncio.sleep(0.01)
                await uow.commit()

    for number in range(20):
        task = asyncio.ensure_future(command(number))
        await asyncio.sleep(0.001 * (number % 7))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async with engine.connect() as connection:
        stuck = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%'"
            )
        )
    assert stuck == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_long_batch_on_sqlite_goes_in_whole_in_version_and_position_order(
    engine: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(engine)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            stored = await store.append(
                "s-1", [Noted(text=str(n)) for n in range(1200)], expected_version=0
            )
            await uow.commit()
    assert [event.version for event in stored] == list(range(1, 1201))
    positions = [event.position for event in stored]
    assert positions == sorted(positions)
    assert [event.event_id for event in await store.load_stream("s-1")] == [
        event.event_id for event in stored
    ]
    # a stale writer is refused and writes nothing
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow), pytest.raises(ConcurrencyError):
            await store.append("s-1", [Noted(text="late")], expected_version=600)
    assert await count_events(engine, "s-1") == 1200


async def test_an_orm_session_recovering_from_a_failed_flush_keeps_the_command_s_appends(
    engine: AsyncEngine,
) -> None:
    # given: a note that is already taken
    await notes_table(engine)
    async with engine.begin() as connection:
        await connection.execute(Note.__table__.insert().values(id="taken"))
    store = SQLAlchemyEventStore(engine)

    # when: the command appends, its session's flush fails and it recovers
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await store.append("order-1", [Noted(text="placed")], expected_version=0)
            uow.session.add(Note(id="taken"))
            with pytest.raises(IntegrityError):
                await uow.session.flush()
            await uow.session.rollback()  # the session's savepoint only
            uow.session.add(Note(id="other"))
            await uow.commit()

    # then: the event and the second note are committed
    assert await count_events(engine) == 1
    assert await count_notes(engine) == 2


async def test_an_orm_session_s_commit_does_not_commit_the_command(engine: AsyncEngine) -> None:
    await notes_table(engine)
    store = SQLAlchemyEventStore(engine)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await store.append("s-1", [Noted(text="a")], expected_version=0)
            uow.session.add(Note(id="n-1"))
            await uow.session.commit()  # releases the session's savepoint
            await store.append("s-1", [Noted(text="b")], expected_version=1)
            await uow.rollback()
    assert await count_events(engine) == 0
    assert await count_notes(engine) == 0


async def test_a_cancelled_command_ends_cancelled_and_commits_nothing(
    engine: AsyncEngine,
) -> None:
    await notes_table(engine)
    store = SQLAlchemyEventStore(engine)

    async def command(number: int) -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                await store.append(f"s-{number}", [Noted(text="a")], expected_version=0)
                uow.session.add(Note(id=f"n-{number}"))
                await uow.session.flush()
                await uow.connection.execute(select(func.count()).select_from(Note))
                await uow.commit()

    async def hold_the_write_lock(seconds: float) -> None:
        async with SQLAlchemyUnitOfWork(engine):
            await asyncio.sleep(seconds)

    started = asyncio.get_running_loop().time()
    await command(-1)
    duration = asyncio.get_running_loop().time() - started
    # On SQLite a command that has the lock never waits, so nothing could cancel
    # it: another unit of work holds the lock first, and the cancellation lands
    # while the command waits for it.
    held = duration if engine.dialect.name == "sqlite" else 0.0
    outcomes = []
    for number in range(40):
        holder = asyncio.ensure_future(hold_the_write_lock(held)) if held else None
        await asyncio.sleep(0)
        task = asyncio.ensure_future(command(number))
        await asyncio.sleep(duration * (number % 10) / 10)
        task.cancel()
        done = await asyncio.gather(task, return_exceptions=True)
        outcomes.append(done[0])
        if holder is not None:
            await holder
    # every command either finished or was cancelled: no cleanup error in its place
    assert [
        o for o in outcomes if o is not None and not isinstance(o, asyncio.CancelledError)
    ] == []
    assert any(isinstance(o, asyncio.CancelledError) for o in outcomes)
    # and another command gets the database at once
    await command(99)


@on_postgresql
async def test_a_failure_after_a_nested_rollback_pools_no_connection_in_a_transaction(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        await upgrade_schema(engine)
        await notes_table(engine)
        store = SQLAlchemyEventStore(engine)
        # it ends in an error (SQLAlchemy's about the lost savepoint, or the command's):
        # which one is not the point here
        with contextlib.suppress(Exception):
            async with SQLAlchemyUnitOfWork(engine) as uow:
                with command_scope(uow):
                    await store.append("s-1", [Noted(text="a")], expected_version=0)
                    outer = await uow.connection.begin_nested()
                    uow.session.add(Note(id="n-1"))
                    await uow.session.flush()
                    await outer.rollback()  # takes the session's savepoint with it
                    raise RuntimeError("command failed")
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            assert raw.driver_connection.is_in_transaction() is False
        # the append lock is free: another append goes through at once
        await store.append("s-2", [Noted(text="b")], expected_version=0)
    finally:
        await engine.dispose()


@on_postgresql
async def test_a_read_only_engine_gets_read_only_transactions(engine: AsyncEngine) -> None:
    read_only = engine.execution_options(postgresql_readonly=True)
    async with SQLAlchemyUnitOfWork(read_only) as uow:
        assert await uow.connection.scalar(text("SHOW transaction_read_only")) == "on"


on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@on_sqlite
async def test_a_writer_waiting_for_another_process_s_lock_keeps_the_loop_running(
    engine: AsyncEngine,
) -> None:
    # given: another connection (as another process would) holds the write lock
    other = sqlite3.connect(str(engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    store = SQLAlchemyEventStore(engine)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    beating = asyncio.ensure_future(heartbeat())
    try:
        # when: an append waits for it, and the lock is released 200 ms later
        asyncio.get_running_loop().call_later(0.2, other.rollback)
        stored = await store.append("waited", [Noted(text="a")], expected_version=0)
    finally:
        beating.cancel()
        other.close()
    # then: the append went in, and the loop ran other tasks all the while
    assert [event.version for event in stored] == [1]
    assert ticks >= 10


@on_sqlite
async def test_writers_of_one_process_take_turns_and_all_commit(engine: AsyncEngine) -> None:
    store = SQLAlchemyEventStore(engine)
    second_engine = create_engine(str(engine.url))  # another engine on the same file
    second_store = SQLAlchemyEventStore(second_engine)

    async def command(number: int) -> None:
        chosen_engine, chosen_store = (
            (engine, store) if number % 2 else (second_engine, second_store)
        )
        async with SQLAlchemyUnitOfWork(chosen_engine) as uow:
            with command_scope(uow):
                await chosen_store.append(f"s-{number}", [Noted(text="a")], expected_version=0)
                await asyncio.sleep(0)  # others queue for the lock meanwhile
                await chosen_store.append(f"s-{number}", [Noted(text="b")], expected_version=1)
                await uow.commit()

    try:
        await asyncio.gather(*(command(number) for number in range(40)))
    finally:
        await second_engine.dispose()
    stored = await store.read_all(limit=200)
    assert len(stored) == 80
    # each command's two events are next to each other: the transactions did not interleave
    for first, second in itertools.pairwise(stored):
        if first.version == 1:
            assert (second.stream_id, second.version) == (first.stream_id, 2)


@on_sqlite
async def test_a_writer_held_up_in_process_past_the_busy_timeout_gets_a_lock_timeout(
    database_url: str,
) -> None:
    engine = create_engine(database_url, busy_timeout_ms=100)
    await upgrade_schema(engine)
    store = SQLAlchemyEventStore(engine)
    try:
        async with SQLAlchemyUnitOfWork(engine) as holder:
            with command_scope(holder):
                await store.append("held", [Noted(text="a")], expected_version=0)

            async def other_command() -> None:
                async with SQLAlchemyUnitOfWork(engine) as uow:
                    await uow.commit()

            with pytest.raises(LockTimeoutError, match="busy timeout"):
                await other_command()
            await holder.commit()
        # the lock is free again once the holder is done
        await store.append("after", [Noted(text="b")], expected_version=0)
    finally:
        await engine.dispose()


@on_sqlite
async def test_a_connection_given_back_inside_a_transaction_is_rolled_back(
    engine: AsyncEngine,
) -> None:
    # given: a SQLAlchemy transaction left open when its connection is closed
    await notes_table(engine)
    connection = await engine.connect()
    await connection.execute(Note.__table__.insert().values(id="left-open"))
    await connection.close()
    # then: nothing of it was committed, and a writer gets the lock at once
    assert await count_notes(engine) == 0
    other = sqlite3.connect(str(engine.url.database), isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.rollback()
    finally:
        other.close()


@on_sqlite
async def test_sqlalchemy_statements_of_a_sqlite_unit_of_work_run_on_the_loop_s_thread(
    engine: AsyncEngine,
) -> None:
    def thread_of(connection: AsyncConnection) -> Awaitable[Any]:
        return connection.scalar(text("SELECT thread_id()"))

    async with SQLAlchemyUnitOfWork(engine) as uow:
        driver = await uow.connection.get_raw_connection()
        native = driver.driver_connection._conn  # type: ignore[union-attr]
        native.create_function("thread_id", 0, threading.get_ident)
        # inside the transaction: on the loop's thread, no hand-off
        assert await thread_of(uow.connection) == threading.get_ident()
        await uow.commit()
        # once it has ended, a statement (which may wait for the lock) goes to aiosqlite's thread
        assert await thread_of(uow.connection) != threading.get_ident()


@on_sqlite
async def test_a_database_not_in_wal_mode_commits_through_aiosqlite_s_thread(
    database_url: str,
) -> None:
    # given: an engine of the user's own, which leaves the journal mode alone
    engine = create_async_engine(database_url)
    await upgrade_schema(engine)
    store = SQLAlchemyEventStore(engine)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("PRAGMA journal_mode")) != "wal"
        async with SQLAlchemyUnitOfWork(engine) as uow:
            raw = await uow.connection.get_raw_connection()
            raw.driver_connection._conn.create_function(  # type: ignore[union-attr]
                "thread_id", 0, threading.get_ident
            )
            with command_scope(uow):
                await store.append("s-1", [Noted(text="a")], expected_version=0)
            # SQLAlchemy's statements stay on aiosqlite's thread: COMMIT waits for readers there
            assert await uow.connection.scalar(text("SELECT thread_id()")) != threading.get_ident()
            await uow.commit()
        assert [event.version for event in await store.load_stream("s-1")] == [1]
    finally:
        await engine.dispose()


@on_sqlite
async def test_a_stored_time_with_an_offset_reads_back_as_the_same_instant_in_utc(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO cqrs_events (stream_id, version, event_id, event_type, "
                "schema_version, occurred_at, payload, metadata) VALUES ('t', 1, "
                "'0c4f2b3a9d8e4f1a8b7c6d5e4f3a2b1c', 'Noted', 1, '2024-01-01 10:00:00+02:00', "
                "'{\"text\": \"a\"}', '{}')"
            )
        )
    [stored] = await SQLAlchemyEventStore(engine).load_stream("t")
    assert stored.occurred_at == datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    assert stored.occurred_at.tzinfo is UTC
