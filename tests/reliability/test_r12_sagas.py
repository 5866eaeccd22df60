"""R12: sagas across worker processes, under SIGKILLs, end with one effect per step.

Two saga worker processes (`workers_saga.py`) run 100 four-step sagas (30 of
them refused at a random step) against one PostgreSQL database. Both deliver
a ``Begin`` of their own for every saga at the same instant, so every saga
receives two correlated starting events at once. The test SIGKILLs the
workers: one is armed, start after start, with a crash at each of the saga
manager's failpoints (``saga.after_command_outbox_before_ack``,
``saga.after_step_effect_before_state``, ``saga.mid_compensation``); the other
is killed at random moments. Each is started again, redelivers its ``Begin``
events and resumes stalled sagas every second. At the end:

* every saga ended within 120 s of the last kill: completed, or compensated
  when its key names a refused step;
* one saga instance per key;
* no command took effect twice (each effect a row keyed by the command's id,
  which the handler writes in its own transaction), every step that took
  effect in a compensated saga was compensated once, latest first, and no
  step took effect after its saga began compensating (``saga_problems`` of
  the saga test kit); a completed saga took its four steps and a compensated
  one the steps before the refused one;
* each (saga, step, forward or undo) took effect under one command id: the
  ids are deterministic, so a step sent again is recognised;
* commands were sent again (more attempts committed than effects: the
  handlers' dedupe was exercised), each failpoint fired (the armed worker died
  at it), and at least one random kill landed while sagas were unfinished.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.workers import WorkerProcess
from saga_support import (
    R12Saga,
    attempt_count,
    create_effects_table,
    effect_ids,
    effects,
    failing_step,
)
from scenario_support import failure_note
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.failpoints import FAILPOINTS_VARIABLE
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemySagaRepository, read_only
from cqrs_ddd_persistence_sqlalchemy.schema import sagas as saga_rows
from cqrs_ddd_testing import PostgresDatabase
from cqrs_ddd_testing.sagas import saga_problems

WORKER = Path(__file__).with_name("workers_saga.py")
START_DEADLINE_SECONDS = 120.0
FAILPOINTS = (
    "saga.after_command_outbox_before_ack",
    "saga.after_step_effect_before_state",
    "saga.mid_compensation",
)


@dataclass(frozen=True, slots=True)
class Load:
    sagas: int
    random_kills: int
    work: float
    """Seconds each step's handler holds its transaction."""
    settle_seconds: float = 120.0
    kill_gap: tuple[float, float] = (0.2, 0.8)
    """Seconds between random kills, drawn in this range: short enough to land mid-run."""


CI = Load(sagas=100, random_kills=5, work=0.02)
SOAK = Load(sagas=1_000, random_kills=47, work=0.1, settle_seconds=600.0, kill_gap=(0.05, 0.2))


def keys_for(load: Load, rng: random.Random) -> list[str]:
    """One key per saga; 30% name a step (1 to 4) that will be refused."""
    failing = set(rng.sample(range(load.sagas), k=load.sagas * 3 // 10))
    return [
        f"saga{number}-fail{rng.randint(1, 4)}" if number in failing else f"saga{number}-ok"
        for number in range(load.sagas)
    ]


class Scenario:
    """The two worker processes and the kills done to them."""

    def __init__(
        self, url: str, engine: AsyncEngine, tmp_path: Path, load: Load, keys: list[str]
    ) -> None:
        self.keys_file = tmp_path / "keys.txt"
        self.keys_file.write_text("\n".join(keys))
        self.start_at = time.time() + 8.0
        self.kills = 0
        self.failpoints_fired: list[str] = []
        self.ended_at_kills: list[int] = []
        self.engine = engine
        self.processes = [
            WorkerProcess.python(
                WORKER,
                *("--url", url, "--source", f"w{number}", "--keys", str(self.keys_file)),
                *("--start-at", str(self.start_at), "--work", str(load.work)),
                log_dir=tmp_path,
                name=f"saga-{number}",
            )
            for number in range(2)
        ]

    async def start(self) -> None:
        armed, _ = self.processes
        armed.env = {FAILPOINTS_VARIABLE: f"{FAILPOINTS[0]}:crash@40"}
        for process in self.processes:
            process.start()
        for process in self.processes:
            await process.wait_for_output("started", within=START_DEADLINE_SECONDS)

    async def crash_at_each_failpoint(self) -> None:
        """Let the armed worker die at each failpoint in turn, starting it again each time."""
        armed, _ = self.processes
        hits = {FAILPOINTS[1]: 30, FAILPOINTS[2]: 2}
        for failpoint in FAILPOINTS:
            status = await armed.wait(within=60.0)
            assert status == -signal.SIGKILL, (
                f"{failpoint}: exit {status}: {armed.stderr()[-2000:]}"
            )
            self.failpoints_fired.append(failpoint)
            self.kills += 1
            following = FAILPOINTS.index(failpoint) + 1
            armed.env = {}
            if following < len(FAILPOINTS):
                upcoming = FAILPOINTS[following]
                armed.env = {FAILPOINTS_VARIABLE: f"{upcoming}:crash@{hits[upcoming]}"}
            armed.start()
            await armed.wait_for_output("started", within=START_DEADLINE_SECONDS)

    async def kill_at_random(
        self, rng: random.Random, count: int, gap: tuple[float, float]
    ) -> None:
        """Kill the other worker ``count`` times while the sagas run, starting it again."""
        _, victim = self.processes
        await asyncio.sleep(max(0.0, self.start_at - time.time()))
        for _ in range(count):
            await asyncio.sleep(rng.uniform(*gap))
            self.ended_at_kills.append(await ended(self.engine))
            assert await victim.kill() == -signal.SIGKILL
            self.kills += 1
            victim.start()
            await victim.wait_for_output("started", within=START_DEADLINE_SECONDS)

    async def stop_all(self) -> None:
        for process in self.processes:
            assert await process.stop() == 0, process.stderr()[-2000:]

    async def kill_all(self) -> None:
        for process in self.processes:
            if process.is_running:
                await process.kill()


async def ended(engine: AsyncEngine) -> int:
    async with read_only(engine).connect() as connection:
        query = select(func.count()).where(saga_rows.c.status.in_(("completed", "compensated")))
        return int(await connection.scalar(query.select_from(saga_rows)) or 0)


async def run_scenario(
    url: str, engine: AsyncEngine, tmp_path: Path, load: Load, seed: int
) -> None:
    rng = random.Random(seed)
    note = failure_note(seed)
    keys = keys_for(load, rng)
    await create_effects_table(engine)
    scenario = Scenario(url, engine, tmp_path, load, keys)
    await scenario.start()
    try:
        await asyncio.gather(
            scenario.crash_at_each_failpoint(),
            scenario.kill_at_random(rng, load.random_kills, load.kill_gap),
        )
        async with asyncio.timeout(load.settle_seconds):
            while await ended(engine) < len(keys):  # noqa: ASYNC110 - polling the database
                await asyncio.sleep(0.2)
        await scenario.stop_all()
    finally:
        await scenario.kill_all()
    assert scenario.failpoints_fired == list(FAILPOINTS), note
    assert scenario.kills == len(FAILPOINTS) + load.random_kills, note
    print(f"sagas ended at each random kill: {scenario.ended_at_kills}")  # noqa: T201
    assert min(scenario.ended_at_kills) < len(keys), f"no kill caught sagas running {note}"
    await check(engine, keys, note)


async def check(engine: AsyncEngine, keys: list[str], note: str) -> None:
    repository = SQLAlchemySagaRepository(engine)
    repository.register_state_type(R12Saga.name, R12Saga.state_type)
    states = [await repository.find(R12Saga.name, key) for key in keys]
    assert all(state is not None for state in states), note
    present = [state for state in states if state is not None]
    async with read_only(engine).connect() as connection:
        per_key = Counter(
            key for (key,) in await connection.execute(select(saga_rows.c.correlation_key))
        )
        rows = (
            await connection.execute(select(effects.c.saga_key, effects.c.kind, effects.c.step))
        ).all()
    done = Counter((row.saga_key, row.kind) for row in rows)
    per_step = Counter((row.saga_key, row.kind, row.step) for row in rows)
    assert set(per_step.values()) == {1}, f"a step under two ids: {per_step.most_common(2)} {note}"
    attempted = await attempt_count(engine)
    assert attempted > len(rows), f"no command was sent again ({attempted} attempts) {note}"
    assert set(per_key.values()) == {1}, f"instances per key: {per_key.most_common(3)} {note}"
    problems = saga_problems(present, await effect_ids(engine))
    assert problems == [], f"{problems[:5]} {note}"
    for state in present:
        refused = failing_step(state.correlation_key)
        expected = "completed" if refused is None else "compensated"
        assert state.status == expected, f"{state.correlation_key}: {state.status} {note}"
        forward = 4 if refused is None else refused - 1
        assert done[(state.correlation_key, "do")] == forward, f"{state.correlation_key} {note}"


async def test_r12_sagas_end_once_across_killed_worker_processes(
    postgres_database: PostgresDatabase, pg_engine: AsyncEngine, tmp_path: Path, seed: int
) -> None:
    await run_scenario(postgres_database.sqlalchemy_url, pg_engine, tmp_path, CI, seed)


@pytest.mark.soak
async def test_r12_soak(
    postgres_database: PostgresDatabase, pg_engine: AsyncEngine, tmp_path: Path, seed: int
) -> None:
    await run_scenario(postgres_database.sqlalchemy_url, pg_engine, tmp_path, SOAK, seed)
