"""R11: due commands run once across scheduler workers, never early, fenced after a lost lease.

Worker processes (`workers_scheduler.py`) run ``RunOnce`` commands
(`scheduler_support`) while the test schedules a burst due at one instant and a
stream spread over some seconds. One worker's clock runs 5 minutes fast. The
test SIGKILLs workers mid-run (restarting them) and SIGSTOPs one past its lease
while it runs commands, then lets it go on. At the end:

* every command is done and its effect (one event in its stream) happened once;
* no effect ran before its due time by the database's clock;
* a command was invoked again only when the run before was cut short: its
  worker was killed or stopped, or its completion was refused by the fence
  (with several kills, a command taken over after one kill can be in flight at
  the next, so R11's "at most twice" holds per fault);
* no completion was accepted from a worker that lost its lease: one commit per
  command, under the command's last fencing token, and the stopped worker's
  late completions were refused;
* every command finished within 60 s of its due time.

The claim check has 20 claimers with ``LIMIT 10`` race for due rows on
PostgreSQL: none gets more than 10, none gets a row another got. On SQLite, two
processes share one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
from harness.history import HistoryRecord, read_history
from harness.workers import WorkerProcess
from scenario_support import failure_note
from scheduler_support import build_service, database_clock, schedule_all, stream_of
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_persistence_sqlalchemy import create_engine, read_only, upgrade_schema
from cqrs_ddd_persistence_sqlalchemy.schema import events as event_rows
from cqrs_ddd_persistence_sqlalchemy.schema import scheduled_commands as schedule_rows
from cqrs_ddd_testing import PostgresDatabase

WORKER = Path(__file__).with_name("workers_scheduler.py")
LEASE_TTL = 3.0
START_DEADLINE_SECONDS = 120.0
FAST_CLOCK_SECONDS = 300.0
BUSY_DEADLINE_SECONDS = 15.0
"""How long to wait for the worker to be stopped to be running a command."""


@dataclass(frozen=True, slots=True)
class Load:
    at_once: int
    spread: int
    spread_seconds: float
    kills: int
    deadline_seconds: float
    work: float = 0.05
    """Seconds each command takes inside its transaction (on SQLite it holds the write lock)."""


CI = Load(at_once=1_000, spread=1_000, spread_seconds=10.0, kills=3, deadline_seconds=180.0)
SOAK = Load(at_once=10_000, spread=10_000, spread_seconds=60.0, kills=10, deadline_seconds=900.0)
SQLITE_CI = Load(
    at_once=300, spread=300, spread_seconds=10.0, kills=1, deadline_seconds=180.0, work=0.005
)


@dataclass
class Faults:
    """The pids of workers killed or stopped mid-run, and whether a stop caught work in flight."""

    killed: set[int]
    stopped: set[int]
    stop_caught_work: bool = False


class Scenario:
    """The worker processes of one run and the faults done to them."""

    def __init__(self, url: str, tmp_path: Path, workers: int, rng: random.Random) -> None:
        self.history = tmp_path / "history.jsonl"
        self.rng = rng
        self.faults = Faults(set(), set())
        self.processes = [
            WorkerProcess.python(
                WORKER,
                *("--url", url, "--worker-id", f"w{number}", "--history", str(self.history)),
                *("--lease-ttl", str(LEASE_TTL)),
                *(("--clock-skew", str(FAST_CLOCK_SECONDS)) if number == 0 else ()),
                log_dir=tmp_path,
                name=f"scheduler-{number}",
            )
            for number in range(workers)
        ]

    async def start(self) -> None:
        for process in self.processes:
            process.start()
        for process in self.processes:
            await process.wait_for_output("started", within=START_DEADLINE_SECONDS)

    async def kill_one(self) -> None:
        victim = self.rng.choice(self.processes)
        assert victim.pid is not None
        self.faults.killed.add(victim.pid)
        assert await victim.kill() == -signal.SIGKILL
        victim.start()
        await victim.wait_for_output("started", within=START_DEADLINE_SECONDS)

    async def stop_one_past_its_lease(self) -> None:
        """SIGSTOP a worker while it runs a command, past its lease, then SIGCONT it."""
        victim = self.processes[-1]
        assert victim.pid is not None
        proc = f"{victim.name.replace('scheduler-', 'w')}/{victim.pid}"
        caught = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(BUSY_DEADLINE_SECONDS):
                while not caught:
                    if self._busy(proc):
                        os.killpg(victim.pid, signal.SIGSTOP)
                        await asyncio.sleep(0.05)  # the stop has landed: the file is still
                        caught = self._busy(proc)  # the command was still in flight at the stop
                        if not caught:
                            os.killpg(victim.pid, signal.SIGCONT)
                    await asyncio.sleep(0.005)
        if not caught:
            os.killpg(victim.pid, signal.SIGSTOP)
        self.faults.stopped.add(victim.pid)
        self.faults.stop_caught_work = caught
        await asyncio.sleep(LEASE_TTL * 2.5)
        os.killpg(victim.pid, signal.SIGCONT)

    def _busy(self, proc: str) -> bool:
        """Whether the worker's latest record is a handler call: a command is in flight."""
        latest = [record for record in read_history(self.history) if record.proc == proc]
        return bool(latest) and latest[-1].op == "run"

    async def stop_all(self) -> None:
        for process in self.processes:
            assert await process.stop() == 0, process.stderr()[-2000:]

    async def kill_all(self) -> None:
        for process in self.processes:
            if process.is_running:
                await process.kill()


async def done_count(engine: AsyncEngine, ids: set[UUID]) -> int:
    async with read_only(engine).connect() as connection:
        found = await connection.execute(
            select(schedule_rows.c.schedule_id).where(schedule_rows.c.status == "done")
        )
        return sum(1 for (schedule_id,) in found if schedule_id in ids)


async def wait_until_done(
    engine: AsyncEngine, ids: set[UUID], at_least: int, within: float
) -> None:
    async with asyncio.timeout(within):
        while await done_count(engine, ids) < at_least:  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.1)


async def run_scenario(
    url: str, engine: AsyncEngine, tmp_path: Path, *, workers: int, load: Load, seed: int
) -> None:
    rng = random.Random(seed)
    note = failure_note(seed)
    scenario = Scenario(url, tmp_path, workers, rng)
    service = build_service(engine, None)
    await scenario.start()
    try:
        async with read_only(engine).connect() as connection:
            now = float(await connection.scalar(select(database_clock(engine))))  # type: ignore[call-overload]
        first_due = now + 3.0
        due_times = [first_due] * load.at_once + [
            first_due + load.spread_seconds * number / load.spread for number in range(load.spread)
        ]
        ids = set(await schedule_all(service, due_times, work=load.work, concurrency=8))
        total = len(ids)
        for kill in range(load.kills):
            await wait_until_done(engine, ids, total * (kill + 1) // (load.kills + 3), 60.0)
            await scenario.kill_one()
        await scenario.stop_one_past_its_lease()
        await wait_until_done(engine, ids, total, load.deadline_seconds)
        await scenario.stop_all()
    finally:
        await scenario.kill_all()
    await check(engine, ids, read_history(scenario.history), scenario.faults, note)


async def check(
    engine: AsyncEngine, ids: set[UUID], history: list[HistoryRecord], faults: Faults, note: str
) -> None:
    async with read_only(engine).connect() as connection:
        rows = {
            row.schedule_id: row
            for row in await connection.execute(select(schedule_rows))
            if row.schedule_id in ids
        }
        effects = (
            await connection.execute(
                select(event_rows.c.stream_id, event_rows.c.payload).where(
                    event_rows.c.stream_id.like("r11-%")
                )
            )
        ).all()
    # every command done, its effect exactly once
    assert Counter(row.status for row in rows.values()) == {"done": len(ids)}, note
    per_stream = Counter(stream for stream, _ in effects)
    assert per_stream == {stream_of(str(schedule_id)): 1 for schedule_id in ids}, note
    # never early, by the database's clock (one worker's own clock ran 5 minutes fast)
    early = [payload for _, payload in effects if payload["ran_at"] < payload["due_at"]]
    assert early == [], f"{len(early)} ran early: {early[:3]} {note}"
    late = [row for row in rows.values() if row.finished_at - row.due_at > 60.0]
    assert late == [], f"{len(late)} finished more than 60 s after due {note}"
    # invoked again only after the worker running it was killed or stopped
    invoked: defaultdict[str, list[str]] = defaultdict(list)
    commits: defaultdict[str, list[str]] = defaultdict(list)
    tokens: dict[tuple[str, str], int] = {}
    fenced: Counter[tuple[str, str]] = Counter()
    for record in history:
        key = str(record.key)
        if record.op == "run":
            invoked[key].append(record.proc)
        elif record.op == "commit":
            commits[key].append(record.proc)
        elif record.op == "complete" and record.phase == "invoke":
            tokens[(key, record.proc)] = int(str(record.extra["token"]))
        elif record.op == "complete" and record.phase == "fail":
            fenced[(key, record.proc)] += 1
    harmed = faults.killed | faults.stopped
    for key, procs in invoked.items():
        # an earlier run is explained by its worker's death or pause, or by the fence
        # refusing its completion (on SQLite a paused process holds the write lock,
        # so a healthy worker's lease can run out while it waits for it)
        refusals = Counter({proc: fenced[(key, proc)] for proc in procs})
        unexplained = []
        for proc in procs[:-1]:
            if int(proc.rsplit("/", 1)[1]) in harmed:
                continue
            if refusals[proc] > 0:
                refusals[proc] -= 1
                continue
            unexplained.append(proc)
        assert unexplained == [], f"{key} invoked again, unexplained: {procs} {note}"
    refused = sum(fenced.values())
    # no completion accepted from a fenced-out worker
    for key, procs in commits.items():
        assert len(procs) == 1, f"{key} committed by {procs} {note}"
        token = tokens.get((key, procs[0]))
        assert token == rows[UUID(key)].lease_token, f"{key}: committed token {token} {note}"
    if faults.stop_caught_work:
        assert refused >= 1, f"the stopped worker's late completions were not refused {note}"


@pytest.mark.parametrize("workers", [2, 4])
async def test_r11_due_commands_run_once_across_worker_processes(
    postgres_database: PostgresDatabase,
    pg_engine: AsyncEngine,
    tmp_path: Path,
    seed: int,
    workers: int,
) -> None:
    await run_scenario(
        postgres_database.sqlalchemy_url, pg_engine, tmp_path, workers=workers, load=CI, seed=seed
    )


@pytest.mark.soak
@pytest.mark.parametrize("workers", [2, 4])
async def test_r11_soak(
    postgres_database: PostgresDatabase,
    pg_engine: AsyncEngine,
    tmp_path: Path,
    seed: int,
    workers: int,
) -> None:
    await run_scenario(
        postgres_database.sqlalchemy_url, pg_engine, tmp_path, workers=workers, load=SOAK, seed=seed
    )


async def test_r11_two_processes_on_one_sqlite_file(tmp_path: Path, seed: int) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r11.db'}"
    engine = create_engine(url)
    try:
        await upgrade_schema(engine)
        await run_scenario(url, engine, tmp_path, workers=2, load=SQLITE_CI, seed=seed)
    finally:
        await engine.dispose()


async def test_r11_twenty_claimers_with_limit_ten_never_overreach(
    postgres_database: PostgresDatabase, tmp_path: Path
) -> None:
    engine = create_engine(postgres_database.sqlalchemy_url, pool_size=22)
    try:
        await upgrade_schema(engine)
        service = build_service(engine, None)
        scheduler = service.scheduler
        async with engine.connect() as connection:
            now = float(await connection.scalar(select(database_clock(engine))))  # type: ignore[call-overload]
        seen: set[UUID] = set()
        for _ in range(5):
            await schedule_all(service, [now - 1.0] * 150, work=0.0, concurrency=8)
            batches = await asyncio.gather(
                *(scheduler.claim(f"claimer-{number}", 10, 60.0) for number in range(20))
            )
            sizes = [len(batch) for batch in batches]
            claimed = [claim.schedule_id for batch in batches for claim in batch]
            assert max(sizes) <= 10, sizes
            assert len(claimed) == len(set(claimed)), "a row was claimed twice"
            assert not seen & set(claimed), "a claimed row was claimed again while leased"
            seen.update(claimed)
            assert len(claimed) >= 100, f"only {len(claimed)} of 150 due rows claimed: {sizes}"
            for batch in batches:  # finish them, as a worker would
                for claim in batch:
                    await scheduler.complete(claim)
    finally:
        await engine.dispose()
