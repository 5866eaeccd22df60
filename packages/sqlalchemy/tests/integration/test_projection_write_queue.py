"""Read-model upserts held back in a projection batch: sent together, in order, never lost.

Inside a batch ``SQLAlchemyReadModelStore.upsert`` queues its row on the
batch's connection; the queue goes out as one ``executemany`` per run of
same-shaped upserts before the checkpoint, before any other statement on the
connection, and at the end of each savepoint. These tests pin what a
projector relies on: its reads see its writes, the last write wins, a failing
queued write is the failing event's, and a failed event leaves nothing behind.
Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import pytest_asyncio
from projection_test_model import Ticked, Writer
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    event,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import (
    ProjectionContext,
    ProjectionRebuildError,
    ProjectionWorker,
    Projector,
    ProjectorRegistry,
    projects,
)
from cqrs_ddd_core.exceptions import ValidationError
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore, SQLAlchemyReadModelStore

pytest_plugins = ["sqlalchemy_fixtures"]

metadata = MetaData()
counters = Table(
    "queue_counters",
    metadata,
    Column("stream_id", String(100), primary_key=True),
    Column("last_n", Integer, nullable=False),
    Column("seen_before", Integer, nullable=False),
    Column("note", String(40), nullable=True),
)


@pytest_asyncio.fixture
async def db(engine: AsyncEngine) -> AsyncEngine:
    """The migrated ``engine`` (SQLite, then PostgreSQL) with the test's read model."""
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return engine


class CounterProjector(Projector):
    """Upserts the stream's row on every event; ``seen_before`` counts rows by raw SQL.

    The count is taken only for the events in ``count_on`` (-1 otherwise).
    """

    projection_name = "queue_counters"

    def __init__(self, read_model: SQLAlchemyReadModelStore) -> None:
        self.read_model = read_model
        self.null_on: set[int] = set()
        """Values of ``n`` whose row breaks NOT NULL: the error only shows when sent."""
        self.raise_after_write_on: set[int] = set()
        """Values of ``n`` whose handler queues its row and then raises."""
        self.count_on: set[int] = set()
        """Values of ``n`` whose handler counts the rows with raw SQL first."""
        self.reads_first = False
        """Whether every handler reads its stream's row (``get``) before writing it."""

    @projects(Ticked)
    async def ticked(self, event: Ticked, context: ProjectionContext) -> None:
        seen = -1
        if event.n in self.count_on:
            # raw SQL on the batch's connection: the rows queued before must be visible
            seen = await context.connection.scalar(select(func.count()).select_from(counters))
        if self.reads_first:
            await self.read_model.get(context.connection, context.stream_id)
        await self.read_model.upsert(
            context.connection,
            {
                "stream_id": context.stream_id,
                "last_n": None if event.n in self.null_on else event.n,
                "seen_before": seen,
            },
        )
        if event.n in self.raise_after_write_on:
            raise RuntimeError(f"handler gave up on n={event.n}")


def _worker(db: AsyncEngine, projector: Projector, **options: Any) -> ProjectionWorker:
    store = SQLAlchemyEventStore(db)
    return ProjectionWorker(
        ProjectorRegistry([projector]), store, batch_size=50, retry_backoff=0, **options
    )


async def _rows(db: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with db.connect() as connection:
        result = await connection.execute(select(counters))
        return {row["stream_id"]: dict(row) for row in result.mappings()}


def _count_upserts(db: AsyncEngine) -> tuple[list[int], Callable[[], None]]:
    """Count the read model's INSERT executions and their parameter sets."""
    sizes: list[int] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO QUEUE_COUNTERS"):
            sizes.append(len(parameters) if isinstance(parameters, list) else 1)

    event.listen(db.sync_engine, "before_cursor_execute", before)
    return sizes, lambda: event.remove(db.sync_engine, "before_cursor_execute", before)


async def test_a_batch_sends_its_upserts_together_and_the_last_write_wins(db: AsyncEngine) -> None:
    writer = Writer(SQLAlchemyEventStore(db))
    await writer.interleaved(["a", "b", "c"], rounds=4)  # 12 events, n = 1..12
    projector = CounterProjector(SQLAlchemyReadModelStore(counters, db))
    projector.count_on = {12}
    worker = _worker(db, projector)
    sizes, undo = _count_upserts(db)
    try:
        await worker.catch_up()
    finally:
        undo()
    rows = await _rows(db)
    assert {stream: row["last_n"] for stream, row in rows.items()} == {"a": 10, "b": 11, "c": 12}
    # the raw counts saw the rows queued by the events before them
    assert {stream: row["seen_before"] for stream, row in rows.items()} == {
        "a": -1,
        "b": -1,
        "c": 3,
    }
    # one executemany before the raw read, one before the checkpoint
    assert sizes == [11, 1]


async def test_an_upsert_of_some_columns_keeps_the_others(db: AsyncEngine) -> None:
    read_model = SQLAlchemyReadModelStore(counters, db)
    async with db.begin() as connection:
        await read_model.upsert(
            connection, {"stream_id": "a", "last_n": 1, "seen_before": 0, "note": "kept"}
        )
        await read_model.upsert(connection, {"stream_id": "a", "last_n": 2, "seen_before": 5})
    async with db.connect() as connection:
        assert await read_model.get(connection, "a") == {
            "stream_id": "a",
            "last_n": 2,
            "seen_before": 5,
            "note": "kept",
        }


async def test_a_queued_write_that_fails_is_dead_lettered_as_its_events(db: AsyncEngine) -> None:
    writer = Writer(SQLAlchemyEventStore(db))
    numbers = await writer.interleaved([f"s{i}" for i in range(10)], rounds=3)  # 30 events
    projector = CounterProjector(SQLAlchemyReadModelStore(counters, db))
    projector.null_on = {17}
    worker = _worker(db, projector, max_attempts=2)

    [status] = await worker.catch_up()

    assert status.checkpoint == len(numbers)
    [letter] = await worker.dead_letters("queue_counters")
    assert (letter.stream_id, letter.version) == ("s6", 2)  # n=17: round 2, stream s6
    assert letter.attempts == 2
    assert "last_n" in letter.error_message or "NOT NULL" in letter.error_message.upper()
    rows = await _rows(db)
    # s6 keeps the write of its first and third events; every other stream its last
    assert rows["s6"]["last_n"] == 27
    assert all(rows[f"s{i}"]["last_n"] == 21 + i for i in range(10))


async def test_a_failed_queued_write_is_blamed_on_its_event_not_on_the_one_that_sent_it(
    db: AsyncEngine,
) -> None:
    # given: handlers that read their row before writing it; event 2's write breaks NOT NULL,
    # and only event 3's read sends it
    writer = Writer(SQLAlchemyEventStore(db))
    await writer.tick("a", 2)  # n = 1, 2
    await writer.tick("b", 2)  # n = 3, 4
    projector = CounterProjector(SQLAlchemyReadModelStore(counters, db))
    projector.reads_first = True
    projector.null_on = {2}
    worker = _worker(db, projector, max_attempts=1)
    # when
    [status] = await worker.catch_up()
    # then: event 2 alone is quarantined, after the one attempt it made; event 3 is applied
    assert status.checkpoint == 4
    [letter] = await worker.dead_letters("queue_counters")
    assert (letter.position, letter.stream_id, letter.version, letter.attempts) == (2, "a", 2, 1)
    rows = await _rows(db)
    assert {stream: row["last_n"] for stream, row in rows.items()} == {"a": 1, "b": 4}


@pytest.mark.parametrize("reads_first", [False, True], ids=["writes only", "reads first"])
async def test_a_rebuild_halts_right_before_an_event_whose_queued_write_fails(
    db: AsyncEngine, reads_first: bool
) -> None:
    writer = Writer(SQLAlchemyEventStore(db))
    await writer.interleaved([f"s{i}" for i in range(5)], rounds=4)  # 20 events, one batch
    projector = CounterProjector(SQLAlchemyReadModelStore(counters, db))
    projector.null_on = {13}
    projector.reads_first = reads_first  # then event 14's read sends event 13's write
    worker = _worker(db, projector)

    with pytest.raises(ProjectionRebuildError) as raised:
        await worker.rebuild("queue_counters", within=30)

    assert raised.value.position == 13
    assert raised.value.stream_id == "s2"
    [status] = await worker.status("queue_counters")
    assert status.state == "halted"
    assert status.checkpoint == 12  # every event before it, none after
    rows = await _rows(db)
    assert {stream: row["last_n"] for stream, row in rows.items()} == {
        "s0": 11,
        "s1": 12,
        "s2": 8,
        "s3": 9,
        "s4": 10,
    }


async def test_a_handler_that_raises_leaves_none_of_its_queued_writes(db: AsyncEngine) -> None:
    writer = Writer(SQLAlchemyEventStore(db))
    await writer.interleaved(["a", "b"], rounds=3)  # a: 1, 3, 5; b: 2, 4, 6
    projector = CounterProjector(SQLAlchemyReadModelStore(counters, db))
    projector.raise_after_write_on = {5}
    worker = _worker(db, projector, max_attempts=2)

    [status] = await worker.catch_up()

    assert status.checkpoint == 6
    assert [letter.position for letter in await worker.dead_letters("queue_counters")] == [5]
    rows = await _rows(db)
    assert rows["a"]["last_n"] == 3  # n=5's row was queued, then dropped with its savepoint
    assert rows["b"]["last_n"] == 6


async def test_an_upsert_names_a_missing_key_or_an_unknown_column(db: AsyncEngine) -> None:
    read_model = SQLAlchemyReadModelStore(counters, db)
    async with db.begin() as connection:
        with pytest.raises(ValidationError) as missing:
            await read_model.upsert(connection, {"last_n": 1, "seen_before": 0})
        with pytest.raises(ValidationError) as unknown:
            await read_model.upsert(
                connection, {"stream_id": "a", "last_n": 1, "seen_before": 0, "colour": "red"}
            )
    assert "stream_id" in str(missing.value)
    assert "colour" in str(unknown.value)
    assert await _rows(db) == {}
