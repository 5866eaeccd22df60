"""R17: lost wake-ups do not lose events, on PostgreSQL.

A worker process wakes on ``LISTEN cqrs_events`` (appends ``NOTIFY`` at commit) and
also polls every second. While a writer in the test makes 1,000 appends (soak
10,000), the worker's listening session is terminated with ``pg_terminate_backend``
5 times (soak 20), notifications are kept from it for 3 s (soak 10 s) by
terminating its listener again and again, and the whole worker is SIGSTOPped for
2 s. After each fault an event appended at once (its notification lost or
delayed) must be applied, and the projection's lag (``status().lag_seconds``) be
below the poll interval, within two poll intervals (the liveness deadline is 30 s);
a new ``LISTEN`` session must appear each time. Every event is applied exactly once.

Then the listener's reconnection is shown to restore the fast path: a worker
polling only every 5 s has its listener terminated; once a new ``LISTEN`` session
shows in ``pg_stat_activity``, appends are applied well within the poll interval,
which only a delivered notification explains.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.workers import WorkerProcess
from projection_support import (
    BalanceProjector,
    Deposited,
    LoadTally,
    ProjectionProbe,
    append_load,
    assert_applied_exactly_once,
    balance_table,
    commit_log_table,
    create_tables,
)
from scenario_support import failure_note
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionWorker, ProjectorRegistry
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore
from cqrs_ddd_testing import PostgresDatabase

WORKER = Path(__file__).with_name("workers_projection.py")
POLL_SECONDS = 1.0
SLOW_POLL_SECONDS = 5.0
LIVENESS_SECONDS = 30.0
SLACK_SECONDS = 1.0
"""Allowance on top of two poll intervals for a loaded 2-core machine."""
FAST_PICKUP_SECONDS = 2.0
"""Well under the slow worker's poll interval: only a notification is that fast."""


@dataclass(frozen=True, slots=True)
class Load:
    appends: int
    terminations: int
    blackout_seconds: float
    pause_seconds: float
    max_gap_seconds: float
    deadline_seconds: float
    streams: int = 100


CI = Load(
    appends=1_000,
    terminations=5,
    blackout_seconds=3,
    pause_seconds=2,
    max_gap_seconds=0.8,
    deadline_seconds=240,
)
SOAK = Load(
    appends=10_000,
    terminations=20,
    blackout_seconds=10,
    pause_seconds=5,
    max_gap_seconds=8,
    deadline_seconds=1_200,
)


@dataclass(frozen=True, slots=True)
class Recovery:
    fault: str
    probe_applied_after: float
    lag_below_poll_after: float
    terminated: int


class Scenario:
    """The pieces the faults act on and the measurements they take."""

    def __init__(self, engine: AsyncEngine, probe: ProjectionProbe, name: str, note: str) -> None:
        self.store = SQLAlchemyEventStore(engine)
        self.probe = probe
        self.name = name
        self.note = note
        self.probes = 0
        # a worker that is never started: its status() reads the lag like an operator would
        self.observer = ProjectionWorker(
            ProjectorRegistry([BalanceProjector(name, engine)]), self.store
        )

    async def append_probe(self) -> int:
        """Append one event to the probe stream; return its position."""
        stored = await self.store.append(
            "probe", [Deposited(amount=1)], expected_version=self.probes
        )
        self.probes += 1
        return stored[0].position

    async def recover(self, fault: str, since: float, terminated: int) -> Recovery:
        """Wait until an event appended now is applied and the lag is below the poll interval."""
        position = await self.append_probe()
        await self.probe.wait_for_position(
            self.name, position, within=LIVENESS_SECONDS, what=f"after {fault}"
        )
        applied = time.monotonic() - since
        deadline = time.monotonic() + LIVENESS_SECONDS
        for _ in range(100_000):
            (status,) = await self.observer.status(self.name)
            if status.lag_seconds < POLL_SECONDS:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"lag stayed at {status.lag_seconds:.1f} s after {fault}")
            await asyncio.sleep(0.05)
        return Recovery(fault, applied, time.monotonic() - since, terminated)

    async def inject(self, fault: str, worker: WorkerProcess, load: Load) -> Recovery:
        """Do ``fault`` to ``worker`` (application_name = its name); measure the recovery.

        ``terminate`` cuts its LISTEN session once; ``blackout`` cuts it again and again
        for ``load.blackout_seconds`` (notifications of those moments are lost);
        ``pause`` SIGSTOPs the whole process for ``load.pause_seconds``. Then an event
        appended at once must be applied, and the lag be low, within two poll intervals
        of the fault (of its end, for the long ones); the listener must be back.
        """
        started = time.monotonic()
        terminated: list[int] = []
        if fault == "terminate":
            terminated = await self.probe.terminate_listeners(worker.name)
        elif fault == "blackout":
            for _ in range(10_000):  # bounded by the blackout's end
                if time.monotonic() - started > load.blackout_seconds:
                    break
                terminated += await self.probe.terminate_listeners(worker.name)
                await asyncio.sleep(0.1)
        else:
            assert worker.pid is not None
            os.killpg(worker.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(load.pause_seconds)
            finally:
                os.killpg(worker.pid, signal.SIGCONT)
        since = started if fault == "terminate" else time.monotonic()
        recovery = await self.recover(fault, since, len(terminated))
        if terminated:
            await self.wait_for_listener(worker.name, besides=terminated, within=LIVENESS_SECONDS)
        return recovery

    async def wait_for_listener(
        self, application_name: str, *, besides: list[int], within: float
    ) -> int:
        """Wait until a LISTEN session of ``application_name`` other than ``besides`` exists."""
        deadline = time.monotonic() + within
        for _ in range(100_000):
            fresh = set(await self.probe.listener_pids(application_name)) - set(besides)
            if fresh:
                return fresh.pop()
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{application_name} did not LISTEN again within {within:g} s")


def projector_process(
    url: str, name: str, worker_id: str, poll: float, tmp_path: Path
) -> WorkerProcess:
    return WorkerProcess.python(
        WORKER,
        *("--url", url, "--projection", name, "--app-name", worker_id, "--worker-id", worker_id),
        *("--poll-interval", str(poll), "--go", str(tmp_path / f"go-{worker_id}")),
        log_dir=tmp_path,
        name=worker_id,
    )


async def start_when_ready(worker: WorkerProcess, go: Path) -> None:
    await worker.wait_for_output("ready", within=120)
    await asyncio.to_thread(go.touch)
    await worker.wait_for_output("started", within=LIVENESS_SECONDS)


async def pickups_after_reconnect(
    scenario: Scenario, slow: WorkerProcess, head: int, note: str
) -> list[float]:
    """Cut the slow worker's listener; once it LISTENs again, time three appends' pickups."""
    listener = await scenario.wait_for_listener(slow.name, besides=[], within=LIVENESS_SECONDS)
    await scenario.probe.wait_for_position(scenario.name, head, within=LIVENESS_SECONDS)
    cut = await scenario.probe.terminate_listeners(slow.name)
    assert cut == [listener], note
    await scenario.wait_for_listener(slow.name, besides=cut, within=LIVENESS_SECONDS)
    pickups = []
    for _ in range(3):
        await asyncio.sleep(0.2)
        position = await scenario.append_probe()
        pickups.append(
            await scenario.probe.wait_for_position(
                scenario.name, position, within=LIVENESS_SECONDS, what="slow worker"
            )
        )
    return pickups


@pytest.mark.parametrize(
    "load",
    [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)],
)
async def test_lost_notifications_delay_events_by_at_most_a_poll_and_lose_none(
    pg_engine: AsyncEngine,
    postgres_database: PostgresDatabase,
    tmp_path: Path,
    seed: int,
    load: Load,
) -> None:
    # given: a worker that listens and polls every second, and one that polls every 5 s
    note = failure_note(seed)
    rng = random.Random(seed)
    name = "balances"
    table, log_table = balance_table(name), commit_log_table(name)
    await create_tables(pg_engine, table, log_table)
    probe = ProjectionProbe(pg_engine, postgres_database.dsn)
    scenario = Scenario(pg_engine, probe, name, note)
    url = postgres_database.sqlalchemy_url
    fast = projector_process(url, name, "r17-fast", POLL_SECONDS, tmp_path)
    slow = projector_process(url, name, "r17-slow", SLOW_POLL_SECONDS, tmp_path)
    faults = ["terminate"] * load.terminations + ["blackout", "pause"]
    rng.shuffle(faults)
    tally = LoadTally()
    writing: asyncio.Task[None] | None = None
    recoveries: list[Recovery] = []
    try:
        async with asyncio.timeout(load.deadline_seconds):
            fast.start()
            slow.start()  # imports meanwhile, starts its worker in the second phase
            await start_when_ready(fast, tmp_path / "go-r17-fast")
            await scenario.wait_for_listener(fast.name, besides=[], within=LIVENESS_SECONDS)
            # when: the writer appends while the listener is cut, kept away, paused
            writing = asyncio.create_task(
                append_load(
                    scenario.store,
                    count=load.appends,
                    streams=[f"account-{n:03d}" for n in range(load.streams)],
                    rng=random.Random(f"{seed}-writer"),
                    tally=tally,
                    max_batch=1,
                    pause=0.02,
                )
            )
            for fault in faults:
                await asyncio.sleep(rng.uniform(0.2, load.max_gap_seconds))
                # then (each): an event appended at once is applied, the lag is low
                recoveries.append(await scenario.inject(fault, fast, load))
            await writing
            head = await scenario.store.current_position()
            await probe.wait_for_position(name, head, within=LIVENESS_SECONDS)
            assert fast.is_running, f"the worker exited: {fast.stderr()[-2000:]} {note}"
            assert await fast.stop() == 0, fast.stderr()[-2000:]
            # when: the slow-polling worker's listener is terminated
            # then: it LISTENs again, and appends are applied faster than it polls
            await start_when_ready(slow, tmp_path / "go-r17-slow")
            pickups = await pickups_after_reconnect(scenario, slow, head, note)
            assert await slow.stop() == 0, slow.stderr()[-2000:]
    finally:
        if writing is not None:
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
        for process in (fast, slow):
            if process.is_running:
                await process.kill()
    # then: the faults really happened
    assert [recovery.fault for recovery in recoveries] == faults, note
    cuts = {recovery.fault: recovery.terminated for recovery in recoveries}
    assert all(r.terminated == 1 for r in recoveries if r.fault == "terminate"), recoveries
    assert cuts["blackout"] >= 2, f"{recoveries} {note}"
    # and after each, the lag was back below the poll interval within two intervals
    late = [r for r in recoveries if r.lag_below_poll_after > 2 * POLL_SECONDS + SLACK_SECONDS]
    assert late == [], f"{late} {note}"
    # and the reconnected listener brought the fast path back
    assert all(pickup < FAST_PICKUP_SECONDS for pickup in pickups), f"{pickups} {note}"
    # and every event was applied exactly once
    assert tally.events == load.appends, note
    await assert_applied_exactly_once(probe, name, table, log_table, note)
