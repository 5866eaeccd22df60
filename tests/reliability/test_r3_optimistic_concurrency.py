"""R3: optimistic concurrency, one winner per version, on SQLite and PostgreSQL.

Tasks that each read a stream's version and append at it race on one stream: the
stream's versions must stay contiguous and unique, every loser must get our typed
``ConcurrencyError`` naming stream, expected and actual version (never a driver
error), and an event-sourced counter must count exactly the successful appends.
On SQLite the same runs across four processes, where no caller may ever see
``database is locked``.
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from harness.history import read_history
from harness.pg_faults import connect
from harness.workers import WorkerProcess
from scenario_support import (
    REGISTRY,
    Appended,
    Counter,
    Incremented,
    SlowWriter,
    eventually,
    failure_note,
    lock_waiters,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core import EventSourcedLoader
from cqrs_ddd_core import ConcurrencyError, CqrsDddError
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)
from cqrs_ddd_testing import PostgresDatabase

pytest_plugins = ["sqlalchemy_fixtures"]

WORKER = Path(__file__).with_name("workers_sqlite_append.py")
STREAM = "counter-1"


@dataclass(frozen=True, slots=True)
class Contention:
    """The size of a contention run: tasks (or processes) times attempts each."""

    tasks: int
    attempts: int
    deadline_seconds: float


CI = Contention(tasks=8, attempts=100, deadline_seconds=120)
SOAK = Contention(tasks=16, attempts=500, deadline_seconds=1_200)
PROCESSES_CI = Contention(tasks=4, attempts=100, deadline_seconds=120)
PROCESSES_SOAK = Contention(tasks=4, attempts=500, deadline_seconds=600)


@dataclass
class Outcomes:
    successes: int = 0
    conflicts: list[ConcurrencyError] = field(default_factory=list)
    sent_versions: list[int] = field(default_factory=list)
    other_errors: list[BaseException] = field(default_factory=list)


async def increment_repeatedly(
    store: SQLAlchemyEventStore, attempts: int, outcomes: Outcomes
) -> None:
    """Read the counter's version, append one increment at it; ``attempts`` times."""
    counter = Counter(id=STREAM)
    for _ in range(attempts):
        fresh = await store.load_stream(STREAM, from_version=counter.version + 1)
        counter.replay_events(REGISTRY.from_stored(event) for event in fresh)
        expected = counter.version
        # a handler's work between load and save: other tasks run meanwhile (a
        # short read on SQLite runs on the loop's thread and yields nowhere)
        await asyncio.sleep(0)
        candidate = Counter(id=STREAM, version=expected, value=counter.value)
        candidate.trigger_event(Incremented())
        try:
            await store.append(STREAM, candidate.collect_events(), expected_version=expected)
        except ConcurrencyError as error:
            outcomes.conflicts.append(error)
            outcomes.sent_versions.append(expected)
        except Exception as error:  # noqa: BLE001 - anything else is a finding, kept for the check
            outcomes.other_errors.append(error)
        else:
            outcomes.successes += 1
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    "contention",
    [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)],
)
async def test_tasks_racing_on_one_stream_leave_one_winner_per_version_and_typed_conflicts(
    engine: AsyncEngine, seed: int, contention: Contention
) -> None:
    # given
    note = failure_note(seed)
    store = SQLAlchemyEventStore(engine)
    tallies = [Outcomes() for _ in range(contention.tasks)]
    # when: every task reads the version and appends at it, all at once
    async with asyncio.timeout(contention.deadline_seconds):
        await asyncio.gather(
            *(increment_repeatedly(store, contention.attempts, tally) for tally in tallies)
        )
    # then: versions 1..S, one per successful append, and the counter counted them all
    successes = sum(tally.successes for tally in tallies)
    stream = await store.load_stream(STREAM)
    assert [event.version for event in stream] == list(range(1, successes + 1)), note
    counter = await EventSourcedLoader(Counter, store, REGISTRY).load(STREAM)
    assert counter.value == counter.version == successes, note
    # and every failure was a typed conflict that names what was stale
    conflicts = [error for tally in tallies for error in tally.conflicts]
    assert [e for tally in tallies for e in tally.other_errors] == [], note
    assert successes + len(conflicts) == contention.tasks * contention.attempts, note
    assert conflicts, f"the tasks never conflicted: the race did not happen {note}"
    sent = [version for tally in tallies for version in tally.sent_versions]
    for error, expected in zip(conflicts, sent, strict=True):
        assert error.stream_id == STREAM, note
        assert error.expected_version == expected, note
        assert error.actual_version > expected, f"{error} {note}"


async def test_four_simultaneous_appends_at_one_version_give_one_winner_and_three_conflicts(
    engine: AsyncEngine, seed: int
) -> None:
    # given
    note = failure_note(seed)
    store = SQLAlchemyEventStore(engine)
    rounds = 10
    for round_number in range(rounds):  # bounded: ten rounds on one stream
        barrier = asyncio.Barrier(4)
        expected = round_number

        async def append_after_barrier(
            writer: int, version: int = expected, barrier: asyncio.Barrier = barrier
        ) -> str:
            await barrier.wait()
            event = Appended(writer=f"writer-{writer}", number=version)
            try:
                await store.append(STREAM, [event], expected_version=version)
            except ConcurrencyError as error:
                return f"conflict {error.expected_version}->{error.actual_version}"
            return "ok"

        # when
        async with asyncio.timeout(60):
            outcomes = await asyncio.gather(*(append_after_barrier(w) for w in range(4)))
        # then: one winner; each loser told the version it expected and the actual one
        conflict = f"conflict {expected}->{expected + 1}"
        assert sorted(outcomes) == [conflict, conflict, conflict, "ok"], note
    versions = [event.version for event in await store.load_stream(STREAM)]
    assert versions == list(range(1, rounds + 1)), note


@pytest.mark.parametrize(
    "contention",
    [
        pytest.param(PROCESSES_CI, id="ci"),
        pytest.param(PROCESSES_SOAK, id="soak", marks=pytest.mark.soak),
    ],
)
async def test_processes_racing_on_one_sqlite_stream_never_see_database_is_locked(
    tmp_path: Path, seed: int, contention: Contention
) -> None:
    # given: four writer processes on one SQLite file, started together
    note = failure_note(seed)
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.sqlite'}"
    engine = create_engine(url)
    await upgrade_schema(engine)
    history, go = tmp_path / "history.jsonl", tmp_path / "go"
    workers = [
        WorkerProcess.python(
            WORKER,
            "contend",
            *("--url", url, "--history", str(history), "--proc", f"p{number}"),
            *("--count", str(contention.attempts), "--stream", STREAM, "--go", str(go)),
            log_dir=tmp_path,
            name=f"p{number}",
        )
        for number in range(contention.tasks)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            await worker.wait_for_output("ready")
        # when
        go.touch()
        codes = [await worker.wait(contention.deadline_seconds) for worker in workers]
        # then: each process ended well
        assert codes == [0] * len(workers), [w.stderr()[-2000:] for w in workers]
        records = [r for r in read_history(history) if r.op == "increment"]
        phases = Tally(record.phase for record in records)
        store = SQLAlchemyEventStore(engine)
        stream = await store.load_stream(STREAM)
        # and versions are contiguous, one per successful append
        assert [event.version for event in stream] == list(range(1, phases["ok"] + 1)), note
        counter = await EventSourcedLoader(Counter, store, REGISTRY).load(STREAM)
        assert counter.value == phases["ok"], note
        # and every failure was a typed conflict; no caller saw "database is locked"
        unknown = [record.extra for record in records if record.phase == "info"]
        locked = [extra for extra in unknown if "locked" in str(extra.get("message", ""))]
        assert locked == [], f"{len(locked)} database-is-locked errors {note}"
        assert unknown == [], note
        failures = [record.extra for record in records if record.phase == "fail"]
        assert {extra["error"] for extra in failures} <= {"ConcurrencyError"}, note
        assert all(
            int(str(f["actual"])) > int(str(f["expected"])) and f["stream"] == STREAM
            for f in failures
        ), note
        assert phases["ok"] + len(failures) == contention.tasks * contention.attempts, note
        assert failures, f"the processes never conflicted {note}"
    finally:
        for worker in workers:
            if worker.is_running:
                await worker.kill()
        await engine.dispose()


async def test_a_batch_that_waited_for_the_lock_behind_a_conflicting_commit_is_a_concurrency_error(
    pg_engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    # given: a stream at version 1, and a writer holding the append lock with version 2
    store = SQLAlchemyEventStore(pg_engine)
    await store.append("s-1", [Appended(writer="base", number=0)], expected_version=0)
    first = SlowWriter(pg_engine, "s-1", [Appended(writer="first", number=1)], expected_version=1)
    await first.start().wait_appended()
    observer = await connect(postgres_database.dsn, application_name="r3_observer")
    try:
        # when: a two-event batch, also at version 1, waits for the lock; then the first commits
        batch = [Appended(writer="second", number=n) for n in (1, 2)]
        second = asyncio.create_task(store.append("s-1", batch, expected_version=1))
        await eventually(lambda: _lock_waiters_at_least(observer, 1), "the second waiting")
        await first.commit()
        # then: the second is refused as stale, naming the versions
        with pytest.raises(ConcurrencyError) as refused:
            await asyncio.wait_for(second, 60)
        assert (refused.value.expected_version, refused.value.actual_version) == (1, 2)
    finally:
        await first.cancel()
        await observer.close()
    assert [event.version for event in await store.load_stream("s-1")] == [1, 2]


async def test_a_unit_of_work_committed_after_a_refused_append_stores_nothing_of_it(
    pg_engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    # given: a stream at version 1, and a writer holding the append lock with version 2
    store = SQLAlchemyEventStore(pg_engine)
    await store.append("s-1", [Appended(writer="base", number=0)], expected_version=0)
    first = SlowWriter(pg_engine, "s-1", [Appended(writer="first", number=1)], expected_version=1)
    await first.start().wait_appended()
    observer = await connect(postgres_database.dsn, application_name="r3_observer")

    async def append_in_a_command_that_carries_on() -> CqrsDddError | None:
        refusal = None
        async with SQLAlchemyUnitOfWork(pg_engine) as uow:
            with command_scope(uow):
                try:
                    await store.append(
                        "s-1",
                        [Appended(writer="second", number=n) for n in (1, 2)],
                        expected_version=1,
                    )
                except CqrsDddError as error:  # the command handles the refusal and goes on
                    refusal = error
            await uow.commit()
        return refusal

    try:
        # when: a two-event batch in a unit of work waits for the lock, the first commits,
        # and the command commits its unit of work after catching the refusal
        second = asyncio.create_task(append_in_a_command_that_carries_on())
        await eventually(lambda: _lock_waiters_at_least(observer, 1), "the second waiting")
        await first.commit()
        refusal = await asyncio.wait_for(second, 60)
    finally:
        await first.cancel()
        await observer.close()
    # then: the append was refused and nothing of it was stored
    assert refusal is not None
    stored = await store.load_stream("s-1")
    assert [(event.version, event.payload["writer"]) for event in stored] == [
        (1, "base"),
        (2, "first"),
    ]


async def _lock_waiters_at_least(observer: asyncpg.Connection, count: int) -> bool:
    return await lock_waiters(observer) >= count
