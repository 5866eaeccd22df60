"""R2: a stuck transaction stalls writers visibly, never readers silently, on PostgreSQL.

Adapted to the event store's strategy. RELIABILITY.md's R2 is written for the
xid8 read barrier, where a transaction that holds an xid stalls every catch-up
reader. Our store serialises appends with a transaction-scoped advisory lock
instead, so the blocker that matters is a transaction that *appended* and then
sits idle holding that lock: other writers must then fail with the typed
``LockTimeoutError`` after ``lock_timeout``, readers deliver nothing new and skip
nothing, and once the blocker commits or rolls back everything appended later is
delivered exactly once. The control cases show the strategy's advantage: a
transaction that merely holds an xid or a row lock (which would pin
``pg_snapshot_xmin`` and stall an xid8 reader) or an idle read-only one blocks
neither appends nor readers. The tests run serially in this module.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import pytest
from harness.checker import check_delivery
from harness.pg_faults import (
    HeldTransaction,
    connect,
    hold_read_only_transaction,
    hold_xid,
    idle_in_transaction,
    snapshot_xmin,
)
from scenario_support import (
    Appended,
    CatchUpReader,
    SlowWriter,
    failure_note,
    keys,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core import CqrsDddError
from cqrs_ddd_persistence_sqlalchemy import (
    LockTimeoutError,
    SQLAlchemyEventStore,
    create_engine,
)
from cqrs_ddd_testing import PostgresDatabase

LOCK_TIMEOUT_MS = 500
"""The writers' ``lock_timeout``: short, so a stall surfaces quickly."""

RECOVERY_SECONDS = 30.0
"""Liveness deadline for delivering everything once the blocker has ended."""


@dataclass(frozen=True, slots=True)
class Stall:
    """The size of a stall run."""

    stall_seconds: float
    events: int
    writers: int = 4
    batch: int = 10
    committed_before: int = 100


CI = Stall(stall_seconds=3, events=1_000)
SOAK = Stall(stall_seconds=60, events=10_000)


@pytest.fixture
async def writers_engine(
    pg_engine: AsyncEngine, postgres_database: PostgresDatabase
) -> AsyncIterator[AsyncEngine]:
    """An engine on the same database whose writers give up after 500 ms of lock wait."""
    engine = create_engine(
        postgres_database.sqlalchemy_url,
        lock_timeout_ms=LOCK_TIMEOUT_MS,
        application_name="r2_writers",
    )
    yield engine
    await engine.dispose()


def planned_batches(stall: Stall, writer: int) -> list[list[Appended]]:
    per_writer = stall.events // stall.writers
    name = f"writer-{writer}"
    return [
        [Appended(writer=name, number=start + k) for k in range(stall.batch)]
        for start in range(0, per_writer, stall.batch)
    ]


@dataclass
class StallTally:
    lock_timeouts: list[LockTimeoutError] = field(default_factory=list)
    other_errors: list[CqrsDddError] = field(default_factory=list)
    appended_during_stall: int = 0


async def keep_trying(
    store: SQLAlchemyEventStore, stream: str, batch: list[Appended], until: float
) -> StallTally:
    """Try to append ``batch`` again and again until the monotonic clock reaches ``until``."""
    tally = StallTally()
    for _ in range(1_000):  # bounded: each attempt waits out the lock timeout
        if time.monotonic() >= until:
            break
        try:
            await store.append(stream, batch, expected_version=0)
        except LockTimeoutError as error:
            tally.lock_timeouts.append(error)
        except CqrsDddError as error:
            tally.other_errors.append(error)
            await asyncio.sleep(0.05)
        else:
            tally.appended_during_stall += 1
            break
    return tally


async def poll_until(reader: CatchUpReader, until: float) -> int:
    """Poll every 10 ms until ``until``; return how many events arrived meanwhile."""
    before = len(reader.delivered)
    for _ in range(100_000):  # bounded; the clock ends it first
        if time.monotonic() >= until:
            break
        await reader.poll()
        await asyncio.sleep(0.01)
    return len(reader.delivered) - before


@pytest.mark.parametrize("ending", ["commit", "rollback"])
@pytest.mark.parametrize(
    "stall",
    [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)],
)
async def test_an_idle_transaction_holding_the_append_lock_times_writers_out_and_loses_nothing(
    pg_engine: AsyncEngine, writers_engine: AsyncEngine, seed: int, stall: Stall, ending: str
) -> None:
    # given: committed events a reader has caught up with
    note = failure_note(seed)
    store = SQLAlchemyEventStore(pg_engine)
    writer_store = SQLAlchemyEventStore(writers_engine)
    early = [Appended(writer="early", number=n) for n in range(stall.committed_before)]
    for start in range(0, len(early), stall.batch):
        await writer_store.append(
            "early", early[start : start + stall.batch], expected_version=start
        )
    reader = CatchUpReader(store, "reader", random.Random(seed))
    await reader.follow(_done(), within=RECOVERY_SECONDS)
    checkpoint_before = reader.checkpoint
    # and a transaction that appended and then sits idle, holding the append lock
    blocker = SlowWriter(pg_engine, "blocker", [Appended(writer="blocker", number=0)]).start()
    try:
        await blocker.wait_appended()
        # when: writers keep trying to append through the stall while the reader polls
        plans = [planned_batches(stall, writer) for writer in range(stall.writers)]
        until = time.monotonic() + stall.stall_seconds
        async with asyncio.timeout(stall.stall_seconds + RECOVERY_SECONDS):
            tallies, delivered_during_stall = await asyncio.gather(
                asyncio.gather(
                    *(
                        keep_trying(writer_store, f"writer-{n}", plan[0], until)
                        for n, plan in enumerate(plans)
                    )
                ),
                poll_until(reader, until),
            )
        # then: every writer saw the typed lock timeout, and the reader got nothing new
        for number, tally in enumerate(tallies):
            assert tally.lock_timeouts, f"writer-{number} never timed out {note}"
            for error in tally.lock_timeouts:  # the error says what waited, and why
                assert f"writer-{number}" in error.operation, f"{error} {note}"
                assert "lock timeout" in error.detail, f"{error} {note}"
            assert tally.appended_during_stall == 0, f"writer-{number} got through {note}"
            assert tally.other_errors == [], f"writer-{number}: {tally.other_errors} {note}"
        assert delivered_during_stall == 0, note
        assert reader.checkpoint == checkpoint_before, note
        # when: the blocker ends and the writers append everything (the timed-out
        # batch again, same ids and expected version)
        if ending == "commit":
            await blocker.commit()
        else:
            await blocker.roll_back()
        writers_done = asyncio.Event()
        async with asyncio.timeout(RECOVERY_SECONDS * 4):
            await asyncio.gather(
                append_all_then_signal(writer_store, plans, writers_done),
                reader.follow(writers_done, within=RECOVERY_SECONDS * 4),
            )
    finally:
        await blocker.cancel()
    # then: everything committed is delivered once, in position order, the blocker's
    # event only if it committed
    written = [event for plan in plans for batch in plan for event in batch]
    blocker_keys = keys(blocker.events)
    committed = keys(early) + keys(written) + (blocker_keys if ending == "commit" else [])
    result = check_delivery(
        committed=committed,
        failed=blocker_keys if ending == "rollback" else [],
        delivered=reader.delivered_keys,
    )
    assert result.ok, f"{result} {note}"
    assert reader.order_violations == 0, note
    assert reader.checkpoint == await store.current_position(), note
    total_timeouts = sum(len(tally.lock_timeouts) for tally in tallies)
    print(f"lock timeouts during the stall: {total_timeouts}")  # noqa: T201


async def append_all(store: SQLAlchemyEventStore, stream: str, plan: list[list[Appended]]) -> None:
    version = 0
    for batch in plan:
        await store.append(stream, batch, expected_version=version)
        version += len(batch)


async def append_all_then_signal(
    store: SQLAlchemyEventStore, plans: list[list[list[Appended]]], done: asyncio.Event
) -> None:
    try:
        await asyncio.gather(
            *(append_all(store, f"writer-{n}", plan) for n, plan in enumerate(plans))
        )
    finally:
        done.set()


def _done() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


Holder = Callable[[str], AbstractAsyncContextManager[HeldTransaction]]

HOLDERS: dict[str, Holder] = {
    "a transaction holding an xid": hold_xid,
    "a session idle in a transaction holding a row lock": idle_in_transaction,
    "an idle read-only transaction": hold_read_only_transaction,
}


@pytest.mark.parametrize("holder", list(HOLDERS))
async def test_a_transaction_that_never_appended_blocks_neither_writers_nor_readers(
    pg_engine: AsyncEngine,
    writers_engine: AsyncEngine,
    postgres_database: PostgresDatabase,
    seed: int,
    holder: str,
) -> None:
    """With the lock strategy only the append lock serialises writers.

    A held xid or row lock pins ``pg_snapshot_xmin`` (the first two holders) and
    would stall every reader of an xid8-barrier store until it ends; here writers
    and readers go on as if it were not there.
    """
    # given: the holder, idle in its transaction
    note = failure_note(seed)
    store = SQLAlchemyEventStore(pg_engine)
    writer_store = SQLAlchemyEventStore(writers_engine)
    reader = CatchUpReader(store, "reader", random.Random(seed))
    observer = await connect(postgres_database.dsn, application_name="r2_observer")
    try:
        async with HOLDERS[holder](postgres_database.dsn) as held:
            if held.xid is not None:  # the fault an xid8 reader would stall on is real
                assert await snapshot_xmin(observer) <= held.xid, note
            # when: writers append and the reader follows, all while it is open
            plan = planned_batches(Stall(stall_seconds=0, events=200, writers=1), 0)
            writers_done = asyncio.Event()
            async with asyncio.timeout(RECOVERY_SECONDS):
                await append_all(writer_store, "writer", plan)
                writers_done.set()
                await reader.follow(writers_done, within=RECOVERY_SECONDS)
            state = await observer.fetchval(
                "SELECT state FROM pg_stat_activity WHERE pid = $1", held.pid
            )
        # then: the holder was idle in its transaction throughout, and nothing waited
        assert state == "idle in transaction", note
        written = [event for batch in plan for event in batch]
        result = check_delivery(committed=keys(written), delivered=reader.delivered_keys)
        assert result.ok, f"{result} {note}"
    finally:
        await observer.close()
