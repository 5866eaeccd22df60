"""R5: a projection worker killed at any instant ends equal to a rebuild, on PostgreSQL.

A worker process (`workers_projection.py`) projects `Deposited` events into a
read model (one row per stream, ``applied_count`` per event) while a writer in the
test appends to 500 streams. The worker is SIGKILLed at random moments and, once
each (soak: five times each), by the failpoints ``projection.after_fetch``,
``mid_batch``, ``after_apply_before_commit`` and ``after_commit_before_ack`` armed
in its environment; it is restarted after every kill. After each kill, while it is
down, the read model must match exactly the events up to the stored checkpoint:
the read-model writes and the checkpoint commit together or not at all. At the
end the checkpoint is the head, every stream's ``applied_count`` is its number of
events, the commit log holds every position once, and the read model's hash
equals a from-scratch rebuild into a fresh table.

The variant rebuilds the projection while four writers append, in a running
in-process worker: after the switch-over the read model equals a cold rebuild.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.history import read_history
from harness.workers import WorkerProcess
from projection_support import (
    NO_ANOMALIES,
    BalanceProjector,
    LeaseRecordingStorage,
    LoadTally,
    ProjectionProbe,
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
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionWorker, ProjectorRegistry
from cqrs_ddd_core.failpoints import FAILPOINTS_VARIABLE
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore
from cqrs_ddd_testing import PostgresDatabase

WORKER = Path(__file__).with_name("workers_projection.py")
FAILPOINTS = ("after_fetch", "mid_batch", "after_apply_before_commit", "after_commit_before_ack")
RESUME_DEADLINE_SECONDS = 30.0
IMPORT_DEADLINE_SECONDS = 120.0
SPAWN_AHEAD = 12
"""How many worker processes import at once, ahead of their round."""


@dataclass(frozen=True, slots=True)
class Load:
    events: int
    streams: int
    random_kills: int
    kills_per_failpoint: int
    deadline_seconds: float
    batch_size: int = 50


CI = Load(events=5_000, streams=500, random_kills=6, kills_per_failpoint=1, deadline_seconds=240)
SOAK = Load(
    events=50_000, streams=500, random_kills=20, kills_per_failpoint=5, deadline_seconds=1_800
)


@dataclass(frozen=True, slots=True)
class Kill:
    """One round: how the worker died and where the checkpoint stood before and after."""

    pid: int
    kind: str
    returncode: int
    checkpoint_before: int
    checkpoint_after: int


def hit_for(kind: str, rng: random.Random) -> int:
    """Pick the failpoint hit that crashes: an early one, so the round stays short."""
    return rng.randint(1, 4) if kind == "after_fetch" else rng.randint(1, 3)


class KillRounds:
    """The worker processes of a run, one per start, and the rounds that kill them.

    Each process is started ahead of its round (``--go``), so its imports (seconds
    on a busy machine) are done by its turn and it starts the worker the moment the
    previous one died. Every round first lets the writer append another share.
    """

    def __init__(
        self,
        *,
        url: str,
        name: str,
        tmp_path: Path,
        kinds: list[str],
        load: Load,
        rng: random.Random,
        probe: ProjectionProbe,
        gate: asyncio.Queue[int],
    ) -> None:
        self.name = name
        self.tmp_path = tmp_path
        self.kinds = kinds
        self.rng = rng
        self.probe = probe
        self.gate = gate
        self.quota = load.events // (len(kinds) + 1)
        self.history = tmp_path / "history.jsonl"
        self.kills: list[Kill] = []
        common = [
            *("--url", url, "--projection", name, "--app-name", "r5-worker"),
            *("--worker-id", "r5-worker", "--history", str(self.history)),
            *("--batch-size", str(load.batch_size), "--poll-interval", "0.2"),
        ]
        self.processes = [
            WorkerProcess.python(
                WORKER,
                *common,
                *("--go", str(tmp_path / f"go-{number}")),
                env=self._environment(kind),
                log_dir=tmp_path,
                name=f"projector-{number}",
            )
            for number, kind in enumerate([*kinds, "final"])
        ]

    def _environment(self, kind: str) -> dict[str, str]:
        if kind in ("random", "final"):
            return {}
        return {FAILPOINTS_VARIABLE: f"projection.{kind}:crash@{hit_for(kind, self.rng)}"}

    async def _launch(self, number: int) -> WorkerProcess:
        if number == 0:
            for process in self.processes[:SPAWN_AHEAD]:
                process.start()
        worker = self.processes[number]
        await worker.wait_for_output("ready", within=IMPORT_DEADLINE_SECONDS)
        if number + SPAWN_AHEAD < len(self.processes):
            self.processes[number + SPAWN_AHEAD].start()
        await asyncio.to_thread((self.tmp_path / f"go-{number}").touch)
        return worker

    async def kill_round(self, number: int, table: Table, note: str) -> None:
        """Start the round's worker and see it killed; check the read model meanwhile."""
        kind = self.kinds[number]
        self.gate.put_nowait(self.quota)
        before = await self.probe.projection(self.name)
        worker = await self._launch(number)
        if kind == "random":
            await worker.wait_for_output("started", within=RESUME_DEADLINE_SECONDS)
            # then (each restart): catch-up resumes within the deadline
            await self.probe.wait_for_position(
                self.name, before.position + 1, within=RESUME_DEADLINE_SECONDS, what=kind
            )
            await asyncio.sleep(self.rng.uniform(0, 0.4))
            returncode = await worker.kill()
        else:
            returncode = await worker.wait(RESUME_DEADLINE_SECONDS)
        after = await self.probe.projection(self.name)
        self.kills.append(Kill(worker.pid or 0, kind, returncode, before.position, after.position))
        assert returncode == -9, f"{kind}: {worker.stderr()[-2000:]} {note}"
        # and (each kill): the read model holds exactly the events up to the checkpoint
        mismatches = await self.probe.mismatches(table, up_to=after.position)
        assert mismatches == {}, f"after {kind} at {after.position}: {note}"

    async def final_round(self, writing: asyncio.Task[None], everything: int) -> int:
        """Start a last, unharmed worker; return the head it caught up with."""
        self.gate.put_nowait(everything)
        worker = await self._launch(len(self.kinds))
        await worker.wait_for_output("started", within=RESUME_DEADLINE_SECONDS)
        await writing
        head = await self.probe.head()
        await self.probe.wait_for_position(self.name, head, within=RESUME_DEADLINE_SECONDS * 2)
        assert await worker.stop() == 0, worker.stderr()[-2000:]
        assert "stopped" in worker.stdout()
        return head

    async def kill_all(self) -> None:
        for process in self.processes:
            if process.is_running:
                await process.kill()

    def check_failpoint_evidence(self, note: str) -> None:
        """Check the crashes hit where meant, from what each process applied (its history)."""
        records = [record for record in read_history(self.history) if record.op == "apply"]
        for kill in self.kills:
            proc = f"r5-worker/{kill.pid}"
            invoked = [int(str(r.extra["position"])) for r in records if r.proc == proc]
            if kill.kind == "after_apply_before_commit":
                # the killed batch's writes were made, and are gone with its checkpoint
                assert invoked, f"{kill} {note}"
                assert max(invoked) > kill.checkpoint_after, f"{kill} {note}"
            if kill.kind == "after_commit_before_ack":
                # the killed batch committed: its checkpoint covers everything it applied
                assert invoked, f"{kill} {note}"
                assert max(invoked) == kill.checkpoint_after, f"{kill} {note}"
        applications = Counter(record.key for record in records)
        redone = sum(1 for count in applications.values() if count > 1)
        assert redone > 0, f"no lost application was redone: the kills hit nothing {note}"


@pytest.mark.parametrize(
    "load",
    [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)],
)
async def test_a_worker_killed_at_any_instant_ends_equal_to_a_rebuild(
    pg_engine: AsyncEngine,
    postgres_database: PostgresDatabase,
    tmp_path: Path,
    seed: int,
    load: Load,
) -> None:
    # given: the read model and its commit log, a writer that appends while the worker runs
    note = failure_note(seed)
    rng = random.Random(seed)
    name = "balances"
    table, log_table = balance_table(name), commit_log_table(name)
    await create_tables(pg_engine, table, log_table)
    probe = ProjectionProbe(pg_engine, postgres_database.dsn)
    kinds = ["random"] * load.random_kills + [
        kind for kind in FAILPOINTS for _ in range(load.kills_per_failpoint)
    ]
    rng.shuffle(kinds)
    gate: asyncio.Queue[int] = asyncio.Queue()
    tally = LoadTally()
    writing = asyncio.create_task(
        append_load(
            SQLAlchemyEventStore(pg_engine),
            count=load.events,
            streams=[f"account-{number:03d}" for number in range(load.streams)],
            rng=random.Random(f"{seed}-writer"),
            tally=tally,
            gate=gate,
        )
    )
    rounds = KillRounds(
        url=postgres_database.sqlalchemy_url,
        name=name,
        tmp_path=tmp_path,
        kinds=kinds,
        load=load,
        rng=rng,
        probe=probe,
        gate=gate,
    )
    try:
        async with asyncio.timeout(load.deadline_seconds):
            # when: each round starts a worker and kills it (randomly, or by its failpoint)
            for number in range(len(kinds)):
                await rounds.kill_round(number, table, note)
            # and a last, unharmed start catches up with everything the writer appended
            head = await rounds.final_round(writing, load.events)
    finally:
        writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)
        await rounds.kill_all()
    # then: every kill really happened, each kind as planned, and hit where meant
    assert [kill.kind for kill in rounds.kills] == kinds, note
    assert tally.events == load.events, note
    rounds.check_failpoint_evidence(note)
    # and the checkpoint is the head, no stream got an event twice or missed one
    positions = await probe.positions()
    assert (await probe.projection(name)).position == head == positions[-1], note
    assert await probe.mismatches(table) == {}, note
    assert await probe.dead_letter_count(name) == 0, note
    anomalies = log_anomalies(await probe.commit_log(log_table), positions)
    assert counts_of(anomalies) == NO_ANOMALIES, f"{anomalies} {note}"
    # and the read model equals a from-scratch rebuild into a fresh table
    live = await probe.rows(table)
    cold = await cold_rebuild(pg_engine, "balances_cold")
    assert len(live) == len(cold) > 0, note
    assert row_hash(live) == row_hash(cold), note


@dataclass(frozen=True, slots=True)
class LiveLoad:
    writers: int
    events: int
    streams: int


LIVE_CI = LiveLoad(writers=4, events=4_000, streams=200)
LIVE_SOAK = LiveLoad(writers=4, events=20_000, streams=500)


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(LIVE_CI, id="ci"),
        pytest.param(LIVE_SOAK, id="soak", marks=pytest.mark.soak),
    ],
)
async def test_a_rebuild_while_writers_append_ends_equal_to_a_cold_rebuild(
    pg_engine: AsyncEngine, seed: int, load: LiveLoad
) -> None:
    # given: a running worker keeping the read model while four writers append
    note = failure_note(seed)
    name = "balances"
    table, log_table = balance_table(name), commit_log_table(name)
    await create_tables(pg_engine, table, log_table)
    probe = ProjectionProbe(pg_engine)
    store = SQLAlchemyEventStore(pg_engine)
    projector = BalanceProjector(name, pg_engine, table=table, log_table=log_table)
    worker = ProjectionWorker(
        ProjectorRegistry([projector]),
        store,
        batch_size=50,
        storage=LeaseRecordingStorage(store.worker_storage()),
        poll_interval=0.2,
    )
    streams = [f"account-{number:03d}" for number in range(load.streams)]
    tally = LoadTally()
    # the writers go on until a while after the rebuild ended (however long it takes on
    # this machine), each bounded by all of the load's events
    enough = asyncio.Event()
    await worker.start()
    try:
        async with asyncio.timeout(300), asyncio.TaskGroup() as group:
            writers = [
                group.create_task(
                    append_load(
                        store,
                        count=load.events,
                        streams=streams,
                        rng=random.Random(f"{seed}-writer-{number}"),
                        tally=tally,
                        pause=0.01,
                        stop=enough,
                    )
                )
                for number in range(load.writers)
            ]
            # when: a quarter through the load, the projection is rebuilt in place
            for _ in range(100_000):  # bounded by the timeout
                if tally.events >= load.events // 4:
                    break
                await asyncio.sleep(0.01)
            head_at_rebuild = await store.current_position()
            status = await worker.rebuild(name, within=120)
            rebuilt_while_writing = not all(task.done() for task in writers)
            after_rebuild = tally.events + load.events // 10
            for _ in range(100_000):  # and the writers go on appending past the switch-over
                if tally.events >= after_rebuild or all(task.done() for task in writers):
                    break
                await asyncio.sleep(0.01)
            enough.set()
        await worker.wait_until_caught_up(within=60)
    finally:
        await worker.stop()
    # then: the rebuild covered at least the head when it was called
    assert status.checkpoint >= head_at_rebuild, f"{status} {note}"
    assert rebuilt_while_writing, f"the writers were done before the rebuild ended {note}"
    # and after the switch-over nothing was missed or applied twice
    assert tally.events == len(await probe.positions()), note
    assert await probe.mismatches(table) == {}, note
    anomalies = log_anomalies(await probe.commit_log(log_table), await probe.positions())
    assert counts_of(anomalies) == NO_ANOMALIES, f"{anomalies} {note}"
    # and the read model equals a cold rebuild
    live = await probe.rows(table)
    cold = await cold_rebuild(pg_engine, "balances_cold")
    assert row_hash(live) == row_hash(cold), note
