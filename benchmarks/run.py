"""The benchmark command: every workload on SQLite, then on PostgreSQL, then the writers.

``python -m benchmarks [--quick] [--repeats N]
[--only sqlite|postgres|writers|snapshots|projections|scheduling|sagas|relay|shop]
[--profile]``
(``bash scripts/bench.sh`` syncs the ``bench`` dependency group first). Progress
goes to stderr; the tables go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import asyncpg

from benchmarks import writer_processes, writers
from benchmarks.databases import PostgresTarget, SQLiteTarget, fresh_postgres, fresh_sqlite
from benchmarks.ours import OurBank
from benchmarks.plan import FULL, QUICK, Plan
from benchmarks.projections import ProjectionResults, bench_projections
from benchmarks.projections import summary_text as projection_summary
from benchmarks.raw import AsyncpgDriver, RawDriver
from benchmarks.raw_sqlite import AiosqliteDriver, SQLite3Driver
from benchmarks.report import (
    Report,
    Row,
    facts_text,
    load_average,
    machine,
    raw_table,
    table,
)
from benchmarks.settings import durability
from benchmarks.snapshots import SnapshotTarget, bench_snapshots, summary_text
from benchmarks.theirs import TheirBank
from benchmarks.timing import Sample, Workload, compare

STANDALONE = {
    "scheduling": "benchmarks.scheduling",
    "sagas": "benchmarks.sagas",
    "relay": "benchmarks.relay",
    "shop": "benchmarks.shop",
}
"""``--only`` choices run by their module's ``main`` (each takes ``--quick``)."""


def progress(message: str) -> None:
    """Tell the person waiting what is being measured."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def blocking(function: Callable[[], Sample]) -> Workload:
    """Wrap a synchronous workload of eventsourcing's as an async one (it runs inline)."""

    async def run() -> Sample:
        return function()

    return run


@dataclasses.dataclass
class Bench:
    """One backend's run: its applications, raw drivers, plan and report."""

    backend: str
    ours: OurBank
    theirs: TheirBank
    raws: Sequence[RawDriver]
    plan: Plan
    report: Report

    async def row(
        self,
        workload: str,
        unit: str,
        ours: Workload,
        theirs: Workload,
        raws: Mapping[str, Workload] | None = None,
    ) -> Row:
        """Measure ours, theirs and the raw drivers on one workload; record the row."""
        progress(f"{self.backend}: {workload}")
        raws = raws or {}
        sides = {"ours": ours, "theirs": theirs} | {
            f"raw:{name}": run for name, run in raws.items()
        }
        rates = await compare(sides, repeats=self.plan.repeats)
        row = Row(workload, self.backend, unit, ours=rates["ours"], theirs=rates["theirs"])
        for name in raws:
            self.report.add_raw(self.backend, name, workload, rates[f"raw:{name}"], unit)
        if raws:
            best = max(raws, key=lambda name: rates[f"raw:{name}"])
            row.raw, row.raw_driver = rates[f"raw:{best}"], best
        return self.report.add(row)

    async def run(self) -> None:
        """Measure workloads (a) to (d) on this backend."""
        await self.creates_and_updates()
        start_ours = await self.ours.current_position()
        start_theirs = self.theirs.current_position()
        await self.batch_appends()
        await self.stream_loads()
        await self.global_reads(start_ours, start_theirs)

    async def creates_and_updates(self) -> None:
        """(a) create with one event per command; (b) load, change and save."""
        plan, ours, theirs = self.plan, self.ours, self.theirs
        await self.row(
            "(a) create aggregate, 1 event/command",
            "cmd/s",
            partial(ours.creates, plan.creates),
            blocking(partial(theirs.creates, plan.creates)),
            {raw.name: partial(raw.single_inserts, plan.creates) for raw in self.raws},
        )
        our_ids = [await ours.open_account() for _ in range(plan.update_aggregates)]
        their_ids = [theirs.open_account() for _ in range(plan.update_aggregates)]
        raw_ids = {raw.name: await raw.seed(plan.update_aggregates) for raw in self.raws}
        await self.row(
            "(b) load+change+save, 1 event/command",
            "cmd/s",
            partial(ours.updates, our_ids, plan.updates),
            blocking(partial(theirs.updates, their_ids, plan.updates)),
            {raw.name: partial(raw.updates, raw_ids[raw.name], plan.updates) for raw in self.raws},
        )

    async def batch_appends(self) -> None:
        """Create aggregates of ``batch_size`` events in one command; fills the store for (d)."""
        plan, ours, theirs = self.plan, self.ours, self.theirs
        per_sample = -(-plan.read_events // ((plan.repeats + 1) * plan.batch_size))
        await self.row(
            f"create aggregate, {plan.batch_size:,} events/command",
            "events/s",
            partial(ours.batch_creates, per_sample, plan.batch_size),
            blocking(partial(theirs.batch_creates, per_sample, plan.batch_size)),
            {
                raw.name: partial(raw.batch_inserts, per_sample, plan.batch_size)
                for raw in self.raws
            },
        )

    async def stream_loads(self) -> None:
        """(c) load an aggregate with many events, decoded and as rows only."""
        plan, ours, theirs = self.plan, self.ours, self.theirs
        for length in plan.stream_lengths:
            progress(f"{self.backend}: building streams of {length:,} events")
            our_id = await ours.build_stream(length, plan.batch_size)
            their_id = theirs.build_stream(length, plan.batch_size)
            raw_id = f"long-{length}"
            await self.raws[0].batch_inserts(length // plan.batch_size, plan.batch_size, raw_id)
            count = plan.loads[length]
            raw_reads = {raw.name: partial(raw.stream_reads, raw_id, count) for raw in self.raws}
            await self.row(
                f"(c) load aggregate, {length:,} events",
                "ms/load",
                partial(ours.loads, our_id, count),
                blocking(partial(theirs.loads, their_id, count)),
                raw_reads,
            )
            await self.row(
                f"(c) read stream rows only, {length:,} events",
                "ms/read",
                partial(ours.stream_reads, our_id, count),
                blocking(partial(theirs.stream_reads, their_id, count)),
                raw_reads,
            )

    async def global_reads(self, start_ours: int, start_theirs: int) -> None:
        """(d) read events in global order, a page at a time: rows only, then decoded."""
        plan, ours, theirs = self.plan, self.ours, self.theirs
        count, page = plan.read_events, plan.page_size
        raw_reads = {raw.name: partial(raw.global_read, count, page) for raw in self.raws}
        for decode in (False, True):
            await self.row(
                f"(d) read {count:,} events in order, {'decoded' if decode else 'rows'}",
                "events/s",
                partial(ours.global_read, start_ours, count, page, decode=decode),
                blocking(partial(theirs.global_read, start_theirs, count, page, decode=decode)),
                None if decode else raw_reads,
            )


async def bench_sqlite(target: SQLiteTarget, plan: Plan, report: Report) -> None:
    """Run (a) to (d) on the SQLite file."""
    ours = await OurBank.build(target.sqlalchemy_url)
    theirs = TheirBank(env=target.eventsourcing_env())
    raws: list[RawDriver] = [SQLite3Driver(target.path), await AiosqliteDriver.connect(target.path)]
    try:
        report.settings |= await durability("sqlite", ours, theirs)
        await Bench("sqlite", ours, theirs, raws, plan, report).run()
    finally:
        for raw in raws:
            await raw.close()
        theirs.close()
        await ours.close()


async def bench_postgres(
    target: PostgresTarget, plan: Plan, report: Report, *, writers_only: bool = False
) -> None:
    """Run (a) to (d) (unless ``writers_only``), then (e), on the PostgreSQL database."""
    ours = await OurBank.build(target.sqlalchemy_url)
    theirs = TheirBank(env=target.eventsourcing_env())
    raws: list[RawDriver] = [await AsyncpgDriver.connect(target.dsn)]
    try:
        report.settings |= await durability("postgres", ours, theirs)
        if not writers_only:
            await Bench("postgres", ours, theirs, raws, plan, report).run()
    finally:
        for raw in raws:
            await raw.close()
        theirs.close()
        await ours.close()
    for count in plan.writers:
        await bench_writers(target, plan, report, count)


async def bench_writers(target: PostgresTarget, plan: Plan, report: Report, count: int) -> None:
    """(e) ``count`` concurrent writers creating aggregates, one event per command."""
    progress(f"postgres: (e) {count} writers in one process")
    per_writer = plan.writes_per_writer
    ours = await OurBank.build(target.sqlalchemy_url, pool_size=count, max_overflow=0)
    theirs = TheirBank(env=target.eventsourcing_env(pool_size=count))
    pool = await asyncpg.create_pool(target.dsn, min_size=count, max_size=count)
    try:
        rates = await compare(
            {
                "ours": lambda: writers.ours(ours, count, per_writer),
                "theirs": blocking(lambda: writers.theirs(theirs, count, per_writer)),
                "raw": lambda: writers.raw(pool, count, per_writer),
            },
            repeats=plan.repeats,
        )
    finally:
        await pool.close()
        theirs.close()
        await ours.close()
    _add_writers_row(report, f"(e) {count} writers in 1 process, create", rates)
    if plan.writer_processes:
        progress(f"postgres: (e) {count} writer processes")
        rates = writer_processes.measure(target, count, per_writer, plan.repeats)
        _add_writers_row(report, f"(e) {count} writer processes, create", rates)


def _add_writers_row(report: Report, workload: str, rates: dict[str, float]) -> None:
    report.add_raw("postgres", "asyncpg", workload, rates["raw"], "events/s")
    report.add(
        Row(
            workload,
            "postgres",
            "events/s",
            ours=rates["ours"],
            theirs=rates["theirs"],
            raw=rates["raw"],
            raw_driver="asyncpg",
        )
    )


async def run(
    plan: Plan, only: str | None, projections: ProjectionResults
) -> tuple[Report, dict[str, str]]:
    """Run every backend (or ``only`` one); return the report and the machine facts."""
    report = Report()
    postgres_version = "not measured"
    if only in (None, "sqlite", "snapshots"):
        async with fresh_sqlite() as target:
            if only != "snapshots":
                await bench_sqlite(target, plan, report)
            snapshot_target = SnapshotTarget(
                "sqlite", target.sqlalchemy_url, target.eventsourcing_env()
            )
            await bench_snapshots(snapshot_target, plan, report, progress)
    if only in (None, "postgres", "writers", "snapshots"):
        async with fresh_postgres() as target:
            connection = await asyncpg.connect(target.dsn)
            postgres_version = await connection.fetchval("SHOW server_version")
            await connection.close()
            if only != "snapshots":
                await bench_postgres(target, plan, report, writers_only=only == "writers")
            if only != "writers":
                snapshot_target = SnapshotTarget(
                    "postgres", target.sqlalchemy_url, target.eventsourcing_env()
                )
                await bench_snapshots(snapshot_target, plan, report, progress)
    if only in (None, "projections"):
        await bench_projections(plan, report, projections, progress)
        if postgres_version == "not measured":
            postgres_version = projections.postgres_version
    return report, machine(postgres_version)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, run the benchmarks, print the tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~1 minute smoke run")
    parser.add_argument("--repeats", type=int, help="samples per figure (median is kept)")
    parser.add_argument(
        "--only",
        choices=(
            "sqlite",
            "postgres",
            "writers",
            "snapshots",
            "projections",
            "scheduling",
            "sagas",
            "relay",
            "shop",
        ),
        help="one backend only ('writers': only (e), on PostgreSQL; 'snapshots': only (f), (g); "
        "'projections': only (h), on both backends; 'scheduling': only (i), ours against "
        "procrastinate, on PostgreSQL; 'sagas': only (j), sagas against the bare commands; "
        "'relay': only (k), the relay against the bare broker clients; 'shop': only (l), the "
        "example shop under load over HTTP against the same commands sent bare)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile our path, print top costs")
    parser.add_argument(
        "--breakdown", action="store_true", help="time our path layer by layer (driver, Core, all)"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.repeats:
        plan = dataclasses.replace(plan, repeats=args.repeats, projection_repeats=args.repeats)
    if args.breakdown:
        from benchmarks.breakdown import breakdown  # noqa: PLC0415 - only when asked

        asyncio.run(breakdown())
        return
    if args.only in STANDALONE:  # workloads with a command of their own, imported when asked
        importlib.import_module(STANDALONE[args.only]).main(["--quick"] if args.quick else [])
        return
    if args.profile:
        from benchmarks.profiling import profile_ours  # noqa: PLC0415 - only when asked

        asyncio.run(profile_ours(plan, "sqlite" if args.only == "sqlite" else "postgres"))
        return
    started = time.perf_counter()
    load_at_start = load_average()
    projections = ProjectionResults()
    report, facts = asyncio.run(run(plan, args.only, projections))
    facts = {"load average at the start": load_at_start} | facts
    elapsed = time.perf_counter() - started
    print(
        f"cqrs-ddd vs eventsourcing: {'quick' if args.quick else 'full'} run, "
        f"median of {plan.repeats} repeats, {elapsed:.0f} s"
        + (f" ((h): median of {plan.projection_repeats})" if projections.backends else "")
    )
    print("ratio = ours / theirs on rates: above 1 means cqrs-ddd is faster.\n")
    print(table(report))
    if report.snapshot_summary or report.upcast_summary:
        print("\nSnapshots (f) and upcasting (g) against the issue's targets:\n")
        print(summary_text(report))
    if projections.backends:
        print("\nProjection catch-up (h) against the issue's targets:\n")
        print(projection_summary(projections))
    if report.raw_detail:
        print("\nRaw driver figures (the 'raw driver' column keeps the best per row):\n")
        print(raw_table(report))
    if report.settings:
        print("\nDurability settings as read from the connections:\n")
        print(facts_text(report.settings))
    print("\nMachine:\n")
    print(facts_text(facts))
