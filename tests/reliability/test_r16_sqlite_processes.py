"""R16: SQLite, the embedded default, under several writer processes.

Four processes append to random streams of one SQLite file (WAL, ``busy_timeout``
5000 ms, every write transaction opened with ``BEGIN IMMEDIATE``) while a reader
in the test process follows the global log. No caller may see ``database is
locked``; positions are contiguous (one writer at a time, nothing rolled back) and
the reader gets every event once, in position order. Then a writer is SIGKILLed
while it holds its write transaction open: the file must open cleanly, pass
``PRAGMA integrity_check``, hold none of the killed transaction's events, and let
the writer that queued behind it carry on.

Not covered here, as the pieces do not exist yet: RELIABILITY.md's projection
worker and scheduler running alongside, and R5's kill test on the SQLite file.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.checker import check_delivery, outcomes_from_history
from harness.history import HistoryRecord, read_history
from harness.workers import WorkerProcess
from scenario_support import (
    Appended,
    CatchUpReader,
    eventually,
    failure_note,
    keys,
)
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.failpoints import FAILPOINTS_VARIABLE
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore, create_engine, upgrade_schema
from cqrs_ddd_persistence_sqlalchemy.schema import events as events_table

WORKER = Path(__file__).with_name("workers_sqlite_append.py")
BUSY_TIMEOUT_MS = 5_000


@dataclass(frozen=True, slots=True)
class Load:
    processes: int
    appends: int
    deadline_seconds: float
    streams: int = 10


CI = Load(processes=4, appends=250, deadline_seconds=120)
SOAK = Load(processes=4, appends=2_500, deadline_seconds=900)


def writer(
    tmp_path: Path, url: str, mode: str, proc: str, *extra: str, env: dict[str, str] | None = None
) -> WorkerProcess:
    return WorkerProcess.python(
        WORKER,
        mode,
        *("--url", url, "--history", str(tmp_path / "history.jsonl"), "--proc", proc),
        *extra,
        env=env,
        log_dir=tmp_path,
        name=proc,
    )


async def all_positions(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        query = select(events_table.c.position).order_by(events_table.c.position)
        return list(await connection.scalars(query))


def unknown_outcomes(records: list[HistoryRecord]) -> list[HistoryRecord]:
    """Return the ``info`` records: appends whose caller got an error other than a conflict."""
    return [record for record in records if record.op == "append" and record.phase == "info"]


@pytest.mark.parametrize(
    "load",
    [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)],
)
async def test_writer_processes_on_one_file_never_see_busy_and_a_reader_gets_everything_once(
    tmp_path: Path, seed: int, load: Load
) -> None:
    # given: one SQLite file in WAL mode, four writer processes ready to start together
    note = failure_note(seed)
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.sqlite'}"
    engine = create_engine(url, busy_timeout_ms=BUSY_TIMEOUT_MS)
    await upgrade_schema(engine)
    async with engine.connect() as connection:
        assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
    go = tmp_path / "go"
    workers = [
        writer(
            tmp_path,
            url,
            "spread",
            f"p{number}",
            *("--count", str(load.appends), "--streams", str(load.streams)),
            *("--seed", str(seed), "--busy-timeout-ms", str(BUSY_TIMEOUT_MS), "--go", str(go)),
        )
        for number in range(load.processes)
    ]
    store = SQLAlchemyEventStore(engine)
    reader = CatchUpReader(store, "reader", random.Random(seed))
    writers_done = asyncio.Event()
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            await worker.wait_for_output("ready")
        # when: they all append at once while the reader follows
        following = asyncio.create_task(reader.follow(writers_done, within=load.deadline_seconds))
        go.touch()
        try:
            codes = [await worker.wait(load.deadline_seconds) for worker in workers]
        finally:
            writers_done.set()
        await following
    finally:
        for worker in workers:
            if worker.is_running:
                await worker.kill()
    # then: every process ended well and no caller saw an error but conflicts
    assert codes == [0] * load.processes, [w.stderr()[-2000:] for w in workers]
    records = read_history(tmp_path / "history.jsonl")
    assert unknown_outcomes(records) == [], f"errors reached the callers {note}"
    outcomes = outcomes_from_history(records, op="append")
    assert not outcomes.failed, note
    assert not outcomes.indeterminate, note
    # and positions are contiguous, one writer at a time
    positions = await all_positions(engine)
    assert positions == list(range(1, len(outcomes.committed) + 1)), note
    # and the reader got each committed event once, in position order
    committed = sorted(
        (r for r in records if r.op == "append" and r.phase == "ok"),
        key=lambda record: int(str(record.extra["position"])),
    )
    result = check_delivery(
        committed=outcomes.committed,
        delivered=reader.delivered_keys,
        expected_order=[record.key for record in committed],
    )
    assert result.ok, f"{result} {note}"
    assert reader.order_violations == 0, note
    assert reader.checkpoint == await store.current_position(), note
    # and the processes really interleaved
    switches = sum(1 for a, b in itertools.pairwise(committed) if a.proc != b.proc)
    assert switches > load.processes, f"the writers hardly overlapped ({switches}) {note}"
    await engine.dispose()


def write_lock_is_free(path: Path) -> bool:
    """Try to start a write transaction without waiting; tell whether it could."""
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
        return False
    else:
        connection.execute("ROLLBACK")
        return True
    finally:
        connection.close()


def integrity_check(path: Path) -> list[str]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]
    finally:
        connection.close()


async def test_a_writer_killed_mid_transaction_leaves_a_sound_file_and_the_queued_writer_goes_on(
    tmp_path: Path, seed: int
) -> None:
    # given: a file with committed events
    note = failure_note(seed)
    path = tmp_path / "events.sqlite"
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url, busy_timeout_ms=BUSY_TIMEOUT_MS)
    await upgrade_schema(engine)
    before = [Appended(writer="before", number=n) for n in range(5)]
    await SQLAlchemyEventStore(engine).append("before", before, expected_version=0)
    await engine.dispose()
    # and a writer that appended inside a unit of work and now pauses before COMMIT
    victim = writer(
        tmp_path,
        url,
        "hold",
        "victim",
        "--stream",
        "victim",
        env={FAILPOINTS_VARIABLE: "unit_of_work.before_commit:sleep(120000)"},
    )
    go = tmp_path / "go"
    queued = writer(
        tmp_path,
        url,
        "spread",
        "queued",
        *("--count", "50", "--streams", "3", "--seed", str(seed)),
        *("--busy-timeout-ms", "60000", "--go", str(go)),
    )
    try:
        victim.start()
        await victim.wait_for_output("holding")
        held_ids = victim.stdout().split("holding ", 1)[1].split()
        assert not await asyncio.to_thread(write_lock_is_free, path), note
        # and another writer queued behind it
        queued.start()
        await queued.wait_for_output("ready")
        go.touch()
        history = tmp_path / "history.jsonl"

        def queued_is_waiting() -> bool:
            return any(r.proc == "queued" for r in read_history(history))

        await eventually(queued_is_waiting, "the queued writer trying to append")
        assert not [r for r in read_history(history) if r.proc == "queued" and r.phase == "ok"]
        # when: the victim is killed in the middle of its transaction
        assert await victim.kill() == -9, victim.stderr()
        # then: the queued writer carries on and finishes without an error
        assert await queued.wait(120) == 0, queued.stderr()[-2000:]
    finally:
        for worker in (victim, queued):
            if worker.is_running:
                await worker.kill()
    records = read_history(tmp_path / "history.jsonl")
    queued_records = [r for r in records if r.proc == "queued"]
    assert unknown_outcomes(queued_records) == [], note
    assert len(outcomes_from_history(queued_records, op="append").committed) > 0, note
    # and the file opens cleanly and is intact
    assert await asyncio.to_thread(integrity_check, path) == ["ok"], note
    engine = create_engine(url, busy_timeout_ms=BUSY_TIMEOUT_MS)
    try:
        store = SQLAlchemyEventStore(engine)
        # and the killed transaction left nothing, the committed events are all there
        assert await store.load_stream("victim") == [], note
        stored_keys = keys(await store.read_all(limit=10_000))
        assert not set(held_ids) & set(stored_keys), note
        queued_committed = outcomes_from_history(queued_records, op="append").committed
        assert set(stored_keys) == set(keys(before)) | queued_committed, note
        assert await all_positions(engine) == list(range(1, len(stored_keys) + 1)), note
        # and the next writer proceeds as usual
        after = [Appended(writer="after", number=0)]
        await store.append("after", after, expected_version=0)
        assert keys(await store.load_stream("after")) == keys(after)
    finally:
        await engine.dispose()
