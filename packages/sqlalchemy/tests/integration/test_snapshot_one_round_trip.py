"""Loading from a snapshot in one round trip, on SQLite and PostgreSQL.

``SQLAlchemySnapshotRepository.load_snapshot_and_events`` reads the newest
snapshot and the events after it in one statement; ``EventSourcedLoader`` uses
it when the snapshot store and the event store share the database. Whatever
path the statement takes (SQLAlchemy inside a command, the driver connection
outside one, the event loop's own ``sqlite3`` connection on a SQLite file), it
must return exactly what the two reads it replaces return: ``latest`` and
``load_stream(from_version=latest.version + 1)``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from advanced_test_model import ItemAdded
from snapshot_test_support import (
    AddItems,
    CountingEventStore,
    OrderV2,
    SnapshottingShop,
    StreamRead,
    lines,
    snapshotting_shop,
)
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cqrs_ddd_advanced_core.snapshots import (
    EveryNEventsStrategy,
    Snapshot,
    SnapshotAndEventsReader,
    SnapshotStore,
)
from cqrs_ddd_core import StoredEvent
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_persistence_sqlalchemy import (
    SchemaNotReadyError,
    SQLAlchemyEventStore,
    SQLAlchemySnapshotRepository,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy.connections import Reads as StoreReads
from cqrs_ddd_persistence_sqlalchemy.driver_reads import DriverQuery, SQLiteLoopReader
from cqrs_ddd_persistence_sqlalchemy.schema import snapshots

pytest_plugins = ["sqlalchemy_fixtures"]


def sql_shop(
    engine: AsyncEngine, frequency: int, *, keep: int = 1, loop_reads: bool = True
) -> SnapshottingShop:
    """Return the shop on ``engine`` with its snapshots in the same database."""
    repository = SQLAlchemySnapshotRepository(engine, sqlite_loop_reads=loop_reads)
    snapshot_store = SnapshotStore(
        strategy=EveryNEventsStrategy(frequency=frequency), repository=repository, keep=keep
    )
    return snapshotting_shop(
        SQLAlchemyEventStore(engine), snapshot_store, lambda: SQLAlchemyUnitOfWork(engine)
    )


def repository_of(shop: SnapshottingShop) -> SQLAlchemySnapshotRepository:
    repository = shop.snapshots.repository
    assert isinstance(repository, SQLAlchemySnapshotRepository)
    return repository


async def two_reads(
    shop: SnapshottingShop, stream_id: str
) -> tuple[Snapshot | None, list[StoredEvent]]:
    """What a load reads without the joint read: the newest snapshot, then its events on."""
    snapshot = await repository_of(shop).latest(stream_id)
    from_version = snapshot.version if snapshot is not None else 1
    return snapshot, await shop.event_store.load_stream(stream_id, from_version=from_version)


@dataclass
class Reads:
    """Every read of the database: SQLAlchemy SELECTs and driver calls, by path."""

    statements: list[str] = field(default_factory=list)
    driver_calls: int = 0
    loop_reads: int = 0
    loop_answers: int = 0
    on_execute: Any = None

    @property
    def total(self) -> int:
        """Return the round trips made (a loop read that gave up costs none)."""
        return len(self.statements) + self.driver_calls + self.loop_answers

    def clear(self) -> None:
        self.statements.clear()
        self.driver_calls = self.loop_reads = self.loop_answers = 0


@pytest.fixture
def reads(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    """Count the reads made on ``engine`` from here on."""
    counted = counting_reads(engine, monkeypatch)
    yield counted
    event.remove(engine.sync_engine, "before_cursor_execute", counted.on_execute)


def counting_reads(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> Reads:
    """Start counting the reads made on ``engine``."""
    counted = Reads()

    def on_execute(*arguments: Any) -> None:
        if arguments[2].startswith("SELECT"):  # not the BEGIN of a SQLite transaction
            counted.statements.append(arguments[2])

    original_fetch = DriverQuery._fetch
    original_loop_fetch = SQLiteLoopReader.fetch

    async def driver_fetch(
        query: DriverQuery, connection: Any, parameters: Any
    ) -> list[tuple[Any, ...]]:
        counted.driver_calls += 1
        return await original_fetch(query, connection, parameters)

    def loop_fetch(reader: SQLiteLoopReader, arguments: Sequence[Any]) -> Any:
        counted.loop_reads += 1
        rows = original_loop_fetch(reader, arguments)
        counted.loop_answers += rows is not None
        return rows

    original_fetch_in_turns = SQLiteLoopReader.fetch_in_turns

    async def loop_fetch_in_turns(reader: SQLiteLoopReader, arguments: Sequence[Any]) -> Any:
        counted.loop_reads += 1
        rows = await original_fetch_in_turns(reader, arguments)
        counted.loop_answers += rows is not None
        return rows

    monkeypatch.setattr(DriverQuery, "_fetch", driver_fetch)
    monkeypatch.setattr(SQLiteLoopReader, "fetch", loop_fetch)
    monkeypatch.setattr(SQLiteLoopReader, "fetch_in_turns", loop_fetch_in_turns)
    counted.on_execute = on_execute
    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    return counted


async def make_orders(shop: SnapshottingShop) -> None:
    """Orders in every shape a load meets (the shop snapshots every 5 events)."""
    # o-later: snapshot at 7, then two more events (7 -> 9 crosses no multiple of 5)
    await shop.create_order("o-later")
    await shop.mediator.send(AddItems(order_id="o-later", lines=lines(6)))
    await shop.mediator.send(AddItems(order_id="o-later", lines=lines(2, sku="sku-2")))
    # o-at-last: snapshot at its last version
    await shop.create_order("o-at-last")
    await shop.mediator.send(AddItems(order_id="o-at-last", lines=lines(4)))
    # o-none: too short for a snapshot
    await shop.create_order("o-none")
    await shop.mediator.send(AddItems(order_id="o-none", lines=lines(2)))


STREAMS = ["o-later", "o-at-last", "o-none", "o-missing"]


# ---------------------------------------------------------------- one read, same answer


@pytest.mark.parametrize("loop_reads", [True, False], ids=["loop-reads", "no-loop-reads"])
async def test_one_read_returns_exactly_what_the_two_reads_return(
    engine: AsyncEngine, loop_reads: bool
) -> None:
    # given
    shop = sql_shop(engine, frequency=5, loop_reads=loop_reads)
    await make_orders(shop)
    repository = repository_of(shop)
    # when / then
    for stream_id in STREAMS:
        assert await repository.load_snapshot_and_events(stream_id) == await two_reads(
            shop, stream_id
        ), stream_id
    snapshot, later = await repository.load_snapshot_and_events("o-later")
    assert snapshot is not None
    assert (snapshot.version, [stored.version for stored in later]) == (7, [7, 8, 9])
    assert (snapshot.aggregate_type, snapshot.schema_version) == ("Order", 1)
    assert snapshot.taken_at.tzinfo is not None
    assert await repository.load_snapshot_and_events("o-none") == (
        None,
        await shop.event_store.load_stream("o-none"),
    )
    assert await repository.load_snapshot_and_events("o-missing") == (None, [])


async def test_with_several_snapshots_kept_the_newest_is_read(engine: AsyncEngine) -> None:
    # given: snapshots at 3, 6 and 9 kept, then one more event
    shop = sql_shop(engine, frequency=3, keep=3)
    await shop.create_order("o-1")
    for count in (2, 3, 3, 1):
        await shop.mediator.send(AddItems(order_id="o-1", lines=lines(count)))
    # when
    snapshot, later = await repository_of(shop).load_snapshot_and_events("o-1")
    # then
    assert snapshot is not None
    assert (snapshot.version, [stored.version for stored in later]) == (9, [9, 10])
    assert (snapshot, later) == await two_reads(shop, "o-1")


async def test_a_load_from_a_snapshot_is_one_round_trip_and_yields_what_a_replay_yields(
    engine: AsyncEngine, reads: Reads
) -> None:
    # given
    shop = sql_shop(engine, frequency=5)
    await make_orders(shop)
    loader = shop.snapshot_loader(shop.event_store)
    for stream_id in STREAMS[:3]:
        reads.clear()
        # when
        loaded = await loader.load(stream_id)
        # then
        assert reads.total == 1, (stream_id, reads)
        replayed = await shop.replaying_loader().load(stream_id)
        assert loaded.model_dump() == replayed.model_dump()
    reads.clear()
    assert await loader.find("o-missing") is None
    assert reads.total == 1


async def test_outside_a_command_the_read_goes_straight_to_the_driver(
    engine: AsyncEngine, reads: Reads
) -> None:
    # given
    shop = sql_shop(engine, frequency=5)
    await make_orders(shop)
    reads.clear()
    # when
    await repository_of(shop).load_snapshot_and_events("o-later")
    # then: no statement through SQLAlchemy's execution layer; on a SQLite file
    # not even a hand-off to aiosqlite's thread
    assert reads.statements == []
    if engine.dialect.name == "sqlite":
        assert (reads.loop_answers, reads.driver_calls) == (1, 0)
    else:
        assert (reads.loop_reads, reads.driver_calls) == (0, 1)


# ---------------------------------------------------------------- inside a command


async def test_inside_a_command_the_read_sees_the_command_s_own_uncommitted_writes(
    engine: AsyncEngine, reads: Reads
) -> None:
    # given: o-1 with a snapshot at 7
    shop = sql_shop(engine, frequency=5)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(6)))
    repository = repository_of(shop)
    loader = shop.snapshot_loader(shop.event_store)
    extra = [
        ItemAdded(sku="sku-9", quantity=1, unit_price=Decimal("2.00"), aggregate_type="Order")
        for _ in range(3)
    ]
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            # when: the command appends three events and snapshots at 10, uncommitted
            await shop.event_store.append("o-1", extra[:2], expected_version=7)
            order = await loader.load("o-1")
            await shop.snapshots.save(order)
            await shop.event_store.append("o-1", extra[2:], expected_version=9)
            reads.clear()
            inside = await loader.load("o-1")
            joint_reads = reads.total
            joint = await repository.load_snapshot_and_events("o-1")
            assert joint == await two_reads(shop, "o-1")
        # and a read outside the command, while it is still open
        outside = await loader.load("o-1")
        await uow.rollback()
    # then
    assert joint_reads == 1
    snapshot, later = joint
    assert snapshot is not None
    assert (snapshot.version, [stored.version for stored in later]) == (9, [9, 10])
    assert (inside.version, inside.items) == (10, {"sku-1": 6, "sku-9": 3})
    assert (outside.version, outside.items) == (7, {"sku-1": 6})
    after = await loader.load("o-1")
    assert (after.version, after.items) == (7, {"sku-1": 6})


# ---------------------------------------------------------------- unusable snapshots


async def test_a_snapshot_of_an_older_schema_costs_a_second_read_of_the_whole_stream(
    engine: AsyncEngine, reads: Reads
) -> None:
    # given: a snapshot at 7 taken while Order's schema was version 1, then 2 events
    shop = sql_shop(engine, frequency=5)
    await make_orders(shop)
    loader = shop.snapshot_loader(shop.event_store, aggregate_type=OrderV2)
    reads.clear()
    # when: the class now at schema version 2 loads it
    loaded = await loader.load("o-later")
    # then
    assert reads.total == 2
    replayed = await shop.replaying_loader(aggregate_type=OrderV2).load("o-later")
    assert loaded.model_dump() == replayed.model_dump()
    assert loaded.version == 9


async def test_a_snapshot_whose_state_no_longer_validates_falls_back_to_a_full_replay(
    engine: AsyncEngine,
) -> None:
    # given
    shop = sql_shop(engine, frequency=5)
    await make_orders(shop)
    async with engine.begin() as connection:
        await connection.execute(
            update(snapshots)
            .where(snapshots.c.stream_id == "o-later")
            .values(state={"id": "o-later", "items": ["not", "a", "mapping"]})
        )
    # when
    loaded = await shop.snapshot_loader(shop.event_store).load("o-later")
    # then
    assert loaded.model_dump() == (await shop.replaying_loader().load("o-later")).model_dump()


# ---------------------------------------------------------------- when the one read is used


async def test_the_repository_reads_the_events_of_a_sqlalchemy_event_store_on_its_engine_only(
    engine: AsyncEngine, database_url: str
) -> None:
    repository = SQLAlchemySnapshotRepository(async_sessionmaker(engine))
    assert isinstance(repository, SnapshotAndEventsReader)
    assert repository.reads_events_of(SQLAlchemyEventStore(engine))
    assert repository.reads_events_of(SQLAlchemyEventStore(async_sessionmaker(engine)))
    assert not repository.reads_events_of(CountingEventStore(SQLAlchemyEventStore(engine)))

    class RenamingEventStore(SQLAlchemyEventStore):
        async def load_stream(self, stream_id: str, *, from_version: int = 1) -> list[StoredEvent]:
            return await super().load_stream(f"tenant-{stream_id}", from_version=from_version)

    assert not repository.reads_events_of(RenamingEventStore(engine))
    other = create_engine(database_url)
    try:
        assert not repository.reads_events_of(SQLAlchemyEventStore(other))
    finally:
        await other.dispose()


async def test_an_event_store_that_is_not_the_repository_s_is_read_as_before(
    engine: AsyncEngine,
) -> None:
    # given
    shop = sql_shop(engine, frequency=5)
    await make_orders(shop)
    counting = CountingEventStore(shop.event_store)
    # when
    loaded = await shop.snapshot_loader(counting).load("o-later")
    # then
    assert counting.reads == [StreamRead("o-later", from_version=7, count=3)]
    assert loaded.model_dump() == (await shop.replaying_loader().load("o-later")).model_dump()


async def test_a_database_without_the_schema_is_reported_as_the_event_store_reports_it(
    database_url: str,
) -> None:
    # given: no upgrade_schema
    engine = create_engine(database_url)
    repository = SQLAlchemySnapshotRepository(engine)
    try:
        # when / then: the driver paths give up, SQLAlchemy's reports it, typed
        with pytest.raises(SchemaNotReadyError, match="load the snapshot and events of 'o-1'"):
            await repository.load_snapshot_and_events("o-1")
        with pytest.raises(SchemaNotReadyError):
            await SQLAlchemyEventStore(engine).load_stream("o-1")
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- SQLite: the loop reader


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'events.sqlite'}")
    await upgrade_schema(engine)
    yield engine
    await engine.dispose()


async def test_a_read_with_more_rows_than_the_loop_reader_takes_goes_through_the_pool(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a snapshot at 5 and 4 events after it (5 rows), the loop reader taking 4
    shop = sql_shop(sqlite_engine, frequency=5)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(4)))
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(4)))
    monkeypatch.setattr(SQLiteLoopReader, "max_rows", 4)
    reads = counting_reads(sqlite_engine, monkeypatch)
    # when
    joint = await repository_of(shop).load_snapshot_and_events("o-1")
    # then: the loop reader gave up, the pooled driver read answered
    assert (reads.loop_reads, reads.loop_answers, reads.driver_calls) == (1, 0, 1)
    snapshot, later = joint
    assert snapshot is not None
    assert (snapshot.version, len(later)) == (5, 5)
    assert joint == await two_reads(shop, "o-1")


async def test_a_long_stream_loads_on_the_loop_in_turns_and_reads_as_through_the_pool(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a stream of 9 events, the loop reader stepping 4 rows per turn
    shop = sql_shop(sqlite_engine, frequency=100)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(4)))
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(4)))
    monkeypatch.setattr(SQLiteLoopReader, "max_rows", 4)
    reads = counting_reads(sqlite_engine, monkeypatch)
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counting = asyncio.ensure_future(count_turns())
    await asyncio.sleep(0)
    # when
    try:
        loaded = await shop.event_store.load_stream("o-1")
    finally:
        counting.cancel()
    # then: one loop read answered, other tasks ran between its pages, and the
    # events are those the pool reads
    assert (reads.loop_reads, reads.loop_answers, reads.driver_calls) == (1, 1, 0)
    assert turns >= 2
    shop.event_store.sqlite_loop_reads = False
    assert loaded == await shop.event_store.load_stream("o-1")
    assert [event.version for event in loaded] == list(range(1, 10))


async def test_the_loop_reader_never_waits_for_a_lock(tmp_path: Path) -> None:
    # given: a database in rollback-journal mode, exclusively locked by another writer
    path = tmp_path / "locked.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("INSERT INTO t VALUES (1)")
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO t VALUES (2)")
    reader = SQLiteLoopReader(str(path), "SELECT x FROM t")
    try:
        # when
        started = time.perf_counter()
        locked = reader.fetch([])
        waited = time.perf_counter() - started
        writer.execute("COMMIT")
        free = reader.fetch([])
    finally:
        reader.close()
        writer.close()
    # then: it gave up at once, and read once the lock was gone
    assert locked is None
    assert waited < 0.5
    assert free == [(1,), (2,)]


async def test_under_wal_the_loop_reader_reads_past_an_open_writer_without_waiting(
    sqlite_engine: AsyncEngine,
) -> None:
    # given: o-1 with a snapshot at 5, and another connection (as another process
    # would) in the middle of writing two more events
    shop = sql_shop(sqlite_engine, frequency=5)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(4)))
    database = sqlite_engine.url.database
    assert database is not None
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE cqrs_snapshots SET schema_version = 99 WHERE stream_id = 'o-1'")
        # when
        started = time.perf_counter()
        snapshot, later = await repository_of(shop).load_snapshot_and_events("o-1")
        waited = time.perf_counter() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    # then: the committed state, at once
    assert snapshot is not None
    assert (snapshot.version, snapshot.schema_version) == (5, 1)
    assert [stored.version for stored in later] == [5]
    assert waited < 0.5


async def test_after_the_engine_is_disposed_the_loop_reader_opens_a_new_connection(
    sqlite_engine: AsyncEngine,
) -> None:
    # given
    shop = sql_shop(sqlite_engine, frequency=5)
    await shop.create_order("o-1")
    repository = repository_of(shop)
    await repository.load_snapshot_and_events("o-1")
    reader = _loop_reader(repository)
    before = reader._connection
    assert before is not None
    # when
    await sqlite_engine.dispose()
    # then: the next read closes the old connection and reads on a new one
    assert (await repository.load_snapshot_and_events("o-1"))[1][0].version == 1
    assert is_open(reader)
    assert reader._connection is not before
    with pytest.raises(sqlite3.ProgrammingError):
        before.execute("SELECT 1")  # closed


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite:///file:x.db?mode=ro&uri=true",
    ],
)
def test_only_a_plain_sqlite_file_gets_a_loop_reader(url: str) -> None:
    assert SQLiteLoopReader.for_engine(create_engine(url), "SELECT 1") is None


# ---------------------------------------------------------------- the read connection


async def test_the_read_only_view_of_an_engine_is_built_once(engine: AsyncEngine) -> None:
    reads = StoreReads(engine)
    async with reads.connection() as first:
        first_engine = first.engine
    async with reads.connection() as second:
        assert second.engine is first_engine
    if engine.dialect.name == "postgresql":
        assert first_engine.get_execution_options()["isolation_level"] == "AUTOCOMMIT"


def _loop_reader(repository: SQLAlchemySnapshotRepository) -> SQLiteLoopReader:
    joint = repository._joint_read
    assert joint is not None
    reader = joint.loop_reader
    assert reader is not None
    return reader


def is_open(reader: SQLiteLoopReader) -> bool:
    return reader._connection is not None
