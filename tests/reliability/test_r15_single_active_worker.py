"""R15: one active worker per projection, fenced, on PostgreSQL.

Three worker processes run the same projection; leadership is the lease row in
``cqrs_projections`` (owner, epoch, expiry), and every batch is fenced by
``UPDATE … WHERE owner = ? AND epoch = ?``. While a writer appends, the leader (found
by the row's ``owner``) has its sessions terminated (``pg_terminate_backend``, found
by ``application_name``) three times and is SIGSTOPped past its 3 s lease twice (soak:
10 and 5), then SIGCONTinued. Each time a leader must resume within 30 s (after a
stop, another worker); the resumed old leader must notice it lost the lease and go
standby without writing. The commit log, written inside each batch's transaction
with the lease the applying worker believed it held, shows that no fenced-out
worker committed: every position once, epochs never going back, one owner per
epoch. At the end the read model equals a rebuild.

A leader that stalls inside its lease renewal (between the ``UPDATE`` and its
``COMMIT``) does not hold off the takeover: PostgreSQL ends its transaction.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness.pg_faults import terminate_backends
from harness.workers import WorkerProcess
from projection_support import (
    NO_ANOMALIES,
    BalanceProjector,
    LoadTally,
    ProjectionProbe,
    ProjectionRow,
    append_load,
    balance_table,
    cold_rebuild,
    commit_log_table,
    counts_of,
    create_tables,
    log_anomalies,
    row_hash,
)
from scenario_support import failure_note
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionWorker, ProjectorRegistry
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore, create_engine
from cqrs_ddd_testing import PostgresDatabase

WORKER = Path(__file__).with_name("workers_projection.py")
LEASE_TTL_SECONDS = 3.0
RESUME_DEADLINE_SECONDS = 30.0
WORKERS = 3


@dataclass(frozen=True, slots=True)
class Load:
    terminations: int
    stops: int
    streams: int
    deadline_seconds: float


CI = Load(terminations=3, stops=2, streams=100, deadline_seconds=240)
SOAK = Load(terminations=10, stops=5, streams=500, deadline_seconds=1_200)


@dataclass(frozen=True, slots=True)
class Takeover:
    """A stopped leader and the lease that replaced its own."""

    old_owner: str
    old_epoch: int
    new: ProjectionRow


async def wait_for_progress(
    probe: ProjectionProbe, name: str, since: ProjectionRow, *, within: float, what: str
) -> ProjectionRow:
    """Wait until the projection has an owner and its checkpoint passed ``since``'s."""
    deadline = time.monotonic() + within
    for _ in range(1_000_000):
        row = await probe.projection(name)
        if row.owner is not None and row.position > since.position:
            return row
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{what}: no leader resumed past {since} within {within:g} s")


async def wait_for_takeover(
    probe: ProjectionProbe, name: str, stopped: ProjectionRow, *, within: float
) -> ProjectionRow:
    """Wait until another worker holds the lease and has committed past ``stopped``'s checkpoint."""
    deadline = time.monotonic() + within
    for _ in range(1_000_000):
        row = await probe.projection(name)
        if row.owner not in (None, stopped.owner) and row.position > stopped.position:
            return row
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no worker took over from {stopped} within {within:g} s")


async def wait_for_new_output(
    process: WorkerProcess, text: str, *, offset: int, within: float
) -> str:
    """Wait until ``process`` printed a line holding ``text`` after ``offset``; return it."""
    deadline = time.monotonic() + within
    for _ in range(1_000_000):
        for line in process.stdout()[offset:].splitlines():
            if text in line:
                return line
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    raise TimeoutError(
        f"{process.name} printed no {text!r} within {within:g} s: {process.stdout()[offset:]!r}"
    )


class Cluster:
    """Three worker processes of one projection, and the faults done to its leader."""

    def __init__(
        self, *, database: PostgresDatabase, probe: ProjectionProbe, name: str, tmp_path: Path
    ) -> None:
        self.dsn = database.dsn
        self.probe = probe
        self.name = name
        self.workers = {
            worker_id: WorkerProcess.python(
                WORKER,
                *("--url", database.sqlalchemy_url, "--projection", name),
                *("--app-name", worker_id, "--worker-id", worker_id, "--batch-size", "20"),
                *("--lease-ttl", str(LEASE_TTL_SECONDS), "--poll-interval", "0.5"),
                log_dir=tmp_path,
                name=worker_id,
            )
            for worker_id in (f"r15-w{number}" for number in range(WORKERS))
        }
        self.leaders: list[str] = []
        self.terminated_sessions: list[int] = []
        self.takeovers: list[Takeover] = []
        self.stopped_pid: int | None = None

    async def start(self) -> None:
        for worker in self.workers.values():
            worker.start()
        for worker in self.workers.values():
            await worker.wait_for_output("started", within=120)
        await wait_for_progress(
            self.probe,
            self.name,
            ProjectionRow(0, None, 0),
            within=RESUME_DEADLINE_SECONDS,
            what="start",
        )

    async def leader(self) -> tuple[ProjectionRow, str]:
        row = await self.probe.projection(self.name)
        assert row.owner is not None, row
        self.leaders.append(row.owner)
        return row, row.owner

    async def terminate_leader(self) -> None:
        """Terminate the leader's sessions; a leader must resume within the deadline."""
        _, leader_id = await self.leader()
        self.terminated_sessions.append(await terminate_backends(self.dsn, leader_id))
        await wait_for_progress(
            self.probe,
            self.name,
            await self.probe.projection(self.name),
            within=RESUME_DEADLINE_SECONDS,
            what=f"after terminating {leader_id}",
        )

    async def stop_leader(self, note: str) -> None:
        """SIGSTOP the leader past its lease: another takes over; resumed, it stands by."""
        stopped, leader_id = await self.leader()
        leader = self.workers[leader_id]
        offset = len(leader.stdout())
        assert leader.pid is not None
        self.stopped_pid = leader.pid
        os.killpg(self.stopped_pid, signal.SIGSTOP)
        try:
            taken = await wait_for_takeover(
                self.probe, self.name, stopped, within=RESUME_DEADLINE_SECONDS
            )
            assert leader.is_running, f"{leader_id} died while stopped {note}"
        finally:
            self.thaw()
        self.takeovers.append(Takeover(leader_id, stopped.epoch, taken))
        # the resumed old leader notices it lost the lease and goes standby
        line = await wait_for_new_output(
            leader, "status standby", offset=offset, within=RESUME_DEADLINE_SECONDS
        )
        assert f"owner {leader_id} " not in line, f"{line} {note}"
        await wait_for_progress(
            self.probe, self.name, taken, within=RESUME_DEADLINE_SECONDS, what="after resume"
        )

    def thaw(self) -> None:
        if self.stopped_pid is not None:
            os.killpg(self.stopped_pid, signal.SIGCONT)
            self.stopped_pid = None

    async def stop_all(self) -> None:
        """Stop every worker gracefully; each must still run and exit 0."""
        assert all(worker.is_running for worker in self.workers.values())
        for worker in self.workers.values():
            assert await worker.stop() == 0, worker.stderr()[-2000:]

    async def kill_all(self) -> None:
        self.thaw()
        for worker in self.workers.values():
            if worker.is_running:
                await worker.kill()


def check_no_stale_commit(log: list[dict[str, Any]], takeovers: list[Takeover], note: str) -> None:
    """No commit of a stopped leader's epoch lies above the first commit of a later epoch."""
    for takeover in takeovers:
        successors = [row["position"] for row in log if row["epoch"] > takeover.old_epoch]
        stale = [
            row["position"]
            for row in log
            if (row["owner"], row["epoch"]) == (takeover.old_owner, takeover.old_epoch)
            and successors
            and row["position"] > min(successors)
        ]
        assert stale == [], f"{takeover.old_owner} wrote after losing its lease {note}"


@pytest.mark.parametrize(
    "load",
    [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)],
)
async def test_one_worker_applies_at_a_time_and_a_fenced_out_leader_writes_nothing(
    pg_engine: AsyncEngine,
    postgres_database: PostgresDatabase,
    tmp_path: Path,
    seed: int,
    load: Load,
) -> None:
    # given: three workers for one projection, each with its own application_name
    note = failure_note(seed)
    rng = random.Random(seed)
    name = "balances"
    table, log_table = balance_table(name), commit_log_table(name)
    await create_tables(pg_engine, table, log_table)
    probe = ProjectionProbe(pg_engine, postgres_database.dsn)
    store = SQLAlchemyEventStore(pg_engine)
    cluster = Cluster(database=postgres_database, probe=probe, name=name, tmp_path=tmp_path)
    faults = ["terminate"] * load.terminations + ["stop"] * load.stops
    rng.shuffle(faults)
    # and a writer appending all along
    writer_stop = asyncio.Event()
    writing = asyncio.create_task(
        append_load(
            store,
            count=10_000_000,
            streams=[f"account-{number:03d}" for number in range(load.streams)],
            rng=random.Random(f"{seed}-writer"),
            tally=LoadTally(),
            pause=0.01,
            stop=writer_stop,
        )
    )
    try:
        async with asyncio.timeout(load.deadline_seconds):
            await cluster.start()
            # when: the leader of the moment is cut off, or stopped past its lease
            # then: each time a leader resumes within 30 s (after a stop, another one),
            # and the resumed old leader goes standby
            for fault in faults:
                if fault == "terminate":
                    await cluster.terminate_leader()
                else:
                    await cluster.stop_leader(note)
            # and when the writer stops, the leader catches up with the head
            writer_stop.set()
            await writing
            head = await store.current_position()
            await probe.wait_for_position(name, head, within=RESUME_DEADLINE_SECONDS * 2)
            # and no worker ever exited on its own; each stops cleanly
            await cluster.stop_all()
    finally:
        writer_stop.set()
        await asyncio.gather(writing, return_exceptions=True)
        await cluster.kill_all()
    # then: the faults really happened
    assert len(cluster.leaders) == len(faults), note
    assert all(n > 0 for n in cluster.terminated_sessions), f"{cluster.terminated_sessions} {note}"
    assert len(cluster.takeovers) == load.stops, note
    for takeover in cluster.takeovers:
        assert takeover.new.owner != takeover.old_owner, f"{takeover} {note}"
        assert takeover.new.epoch > takeover.old_epoch, f"{takeover} {note}"
    # and no fenced-out worker committed: every position once, epochs never going back
    log = await probe.commit_log(log_table)
    positions = await probe.positions()
    anomalies = log_anomalies(log, positions)
    assert counts_of(anomalies) == NO_ANOMALIES, f"{anomalies} {note}"
    check_no_stale_commit(log, cluster.takeovers, note)
    # and every event was applied once (none quarantined for a lost connection)
    assert await probe.mismatches(table) == {}, note
    assert await probe.dead_letter_count(name) == 0, note
    assert (await probe.projection(name)).position == positions[-1] == head, note
    # and the read model equals a rebuild
    cold = await cold_rebuild(pg_engine, "balances_cold")
    assert row_hash(await probe.rows(table)) == row_hash(cold), note


FREEZE_TTL_SECONDS = 2.0
FREEZE_LIMIT_SECONDS = 30.0


def is_renewal(statement: str) -> bool:
    """Tell the lease renewal (``UPDATE … SET lease_expires_at … RETURNING epoch``) apart."""
    text = " ".join(statement.split())
    return "SET lease_expires_at" in text and "RETURNING cqrs_projections.epoch" in text


class FrozenLeader:
    """A worker in a thread of its own that freezes inside its first idle lease renewal.

    After the renewal's ``UPDATE`` ran and before its ``COMMIT``, the thread blocks
    (as a process stopped by SIGSTOP, a long GC pause or a lost network link would):
    its session stays idle in a transaction that holds the lease row's lock. ``thaw``
    lets it go on; ``close`` stops it.
    """

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.frozen = threading.Event()
        self.thawed = threading.Event()
        self.closing = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="frozen-leader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def thaw(self) -> None:
        self.thawed.set()

    def close(self) -> None:
        self.thaw()
        self.closing.set()
        self._thread.join(FREEZE_LIMIT_SECONDS)

    def _freeze(self, *args: object) -> None:
        statement = str(args[2])
        if is_renewal(statement) and not self.frozen.is_set():
            self.frozen.set()
            self.thawed.wait(FREEZE_LIMIT_SECONDS)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as error:  # noqa: BLE001 - reported to the test
            self.failure = error

    async def _run(self) -> None:
        engine = create_engine(self.url, application_name="r15-frozen")
        event.listen(engine.sync_engine, "after_cursor_execute", self._freeze)
        store = SQLAlchemyEventStore(engine)
        worker = ProjectionWorker(
            ProjectorRegistry([BalanceProjector(self.name, engine)]),
            store,
            poll_interval=0.2,
            lease_ttl=FREEZE_TTL_SECONDS,
            worker_id="frozen",
        )
        await worker.start()
        try:
            for _ in range(100_000):  # bounded by the freeze limit
                if self.closing.is_set():
                    break
                await asyncio.sleep(0.05)
        finally:
            await worker.stop(grace=5)
            await engine.dispose()


async def test_a_leader_frozen_inside_its_lease_renewal_does_not_hold_off_the_takeover(
    pg_engine: AsyncEngine, postgres_database: PostgresDatabase
) -> None:
    # given: a leader, idle, that freezes right after its renewal's UPDATE, and a standby
    name = "balances"
    await create_tables(pg_engine, balance_table(name))
    probe = ProjectionProbe(pg_engine)
    await append_load(
        SQLAlchemyEventStore(pg_engine),
        count=20,
        streams=["account-000"],
        rng=random.Random(0),
        tally=LoadTally(),
    )
    leader = FrozenLeader(postgres_database.sqlalchemy_url, name)
    standby = ProjectionWorker(
        ProjectorRegistry([BalanceProjector(name, pg_engine)]),
        SQLAlchemyEventStore(pg_engine),
        poll_interval=0.2,
        lease_ttl=FREEZE_TTL_SECONDS,
        worker_id="standby",
    )
    leader.start()
    try:
        await wait_for_progress(
            probe, name, ProjectionRow(0, None, 0), within=RESUME_DEADLINE_SECONDS, what="leader"
        )
        assert (await probe.projection(name)).owner == "frozen"
        await standby.start()
        deadline = time.monotonic() + RESUME_DEADLINE_SECONDS
        while not leader.frozen.is_set():  # bounded by the deadline
            assert time.monotonic() < deadline, "the leader never renewed its lease"
            await asyncio.sleep(0.02)
        frozen_at = time.monotonic()
        # when: the leader stays frozen well past its lease
        owner = "frozen"
        for _ in range(100_000):  # bounded by three lease times
            owner = (await probe.projection(name)).owner or ""
            if owner == "standby" or time.monotonic() - frozen_at > 3 * FREEZE_TTL_SECONDS:
                break
            await asyncio.sleep(0.05)
        # then: the standby has taken over (the stalled transaction ended, the lease ran out)
        assert owner == "standby", (
            f"after {time.monotonic() - frozen_at:.1f} s the lease is still {owner!r}'s"
        )
    finally:
        leader.thaw()
        await standby.stop(grace=10)
        await asyncio.to_thread(leader.close)
    assert leader.failure is None, repr(leader.failure)
