"""R1: catch-up readers never skip, never repeat (the gap test), on PostgreSQL.

The event store serialises appends with a transaction-scoped advisory lock held
to commit (the table-lock strategy of RELIABILITY.md): a writer takes its
positions only once every earlier writer has committed or rolled back, so
positions follow commit order and a reader may checkpoint by position. Rolled
back transactions leave gaps in the position column, which readers must pass
over. The load test checks this under eight concurrent writers; the
deterministic tests pin down the interleavings that break gap-blind readers
under other strategies (a slow writer below a fast one, a rollback below a
commit, a reader restarted mid-transaction).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from harness.checker import check_delivery, outcomes_from_history
from harness.history import HistoryLog, read_history
from harness.pg_faults import connect
from scenario_support import (
    Appended,
    CatchUpReader,
    SlowWriter,
    eventually,
    failure_note,
    keys,
    lock_waiters,
    position_gaps,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
    create_engine,
)
from cqrs_ddd_persistence_sqlalchemy.schema import events as events_table
from cqrs_ddd_testing import PostgresDatabase


@dataclass(frozen=True, slots=True)
class Load:
    """The size of the randomized run."""

    writers: int
    events_per_writer: int
    deadline_seconds: float
    readers: int = 2
    streams_per_writer: int = 5
    max_batch: int = 20
    max_pause_seconds: float = 0.05
    rollback_share: float = 0.05


CI = Load(writers=8, events_per_writer=500, deadline_seconds=180)
SOAK = Load(writers=8, events_per_writer=5_000, deadline_seconds=1_800)


class CommitOrder:
    """Hands out ranks in the order writers obtain the append lock.

    A writer takes a rank right after its append returned, while it holds the
    lock, which it keeps until its commit: so ranks follow commit order, observed
    from the clients' side, independently of the positions the store assigns.
    """

    def __init__(self) -> None:
        self.taken = 0

    def take(self) -> int:
        self.taken += 1
        return self.taken


@dataclass
class WriterTally:
    committed_transactions: int = 0
    rolled_back_transactions: int = 0
    rolled_back_positions: list[int] = field(default_factory=list)


async def write(
    engine: AsyncEngine,
    load: Load,
    *,
    rng: random.Random,
    log: HistoryLog,
    order: CommitOrder,
) -> WriterTally:
    """Append ``load.events_per_writer`` events in random batches, one unit of work each.

    Each transaction appends, sleeps up to ``max_pause_seconds`` holding its
    transaction open, then commits, or rolls back (``rollback_share`` of them,
    after the append took its positions).
    """
    store = SQLAlchemyEventStore(engine)
    name = log.proc
    tally = WriterTally()
    versions = {f"{name}-stream-{number}": 0 for number in range(load.streams_per_writer)}
    written = 0
    for _ in range(2 * load.events_per_writer):  # bounded: each commit writes at least one
        if written >= load.events_per_writer:
            break
        size = min(rng.randint(1, load.max_batch), load.events_per_writer - written)
        stream = rng.choice(sorted(versions))
        batch = [Appended(writer=name, number=written + index) for index in range(size)]
        rolls_back = rng.random() < load.rollback_share
        pause = rng.uniform(0, load.max_pause_seconds)
        for event in batch:
            log.record("append", str(event.event_id), "invoke")
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                stored = await store.append(stream, batch, expected_version=versions[stream])
            rank = order.take()
            await asyncio.sleep(pause)
            if rolls_back:
                await uow.rollback()
            else:
                await uow.commit()
        phase = "fail" if rolls_back else "ok"
        for index, row in enumerate(stored):
            log.record("append", str(row.event_id), phase, rank=rank, index=index)
        if rolls_back:
            tally.rolled_back_transactions += 1
            tally.rolled_back_positions.extend(row.position for row in stored)
            continue
        tally.committed_transactions += 1
        versions[stream] += size
        written += size
    return tally


async def signal_when_done(tasks: list[asyncio.Task[WriterTally]], done: asyncio.Event) -> None:
    if tasks:
        await asyncio.wait(tasks)
    done.set()


@pytest.mark.parametrize(
    "load",
    [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)],
)
async def test_catch_up_readers_deliver_every_committed_event_once_in_commit_order(
    pg_engine: AsyncEngine, seed: int, tmp_path: Path, load: Load
) -> None:
    # given: eight writers with random batches, pauses before commit and rollbacks,
    # and two readers polling the global log every 10 ms
    note = failure_note(seed)
    history_path = tmp_path / "history.jsonl"
    store = SQLAlchemyEventStore(pg_engine)
    order = CommitOrder()
    readers = [
        CatchUpReader(
            store,
            f"reader-{number}",
            random.Random(f"{seed}-reader-{number}"),
            history=HistoryLog(history_path, proc=f"reader-{number}"),
        )
        for number in range(load.readers)
    ]
    logs = [HistoryLog(history_path, proc=f"writer-{n}") for n in range(load.writers)]
    writers_done = asyncio.Event()
    # when
    async with asyncio.timeout(load.deadline_seconds), asyncio.TaskGroup() as group:
        for reader in readers:
            group.create_task(reader.follow(writers_done, within=load.deadline_seconds))
        writer_tasks = [
            group.create_task(
                write(
                    pg_engine, load, rng=random.Random(f"{seed}-{log.proc}"), log=log, order=order
                )
            )
            for log in logs
        ]
        group.create_task(signal_when_done(writer_tasks, writers_done))
    for log in [*logs, *(reader.history for reader in readers if reader.history)]:
        log.close()
    # then: every reader got exactly the committed events, in commit order
    tallies = [task.result() for task in writer_tasks]
    records = read_history(history_path)
    outcomes = outcomes_from_history(records, op="append")
    committed_records = sorted(
        (record for record in records if record.op == "append" and record.phase == "ok"),
        key=lambda record: (record.extra["rank"], record.extra["index"]),
    )
    commit_order = [record.key for record in committed_records]
    assert len(outcomes.committed) == load.writers * load.events_per_writer, note
    assert not outcomes.indeterminate, note
    current_position = await store.current_position()
    for reader in readers:
        delivered = [r.key for r in records if r.op == "deliver" and r.proc == reader.name]
        result = check_delivery(
            committed=outcomes.committed,
            failed=outcomes.failed,
            delivered=delivered,
            expected_order=commit_order,
        )
        assert result.ok, f"{reader.name}: {result} {note}"
        assert reader.order_violations == 0, f"{reader.name} went back in position {note}"
        assert reader.checkpoint == current_position, f"{reader.name} stopped short {note}"
    # and the run really had rolled-back positions below committed ones
    async with pg_engine.connect() as connection:
        positions = list(await connection.scalars(select(events_table.c.position)))
    rolled_back = sum(tally.rolled_back_transactions for tally in tallies)
    assert rolled_back > 0, f"no transaction rolled back {note}"
    assert position_gaps(positions) > 0, f"no gap in the position column {note}"
    lowest_rolled_back = min(p for tally in tallies for p in tally.rolled_back_positions)
    assert lowest_rolled_back < current_position, note


async def test_a_writer_behind_a_slow_one_waits_and_the_reader_gets_both_in_commit_order(
    pg_engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    # given: a slow writer that appended and keeps its transaction open
    store = SQLAlchemyEventStore(pg_engine)
    reader = CatchUpReader(store, "reader", random.Random(0))
    slow_events = [Appended(writer="slow", number=n) for n in range(3)]
    slow = SlowWriter(pg_engine, "slow", slow_events).start()
    await slow.wait_appended()
    observer = await connect(postgres_database.dsn, application_name="r1_observer")
    try:
        # when: a later writer appends to another stream
        later_events = [Appended(writer="later", number=n) for n in range(2)]
        later = asyncio.create_task(store.append("later", later_events, expected_version=0))
        await eventually(lambda: _waiting(observer, 1), "the later writer waiting for the lock")
        # then: it waits for the append lock, and the reader sees neither
        assert not later.done()
        assert await reader.poll(limit=100) == []
        # when the slow writer commits
        await slow.commit()
        await asyncio.wait_for(later, 60)
        # then the reader gets both, the slow writer's first
        await reader.poll(limit=100)
        assert reader.delivered_keys == keys(slow_events) + keys(later_events)
    finally:
        await slow.cancel()
        await observer.close()


async def test_three_slow_writers_are_delivered_one_commit_at_a_time_and_never_skipped(
    pg_engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    # given: three slow writers that each hold the append lock once they get it,
    # queued behind the first, and a fast writer queued among them
    store = SQLAlchemyEventStore(pg_engine)
    reader = CatchUpReader(store, "reader", random.Random(0))
    slow = [
        SlowWriter(
            pg_engine, f"slow-{n}", [Appended(writer=f"slow-{n}", number=k) for k in range(2)]
        )
        for n in range(3)
    ]
    fast_events = [Appended(writer="fast", number=k) for k in range(2)]
    observer = await connect(postgres_database.dsn, application_name="r1_observer")
    fast: asyncio.Task[object] | None = None
    try:
        await slow[0].start().wait_appended()
        slow[1].start()
        fast = asyncio.create_task(store.append("fast", fast_events, expected_version=0))
        slow[2].start()
        await eventually(lambda: _waiting(observer, 3), "three writers waiting for the lock")
        assert await reader.poll(limit=100) == []
        # when: whichever slow writer holds the lock commits, one at a time
        expected: list[str] = []
        pending = list(slow)
        for _ in range(len(slow)):  # bounded: one commit per slow writer
            holder = await _next_holder(pending)
            if fast.done() and keys(fast_events)[0] not in expected:
                expected += keys(fast_events)  # it got the lock before this holder
            # then: the reader sees exactly what committed so far, nothing of the holder
            await _drain(reader)
            assert reader.delivered_keys == expected
            await holder.commit()
            pending.remove(holder)
            expected += keys(holder.events)
        await asyncio.wait_for(fast, 60)
        if keys(fast_events)[0] not in expected:
            expected += keys(fast_events)
        # and at the end everything, once, in commit order
        await _drain(reader)
        assert reader.delivered_keys == expected
        assert len(expected) == 8
    finally:
        for writer in slow:
            await writer.cancel()
        if fast is not None:
            fast.cancel()
            await asyncio.gather(fast, return_exceptions=True)
        await observer.close()


async def test_a_reader_passes_the_gap_a_rolled_back_append_left_below_a_committed_one(
    pg_engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    # given: an append that took positions and is still open, a later writer waiting
    store = SQLAlchemyEventStore(pg_engine)
    reader = CatchUpReader(store, "reader", random.Random(0))
    doomed = SlowWriter(
        pg_engine, "doomed", [Appended(writer="doomed", number=n) for n in range(5)]
    )
    await doomed.start().wait_appended()
    observer = await connect(postgres_database.dsn, application_name="r1_observer")
    try:
        kept_events = [Appended(writer="kept", number=n) for n in range(2)]
        kept = asyncio.create_task(store.append("kept", kept_events, expected_version=0))
        await eventually(lambda: _waiting(observer, 1), "the later writer waiting for the lock")
        # when: the first rolls back and the later one commits above its positions
        await doomed.roll_back()
        stored = await asyncio.wait_for(kept, 60)
        # then: the reader gets the committed events and its checkpoint passes the gap
        await _drain(reader)
        assert reader.delivered_keys == keys(kept_events)
        assert min(event.position for event in stored) > max(e.position for e in doomed.stored)
        assert reader.checkpoint == await store.current_position()
        # and it goes on past the gap with the next commit
        after = [Appended(writer="after", number=0)]
        await store.append("after", after, expected_version=0)
        await _drain(reader)
        assert reader.delivered_keys == keys(kept_events) + keys(after)
    finally:
        await doomed.cancel()
        await observer.close()


async def test_a_reader_restarted_in_the_middle_of_a_big_transaction_resumes_without_repeat_or_skip(
    pg_engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    # given: a few events, then one transaction of 50 events
    store = SQLAlchemyEventStore(pg_engine)
    before = [Appended(writer="before", number=n) for n in range(5)]
    await store.append("before", before, expected_version=0)
    big = [Appended(writer="big", number=n) for n in range(50)]
    async with SQLAlchemyUnitOfWork(pg_engine) as uow:
        with command_scope(uow):
            await store.append("big", big, expected_version=0)
        await uow.commit()
    # when: a reader reads two batches of 10, then "restarts": a new engine and
    # store, resuming from the checkpoint it saved
    first = CatchUpReader(store, "before restart", random.Random(0))
    for _ in range(2):
        assert len(await first.poll(limit=10)) == 10
    saved_checkpoint = first.checkpoint
    restarted_engine = create_engine(postgres_database.sqlalchemy_url)
    try:
        restarted = CatchUpReader(
            SQLAlchemyEventStore(restarted_engine),
            "after restart",
            random.Random(0),
            checkpoint=saved_checkpoint,
        )
        late = [Appended(writer="late", number=0)]
        await store.append("late", late, expected_version=0)
        await _drain(restarted, limit=10)
    finally:
        await restarted_engine.dispose()
    # then: together they delivered everything once, in order
    delivered = first.delivered_keys + restarted.delivered_keys
    assert delivered == keys(before) + keys(big) + keys(late)
    assert first.order_violations == restarted.order_violations == 0


async def _waiting(observer: asyncpg.Connection, count: int) -> bool:
    return await lock_waiters(observer) >= count


async def _next_holder(pending: list[SlowWriter]) -> SlowWriter:
    """Wait until one of the pending slow writers holds the lock; return it."""
    await eventually(
        lambda: any(writer.appended.is_set() for writer in pending), "a slow writer appending"
    )
    holders = [writer for writer in pending if writer.appended.is_set()]
    assert len(holders) == 1, "two writers hold the append lock at once"
    return holders[0]


async def _drain(reader: CatchUpReader, limit: int = 100) -> None:
    """Poll until a poll comes back empty (bounded)."""
    for _ in range(10_000):
        if not await reader.poll(limit=limit):
            return
    raise AssertionError(f"{reader.name} never caught up")
