"""ProjectionWorker on SQLite and PostgreSQL: read models in the events' database.

The projectors write test-owned read-model tables through
``SQLAlchemyReadModelStore`` and the batch's connection, so a batch's changes
and its checkpoint (``cqrs_projections``) commit together. PostgreSQL-only
tests take the ``postgres_database`` fixture and build their own engines
(a second engine on the same database cannot share the in-process signal,
so only ``LISTEN/NOTIFY`` can wake a worker from it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from projection_test_model import (
    EXPECTED_ORDERS,
    HandlerFailedError,
    LedgerProjector,
    Mystery,
    OrderPlaced,
    OrderPlacedWithTextTotal,
    OrderProjector,
    PriceProjector,
    PriceSet,
    PriceSetV1,
    TallyProjector,
    Writer,
    minutes_ago,
    place_orders,
    price_upcasters,
    race_appends,
)
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import (
    CheckpointRegressionError,
    LeaseLostError,
    ProjectionContext,
    ProjectionHaltedError,
    ProjectionRebuildError,
    ProjectionWorker,
    Projector,
    ProjectorRegistry,
    QueryOptions,
    ReplayResult,
    SpecificationBuilder,
    projects,
)
from cqrs_ddd_core.failpoints import FailpointError, reset_failpoints
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyReadModelStore,
    create_engine,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyWorkerStorage as SQLAlchemyProjectionStorage,
)
from cqrs_ddd_persistence_sqlalchemy.types import UTCDateTime
from cqrs_ddd_testing import PostgresDatabase

pytest_plugins = ["sqlalchemy_fixtures"]

metadata = MetaData()


def tally_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("stream_id", String(100), primary_key=True),
        Column("applied_count", Integer, nullable=False),
        Column("last_version", Integer, nullable=False),
        Column("total", BigInteger, nullable=False),
    )


tallies = tally_table("proj_tallies")
tallies_rebuilt = tally_table("proj_tallies_rebuilt")
ledger_table = Table(
    "proj_ledger",
    metadata,
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("stream_id", String(100), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("times", Integer, nullable=False),
)
orders = Table(
    "proj_orders",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("customer_id", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("total", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
pickies = Table("proj_picky", metadata, Column("id", String(40), primary_key=True))


async def create_read_models(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return engine


@pytest_asyncio.fixture
async def db(engine: AsyncEngine) -> AsyncEngine:
    """The migrated ``engine`` (SQLite, then PostgreSQL) with the read-model tables."""
    return await create_read_models(engine)


@pytest_asyncio.fixture
async def pg(postgres_database: PostgresDatabase) -> AsyncIterator[AsyncEngine]:
    """A migrated PostgreSQL engine with the read-model tables."""
    engine = create_engine(postgres_database.sqlalchemy_url)
    await upgrade_schema(engine)
    yield await create_read_models(engine)
    await engine.dispose()


@pytest.fixture
def arm_failpoints(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Arm CQRS_DDD_FAILPOINTS with hit counts from zero; disarmed after the test."""

    def arm(value: str) -> None:
        reset_failpoints()
        monkeypatch.setenv("CQRS_DDD_FAILPOINTS", value)

    yield arm
    monkeypatch.delenv("CQRS_DDD_FAILPOINTS", raising=False)
    reset_failpoints()


def tally(
    engine: AsyncEngine, *, name: str = "tally", table: Table = tallies, **options: Any
) -> tuple[ProjectionWorker, TallyProjector]:
    projector = TallyProjector(SQLAlchemyReadModelStore(table, engine), name)
    registry = ProjectorRegistry([projector])
    return ProjectionWorker(registry, SQLAlchemyEventStore(engine), **options), projector


def ledger(engine: AsyncEngine, **options: Any) -> tuple[ProjectionWorker, LedgerProjector]:
    projector = LedgerProjector(SQLAlchemyReadModelStore(ledger_table, engine), "ledger")
    options.setdefault("retry_backoff", 0.001)
    registry = ProjectorRegistry([projector])
    return ProjectionWorker(registry, SQLAlchemyEventStore(engine), **options), projector


async def rows(engine: AsyncEngine, table: Table) -> list[dict[str, Any]]:
    key = next(iter(table.primary_key.columns))
    async with engine.connect() as connection:
        result = await connection.execute(select(table).order_by(key))
        return [dict(row) for row in result.mappings()]


async def ledger_numbers(engine: AsyncEngine) -> list[int]:
    """The ``n`` of every applied event, after checking none was applied twice."""
    found = await rows(engine, ledger_table)
    assert [row for row in found if row["times"] != 1] == []
    return [row["n"] for row in found]


async def expected_tallies(engine: AsyncEngine) -> list[dict[str, Any]]:
    """The tally rows computed straight from the events table (every ``Ticked``, once)."""
    store = SQLAlchemyEventStore(engine)
    found: dict[str, dict[str, Any]] = {}
    position = 0
    for _ in range(1000):
        batch = await store.read_all(after_position=position, limit=1000)
        if not batch:
            break
        position = batch[-1].position
        for event in batch:
            if event.event_type != "Ticked":
                continue
            row = found.setdefault(
                event.stream_id,
                {"stream_id": event.stream_id, "applied_count": 0, "last_version": 0, "total": 0},
            )
            row["applied_count"] += 1
            row["last_version"] = event.version
            row["total"] += event.payload["n"]
    return [found[stream_id] for stream_id in sorted(found)]


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 5.0, what: str = "condition"
) -> None:
    """Wait (bounded) for a state no API waits for: a lease changing hands."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- order, batches, upcasting


async def test_events_are_applied_in_global_order_from_the_checkpoint_in_batches(
    db: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(db)
    writer = Writer(store)
    await writer.interleaved(["a", "b", "c", "d", "e"], rounds=5)
    # noise in between and at the end, which no projector handles
    await store.append("price-1", [PriceSetV1(amount_eur=2.5)], expected_version=0)
    await store.append("price-1", [PriceSet(amount_cents=10)], expected_version=1)
    tally_projector = TallyProjector(SQLAlchemyReadModelStore(tallies, db), "tally")
    prices = PriceProjector()
    worker = ProjectionWorker(
        ProjectorRegistry([tally_projector, prices]),
        store,
        batch_size=10,
        upcaster_registry=price_upcasters(),
    )
    # when
    statuses = await worker.catch_up()
    # then: every event once, in global order, in batches of at most 10
    assert tally_projector.calls.positions == list(range(1, 26))
    assert tally_projector.calls.batch_sizes() == [10, 10, 5]
    assert [(s.name, s.checkpoint, s.head_position, s.lag_events) for s in statuses] == [
        ("tally", 27, 27, 0),
        ("prices", 27, 27, 0),
    ]
    assert await rows(db, tallies) == await expected_tallies(db)
    # and: the release-1 price was upcast on the way
    assert [(type(e), e.amount_cents) for e in prices.seen] == [(PriceSet, 250), (PriceSet, 10)]
    # when: more events; a new worker starts from the stored checkpoint
    await writer.tick("b", 3)
    restarted, fresh = tally(db, batch_size=10)
    [status] = await restarted.catch_up("tally")
    assert fresh.calls.positions == [28, 29, 30]
    assert status.checkpoint == 30
    assert await rows(db, tallies) == await expected_tallies(db)


# ---------------------------------------------------------------- one transaction


async def test_a_batch_that_fails_before_commit_leaves_neither_rows_nor_checkpoint(
    db: AsyncEngine, arm_failpoints: Callable[[str], None]
) -> None:
    writer = Writer(SQLAlchemyEventStore(db))
    await writer.interleaved(["a", "b", "c"], rounds=4)
    worker, projector = tally(db, batch_size=100)
    arm_failpoints("projection.after_apply_before_commit:raise@1")
    # when: the handlers ran, then the batch fails before its commit
    with pytest.raises(FailpointError):
        await worker.catch_up()
    # then
    assert len(projector.calls.positions) == 12
    assert await rows(db, tallies) == []
    [status] = await worker.status()
    assert (status.checkpoint, status.owner, status.lag_events) == (0, None, 12)
    # when: tried again
    [status] = await worker.catch_up()
    # then: everything, exactly once
    assert status.checkpoint == 12
    assert [(r["applied_count"], r["last_version"]) for r in await rows(db, tallies)] == [
        (4, 4)
    ] * 3
    # when: a batch commits, then the worker fails before it takes note
    await Writer(SQLAlchemyEventStore(db), first_n=100).tick("d", 5)
    arm_failpoints("projection.after_commit_before_ack:raise@1")
    with pytest.raises(FailpointError):
        await worker.catch_up()
    [status] = await worker.catch_up()
    # then: the next run starts from the committed checkpoint: nothing applied twice
    assert status.checkpoint == 17
    assert await rows(db, tallies) == await expected_tallies(db)


# ---------------------------------------------------------------- failures


async def test_a_poison_event_becomes_a_dead_letter_and_is_replayed_once_fixed(
    db: AsyncEngine,
) -> None:
    # given: 1,000 events over 10 streams of 100; the one with n=500 always fails
    store = SQLAlchemyEventStore(db)
    writer = Writer(store)
    for stream in range(10):
        await writer.tick(f"s-{stream}", 100)
    worker, projector = ledger(db, max_attempts=3)
    projector.fail_on = {500}
    # when
    [status] = await worker.catch_up()
    # then
    assert await ledger_numbers(db) == [n for n in range(1, 1001) if n != 500]
    assert projector.calls.per_n[500] == 3
    [letter] = await worker.dead_letters("ledger")
    [stored] = await store.read_all(after_position=499, limit=1)
    assert (letter.projection, letter.position, letter.stream_id, letter.version) == (
        "ledger",
        500,
        "s-4",
        100,
    )
    assert (letter.event_type, letter.event_id) == ("Ticked", stored.event_id)
    assert letter.error_class == "projection_test_model.HandlerFailedError"
    assert letter.error_message == "cannot apply n=500"
    assert letter.attempts == 3
    assert letter.first_seen_at <= letter.last_seen_at
    assert (status.checkpoint, status.head_position, status.dead_letters) == (1000, 1000, 1)
    # when: the projector is fixed, then the letter replayed (while the worker runs)
    projector.fail_on.clear()
    await worker.start()
    try:

        async def holds_the_lease() -> bool:
            [status] = await worker.status()
            return status.owner == worker.worker_id

        await eventually(holds_the_lease, what="the worker holding its lease")
        replayed = await worker.replay_dead_letters("ledger")
        [status] = await worker.status()
    finally:
        await worker.stop(grace=5)
    # then: applied once, gone from the dead letters; the checkpoint did not move
    assert replayed == ReplayResult(applied=[500], failed=[])
    assert await ledger_numbers(db) == list(range(1, 1001))
    assert await worker.dead_letters("ledger") == []
    assert (status.checkpoint, status.dead_letters, status.owner) == (1000, 0, worker.worker_id)
    assert projector.calls.per_n[500] == 4


class Picky(Projector):
    """Handles ``OrderPlaced`` (by class) and ``Mystery`` (by name, class never registered)."""

    projection_name = "picky"

    def __init__(self, engine: AsyncEngine) -> None:
        self.read_model = SQLAlchemyReadModelStore(pickies, engine)
        self.mysteries = 0

    @projects(OrderPlaced)
    async def placed(self, event: OrderPlaced, context: ProjectionContext) -> None:
        await self.read_model.upsert(context.connection, {"id": context.stream_id})

    @projects("Mystery")
    async def mystery(self, event: Any, context: ProjectionContext) -> None:
        self.mysteries += 1


async def test_transient_failures_are_retried_and_undecodable_events_quarantined_at_once(
    db: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(db)
    # given: counted events, one failing twice before it applies
    writer = Writer(store)
    await writer.tick("a", 10)
    worker, projector = ledger(db, max_attempts=3, batch_size=4)
    projector.transient = {6: 2}
    # when
    [status] = await worker.catch_up()
    # then: applied on the 3rd attempt, once, without a dead letter
    assert projector.calls.per_n[6] == 3
    assert await ledger_numbers(db) == list(range(1, 11))
    assert (status.checkpoint, status.dead_letters) == (10, 0)
    # given: a type handled by name but not registered, and a payload the class refuses
    await store.append("o-1", [OrderPlaced(customer_id="c", total=1)], expected_version=0)
    await store.append("m-1", [Mystery(clue="x")], expected_version=0)
    bad = OrderPlacedWithTextTotal(customer_id="c", total="lots")
    await store.append("o-2", [bad], expected_version=0)
    await store.append("o-3", [OrderPlaced(customer_id="c", total=3)], expected_version=0)
    picky = Picky(db)
    picky_worker = ProjectionWorker(
        ProjectorRegistry([picky]), store, max_attempts=5, retry_backoff=10
    )
    # when: (a retry would wait 10 s)
    started = time.monotonic()
    [status] = await picky_worker.catch_up()
    # then
    assert time.monotonic() - started < 5
    letters = await picky_worker.dead_letters("picky")
    assert [(x.position, x.stream_id, x.event_type, x.attempts) for x in letters] == [
        (12, "m-1", "Mystery", 1),
        (13, "o-2", "OrderPlaced", 1),
    ]
    assert [x.error_class.rsplit(".", 1)[-1] for x in letters] == [
        "UnknownEventTypeError",
        "EventDeserializationError",
    ]
    assert picky.mysteries == 0
    assert await rows(db, pickies) == [{"id": "o-1"}, {"id": "o-3"}]
    assert (status.checkpoint, status.dead_letters) == (14, 2)


async def test_on_error_halt_stops_at_the_failing_event_and_resume_goes_on_from_it(
    db: AsyncEngine,
) -> None:
    writer = Writer(SQLAlchemyEventStore(db))
    await writer.tick("a", 10)
    worker, projector = ledger(db, on_error="halt", max_attempts=2, batch_size=4)
    projector.fail_on = {6}
    # when
    with pytest.raises(ProjectionHaltedError) as halted:
        await worker.catch_up()
    # then
    assert (halted.value.position, halted.value.event_type) == (6, "Ticked")
    [status] = await worker.status()
    assert (status.state, status.checkpoint, status.owner) == ("halted", 5, None)
    assert status.last_error is not None
    assert "'Ticked'" in status.last_error
    assert "position 6" in status.last_error
    assert await ledger_numbers(db) == [1, 2, 3, 4, 5]
    # and: a halted projection stays where it is
    await worker.catch_up()
    assert await ledger_numbers(db) == [1, 2, 3, 4, 5]
    # when: the projector is fixed, then the projection resumed
    projector.fail_on.clear()
    await worker.resume("ledger")
    [status] = await worker.catch_up()
    # then
    assert await ledger_numbers(db) == list(range(1, 11))
    assert (status.state, status.checkpoint, status.dead_letters, status.last_error) == (
        "idle",
        10,
        0,
        None,
    )


# ---------------------------------------------------------------- rebuilds


async def test_a_rebuild_gives_the_same_read_model_and_fails_fast_on_a_bad_event(
    db: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(db)
    writer = Writer(store)
    await writer.interleaved(["a", "b", "c"], rounds=10)
    worker, projector = tally(db, batch_size=8)
    await worker.catch_up()
    before = await rows(db, tallies)
    # given: the read model damaged behind the projection's back
    async with db.begin() as connection:
        await projector.read_model.update(connection, "a", {"applied_count": 0})
        await projector.read_model.upsert(
            connection, {"stream_id": "junk", "applied_count": 1, "last_version": 1, "total": 1}
        )
    # when
    status = await worker.rebuild("tally")
    # then: the same rows, row for row
    assert await rows(db, tallies) == before
    assert (status.checkpoint, status.head_position, status.state) == (30, 30, "idle")
    # given: the projector now fails on n=20 (stream b, version 7, position 20)
    projector.fail_on = {20}
    # when
    with pytest.raises(ProjectionRebuildError) as failed:
        await worker.rebuild("tally")
    # then: the error names the event; the projection is halted just before it
    error = failed.value
    assert (error.event_type, error.stream_id, error.position) == ("Ticked", "b", 20)
    assert "position 20" in str(error)
    assert "'b'" in str(error)
    assert isinstance(error.__cause__, HandlerFailedError)
    [status] = await worker.status()
    assert (status.state, status.checkpoint) == ("halted", 19)
    assert sum(r["applied_count"] for r in await rows(db, tallies)) == 19
    # when: the projector is fixed, then the projection resumed
    projector.fail_on.clear()
    await worker.resume("tally")
    await worker.catch_up()
    assert await rows(db, tallies) == before


# ---------------------------------------------------------------- status


async def test_status_reports_checkpoint_head_lag_owner_and_dead_letters(
    db: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(db)
    writer = Writer(store)
    await writer.tick("a", 3, occurred_at=minutes_ago(2))
    worker, projector = ledger(db, max_attempts=1, poll_interval=30)
    [status] = await worker.status()
    assert (status.name, status.state, status.owner, status.dead_letters) == (
        "ledger",
        "idle",
        None,
        0,
    )
    assert (status.checkpoint, status.head_position, status.lag_events) == (0, 3, 3)
    assert 119 < status.lag_seconds < 300
    [status] = await worker.catch_up()
    assert (status.checkpoint, status.lag_events, status.lag_seconds) == (3, 0, 0.0)
    if db.dialect.name == "postgresql":
        # a gap in the positions, as rolled-back appends leave
        async with db.begin() as connection:
            await connection.execute(
                text("SELECT setval(pg_get_serial_sequence('cqrs_events', 'position'), 50)")
            )
    await writer.tick("a", 2, occurred_at=minutes_ago(1))
    head = await store.current_position()
    [status] = await worker.status()
    # then: the lag counts events, not positions
    assert (status.checkpoint, status.head_position, status.lag_events) == (3, head, 2)
    assert 59 < status.lag_seconds < 119
    # when: started, with one event failing
    projector.fail_on = {5}
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        [status] = await worker.status()
        assert (status.state, status.owner) == ("running", worker.worker_id)
        assert (status.checkpoint, status.lag_events, status.dead_letters) == (head, 0, 1)
    finally:
        await worker.stop(grace=5)
    [status] = await worker.status()
    assert (status.state, status.owner) == ("stopped", None)


# ---------------------------------------------------------------- wake-ups and stop


async def test_a_started_worker_is_woken_by_an_append_and_stops_promptly(
    db: AsyncEngine,
) -> None:
    writer = Writer(SQLAlchemyEventStore(db))
    worker, _ = tally(db, poll_interval=30)
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        for round_ in range(1, 4):
            # when: an append while the worker waits (30 s unless woken)
            await writer.tick("a")
            # then
            await worker.wait_until_caught_up(within=5)
            [row] = await rows(db, tallies)
            assert row["applied_count"] == round_
    finally:
        started = time.monotonic()
        await worker.stop(grace=10)
    # and: an idle worker stops at once and gives its lease up
    assert time.monotonic() - started < 2
    [status] = await worker.status()
    assert (status.owner, status.state, status.checkpoint) == (None, "stopped", 3)


async def test_postgresql_wakes_a_worker_for_an_append_made_through_another_engine(
    pg: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    other_engine = create_engine(postgres_database.sqlalchemy_url)
    writer = Writer(SQLAlchemyEventStore(other_engine))
    worker, _ = tally(pg, poll_interval=30)
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        for round_ in range(1, 4):
            # when: an append on another engine (no in-process signal reaches the worker)
            await writer.tick("a")
            # then: LISTEN/NOTIFY woke it
            await worker.wait_until_caught_up(within=5)
            [row] = await rows(pg, tallies)
            assert row["applied_count"] == round_
    finally:
        await worker.stop(grace=10)
        await other_engine.dispose()


async def listener_pids(engine: AsyncEngine) -> list[int]:
    query = text(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
    )
    async with engine.connect() as connection:
        return list((await connection.execute(query)).scalars())


async def test_postgresql_wake_ups_survive_a_killed_listening_connection_at_once(
    pg: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    """Regression: a dead LISTEN connection was only noticed at the next poll."""
    other_engine = create_engine(postgres_database.sqlalchemy_url)
    writer = Writer(SQLAlchemyEventStore(other_engine))
    worker, _ = tally(pg, poll_interval=30)
    await worker.start()
    try:
        [killed] = await listener_pids(pg)
        async with pg.connect() as connection:
            await connection.execute(text(f"SELECT pg_terminate_backend({killed})"))
        await writer.tick("a")
        await worker.wait_until_caught_up(within=3)
    finally:
        await worker.stop(grace=10)
        await other_engine.dispose()


async def test_postgresql_listens_again_when_its_listening_connection_is_killed(
    pg: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    other_engine = create_engine(postgres_database.sqlalchemy_url)
    writer = Writer(SQLAlchemyEventStore(other_engine))
    worker, _ = tally(pg, poll_interval=0.5)
    await worker.start()
    try:
        [killed] = await listener_pids(pg)
        async with pg.connect() as connection:
            await connection.execute(text(f"SELECT pg_terminate_backend({killed})"))
        # when: an append on another engine while the worker listens no more
        await writer.tick("a")
        await worker.wait_until_caught_up(within=5)

        # then: a new listening connection, which wakes the worker again
        async def listening_again() -> bool:
            pids = await listener_pids(pg)
            return len(pids) == 1 and pids[0] != killed

        await eventually(listening_again, what="a new LISTEN connection")
        await writer.tick("a")
        await worker.wait_until_caught_up(within=5)
        [row] = await rows(pg, tallies)
        assert row["applied_count"] == 2
    finally:
        await worker.stop(grace=10)
        await other_engine.dispose()


# ---------------------------------------------------------------- leases


async def test_one_worker_holds_the_lease_and_a_standby_takes_over_without_loss_or_repeat(
    db: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(db)
    writer = Writer(store)
    streams = [f"s-{i}" for i in range(6)]
    await writer.interleaved(streams, rounds=2)
    options: dict[str, Any] = {"batch_size": 7, "poll_interval": 0.2, "lease_ttl": 5}
    first, first_projector = tally(db, worker_id="first", **options)
    second, second_projector = tally(db, worker_id="second", **options)
    await first.start()
    try:
        await first.wait_until_caught_up(within=5)  # first holds the lease before second starts
        await second.start()
        # and: a catch-up elsewhere leaves a projection held by another worker alone
        third, third_projector = tally(db, worker_id="third")
        [status] = await third.catch_up()
        assert (status.owner, third_projector.calls.positions) == ("first", [])

        async def second_is_standby() -> bool:
            [status] = await second.status()
            return status.state == "standby"

        await eventually(second_is_standby, what="the second worker on standby")
        # then: one holder
        [status] = await second.status()
        assert status.owner == "first"
        assert second_projector.calls.positions == []
        # when: events keep coming while the holder stops
        halfway = asyncio.Event()

        async def write() -> None:
            for index in range(1, 121):
                await writer.tick(streams[index % 6])
                if index == 60:
                    halfway.set()

        writing = asyncio.create_task(write())
        await asyncio.wait_for(halfway.wait(), 30)
        await first.stop(grace=10)

        async def second_holds() -> bool:
            [status] = await second.status()
            return status.owner == "second"

        await eventually(second_holds, what="the second worker holding the lease")
        await writing
        await second.wait_until_caught_up(within=10)
    finally:
        await first.stop(grace=10)
        await second.stop(grace=10)
    # then: every event applied once, by one worker or the other, none skipped
    assert await rows(db, tallies) == await expected_tallies(db)
    assert [r["applied_count"] for r in await rows(db, tallies)] == [22] * 6
    first_positions = first_projector.calls.positions
    second_positions = second_projector.calls.positions
    assert first_positions
    assert second_positions
    assert max(first_positions) < min(second_positions)
    assert first_positions + second_positions == list(range(1, 133))


async def test_a_worker_whose_lease_was_taken_over_writes_nothing(
    db: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cqrs_ddd_advanced_core.projections.worker")
    store = SQLAlchemyEventStore(db)
    writer = Writer(store)
    await writer.tick("a", 3)
    worker, projector = tally(db, lease_ttl=0.6, poll_interval=30, worker_id="slow")
    storage = worker.storage
    assert isinstance(storage, SQLAlchemyProjectionStorage)
    await worker.start()
    try:
        await worker.wait_until_caught_up(within=5)
        # given: a batch that outlives the worker's lease (a stalled worker) ...
        projector.delay = 1.2
        await writer.tick("a")

        async def stalled() -> bool:
            return projector.calls.per_n[4] == 1

        await eventually(stalled, what="the slow batch under way")
        # ... and another owner that takes the projection over once it is free
        intruder = await storage.acquire("tally", "intruder", ttl=30)
        assert intruder is not None
        projector.delay = 0
        # when: more events
        await writer.tick("a", 2)

        async def standby() -> bool:
            [status] = await worker.status()
            return status.state == "standby"

        await eventually(standby, what="the worker on standby")
        # then: the worker found its lease lost and wrote nothing more
        assert any("no longer holds lease" in r.getMessage() for r in caplog.records)
        assert sorted(projector.calls.per_n) == [1, 2, 3, 4]
        [row] = await rows(db, tallies)
        assert row["applied_count"] == 4
        [status] = await worker.status()
        assert (status.checkpoint, status.owner) == (4, "intruder")
        # when: the intruder gives the lease back, the worker goes on
        await storage.release(intruder)

        async def caught_up() -> bool:
            [status] = await worker.status()
            return status.checkpoint == 6 and status.owner == "slow"

        await eventually(caught_up, what="the worker back and caught up")
    finally:
        await worker.stop(grace=5)
    assert await rows(db, tallies) == await expected_tallies(db)


async def test_a_batch_under_a_lost_lease_raises_lease_lost_and_commits_nothing(
    db: AsyncEngine,
) -> None:
    writer = Writer(SQLAlchemyEventStore(db))
    await writer.tick("a", 2)
    storage = SQLAlchemyEventStore(db).worker_storage()
    old = await storage.acquire("tally", "old", ttl=0.3)
    assert old is not None
    assert await storage.acquire("tally", "new", ttl=30) is None  # not expired yet
    await asyncio.sleep(0.4)  # the lease's time runs out
    new = await storage.acquire("tally", "new", ttl=30)
    assert new is not None
    assert new.epoch == old.epoch + 1
    # when: the old owner tries to write a batch
    with pytest.raises(LeaseLostError):
        async with storage.batch(old, ttl=30) as batch:
            batch.advance(2)
    assert not await storage.renew(old, ttl=30)
    # then
    record = await storage.record("tally")
    assert (record.position, record.owner, record.epoch) == (0, "new", new.epoch)
    # and: the new owner's batches commit
    async with storage.batch(new, ttl=30) as batch:
        batch.advance(2)
    assert (await storage.record("tally")).position == 2


async def test_an_idle_holder_keeps_its_lease_whatever_the_poll_interval(
    db: AsyncEngine,
) -> None:
    """Regression: an idle holder renewed once per poll_interval, past its lease."""
    await Writer(SQLAlchemyEventStore(db)).tick("a")
    options: dict[str, Any] = {"poll_interval": 30, "lease_ttl": 0.4}
    holder, _ = tally(db, worker_id="holder", **options)
    standby, _ = tally(db, worker_id="standby", **options)
    await holder.start()
    await holder.wait_until_caught_up(within=5)
    await standby.start()
    try:
        await asyncio.sleep(1.5)  # several lease times pass with the holder alive
        [status] = await holder.status()
        assert status.owner == "holder"
    finally:
        await holder.stop(grace=5)
        await standby.stop(grace=5)


# ---------------------------------------------------------------- PostgreSQL under load


async def test_postgresql_eight_concurrent_writers_give_the_same_read_model_as_a_rebuild(
    pg: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    # given: a started worker, woken by LISTEN/NOTIFY only (the writers use other engines)
    worker, projector = tally(pg, batch_size=50, poll_interval=30)
    await worker.start()
    writer_engines = [create_engine(postgres_database.sqlalchemy_url) for _ in range(8)]
    streams = [f"s-{i}" for i in range(24)]
    versions: Counter[str] = Counter()
    try:
        # when: 8 writers append 100 events each to random streams, concurrently
        appended = await asyncio.gather(
            *(
                race_appends(
                    SQLAlchemyEventStore(engine),
                    versions,
                    streams,
                    events=100,
                    seed=index,
                    first_n=index * 1000 + 1,
                )
                for index, engine in enumerate(writer_engines)
            )
        )
        await worker.wait_until_caught_up(within=30)
    finally:
        await worker.stop(grace=10)
        for engine in writer_engines:
            await engine.dispose()
    per_stream: Counter[str] = sum(appended, Counter())
    assert sum(per_stream.values()) == 800
    # then: each stream's events applied once each, in order
    live = await rows(pg, tallies)
    assert {r["stream_id"]: r["applied_count"] for r in live} == dict(per_stream)
    assert all(r["applied_count"] == r["last_version"] for r in live)
    assert live == await expected_tallies(pg)
    assert len(projector.calls.positions) == 800
    assert projector.calls.positions == sorted(projector.calls.positions)
    # and: the same projection applied from scratch into another table, row for row
    fresh, _ = tally(pg, name="tally_from_scratch", table=tallies_rebuilt, batch_size=200)
    await fresh.catch_up()
    rebuilt = await rows(pg, tallies_rebuilt)
    assert rebuilt == live
    # and: a rebuild of the live projection gives the same rows too
    status = await worker.rebuild("tally")
    assert status.checkpoint == await SQLAlchemyEventStore(pg).current_position()
    assert await rows(pg, tallies) == live


# ---------------------------------------------------------------- the spec's example


async def test_the_projections_example_queries_orders_the_worker_projected(
    db: AsyncEngine,
) -> None:
    # given: orders projected from their events by the worker
    event_store = SQLAlchemyEventStore(db)
    order_projection = OrderProjector(SQLAlchemyReadModelStore(orders, db))
    worker = ProjectionWorker(ProjectorRegistry([order_projection]), event_store, batch_size=100)
    await place_orders(event_store)
    await worker.catch_up()

    # Fluent query API
    spec = (
        SpecificationBuilder()
        .where("customer_id", "==", "cust_123")
        .where("status", "in", ["pending", "confirmed"])
        .where("total", ">", 100)
    )

    options = (
        QueryOptions()
        .with_specification(spec)
        .with_ordering("created_at", desc=True)
        .with_pagination(limit=20, offset=0)
    )

    # Execute query
    orders_found = await order_projection.query(options)
    # then
    assert [(o["id"], o["status"], o["total"]) for o in orders_found] == EXPECTED_ORDERS
    assert all(o["customer_id"] == "cust_123" for o in orders_found)
    created = [o["created_at"] for o in orders_found]
    assert created == sorted(created, reverse=True)


async def test_a_checkpoint_never_moves_back(db: AsyncEngine) -> None:
    # given: a projection checkpointed at 24
    storage = SQLAlchemyEventStore(db).worker_storage()
    lease = await storage.acquire("tally", "me", ttl=30)
    assert lease is not None
    async with storage.batch(lease, ttl=30) as batch:
        batch.advance(24)
    # when / then: within a batch, and from the stored checkpoint, back is refused
    async with storage.batch(lease, ttl=30) as batch:
        batch.advance(26)
        with pytest.raises(CheckpointRegressionError) as refused:
            batch.advance(22)
        batch.advance(26)
    assert (refused.value.checkpoint, refused.value.requested) == (26, 22)
    with pytest.raises(CheckpointRegressionError) as refused:
        async with storage.batch(lease, ttl=30) as batch:
            batch.advance(22)
    assert (refused.value.checkpoint, refused.value.requested) == (26, 22)
    assert (await storage.record("tally")).position == 26
