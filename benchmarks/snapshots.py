"""(f) loads with and without snapshots, both sides; (g) the cost of an upcast chain (ours).

(f) builds one account of each length per side, once per run, in commands of
``plan.snapshot_batch`` events (ours: ``OpenAccount`` then ``Deposit(times=...)``, one
append each; theirs: ``open_account`` then ``deposit``, one ``save`` each; a single
100,000-event ``save`` stalls eventsourcing's psycopg pipeline on PostgreSQL), through
applications with snapshotting on, so the write path takes the snapshots: our
``EventSourcedRepository.save`` with a ``SnapshotStore`` (``EveryNEventsStrategy(100)``,
``repository=SQLAlchemySnapshotRepository(engine)``) takes one at the end of every save
(each crosses the threshold; the newest is kept); eventsourcing's
``snapshotting_intervals = {Account: 100}`` takes one at every multiple of 100 while
saving (all are kept). Then it times a full replay (a loader/app without snapshots on
the same stream) and a load from the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar
from uuid import UUID

from benchmarks import theirs as their_domain
from benchmarks.ours import Account, OurBank
from benchmarks.plan import Plan
from benchmarks.report import Report, Row
from benchmarks.theirs import TheirBank
from benchmarks.timing import Sample, Stopwatch, Workload, compare
from benchmarks.upcasting import upcast_rows
from cqrs_ddd_advanced_core import EventSourcedLoader, EventSourcedRepository
from cqrs_ddd_advanced_core.snapshots import EveryNEventsStrategy, SnapshotStore
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemySnapshotRepository

FREQUENCY = 100
"""Snapshot every 100 events, on both sides."""


class TheirSnapshottingBank(TheirBank):
    """Their application with a snapshot every ``FREQUENCY`` events, taken while saving."""

    name = "TheirBank"  # the same tables as the plain app (on PostgreSQL they are named after it)
    snapshotting_intervals: ClassVar = {their_domain.Account: FREQUENCY}


@dataclass
class SnapshotTarget:
    """One backend: how to build each side's applications."""

    backend: str
    url: str
    env: dict[str, str]


def _blocking(function: Callable[[], Sample]) -> Workload:
    async def run() -> Sample:
        return function()

    return run


async def _our_loads(repository: EventSourcedRepository[Account], key: str, n: int) -> Sample:
    with Stopwatch() as watch:
        for _ in range(n):
            await repository.get(key)
    return Sample(n, watch.seconds)


def _their_loads(app: TheirBank, key: UUID, n: int) -> Sample:
    with Stopwatch() as watch:
        for _ in range(n):
            app.repository.get(key)
    return Sample(n, watch.seconds)


async def bench_snapshots(
    target: SnapshotTarget, plan: Plan, report: Report, progress: Callable[[str], None]
) -> None:
    """Run (f) and (g) on one backend; add the rows and the summary lines to ``report``."""
    backend = target.backend
    ours = await OurBank.build(target.url)
    full_replay = ours.accounts
    snapshot_store = SnapshotStore(
        strategy=EveryNEventsStrategy(FREQUENCY),
        repository=SQLAlchemySnapshotRepository(ours.engine),
    )
    ours.accounts = EventSourcedRepository(
        EventSourcedLoader(
            aggregate_type=Account,
            event_store=ours.event_store,
            event_registry=ours.event_registry,
            snapshot_store=snapshot_store,
        )
    )
    theirs_plain = TheirBank(env=target.env)
    theirs_snap = TheirSnapshottingBank(env=target.env)
    try:
        for length in plan.snapshot_lengths:
            progress(f"{backend}: (f) building an aggregate of {length:,} events per side")
            batch = min(length, plan.snapshot_batch)
            with Stopwatch() as our_build:
                our_id = await ours.build_stream(length, batch)
            with Stopwatch() as their_build:
                their_id = theirs_snap.build_stream(length, batch)
            snapshot = await snapshot_store.repository.latest(our_id)
            if snapshot is None or snapshot.version != length:
                raise RuntimeError(f"our snapshot of {length:,} events was not taken: {snapshot}")
            report.notes.append(
                f"{backend}: building {length:,} events in commands of {batch:,} took "
                f"{our_build.seconds:.1f} s ours ({-(-length // batch)} snapshot(s), 1 kept), "
                f"{their_build.seconds:.1f} s theirs ({length // FREQUENCY} snapshots)"
            )
            replays = max(1, plan.replay_events // length)
            rows = []
            for label, our_repo, their_app, count in (
                ("full replay", full_replay, theirs_plain, replays),
                ("from snapshot", ours.accounts, theirs_snap, plan.snapshot_loads),
            ):
                workload = f"(f) load {length:,} events, {label}"
                progress(f"{backend}: {workload}")
                rates = await compare(
                    {
                        "ours": partial(_our_loads, our_repo, our_id, count),
                        "theirs": _blocking(partial(_their_loads, their_app, their_id, count)),
                    },
                    repeats=plan.repeats,
                )
                rows.append(
                    report.add(Row(workload, backend, "ms/load", rates["ours"], rates["theirs"]))
                )
            report.snapshot_summary.append((backend, length, rows[0], rows[1]))
        await upcast_rows(ours, backend, plan, report, progress)
    finally:
        theirs_snap.close()
        theirs_plain.close()
        await ours.close()


def summary_text(report: Report) -> str:
    """Return the snapshot and upcasting figures against the issue's targets."""
    lines = [
        (
            "backend",
            "events",
            "ours full ms",
            "ours snapshot ms",
            "full/snapshot",
            "theirs snapshot ms",
            "ours/theirs time",
            "target ours/theirs",
        )
    ]
    for backend, length, full, snap in report.snapshot_summary:
        ours_full, ours_snap = 1000 / (full.ours or 1), 1000 / (snap.ours or 1)
        theirs_snap = 1000 / (snap.theirs or 1)
        target = "<= 0.60" if backend == "postgres" else "<= 1.00"
        lines.append(
            (
                backend,
                f"{length:,}",
                f"{ours_full:,.2f}",
                f"{ours_snap:.3f}",
                f"{ours_full / ours_snap:,.0f}x",
                f"{theirs_snap:.3f}",
                f"{ours_snap / theirs_snap:.2f}",
                target,
            )
        )
    text = _aligned(lines) + "\n(full/snapshot target: >= 20x at 10,000 events)\n\n"
    upcast = [("backend", "events", "decoded, no chain", "decoded, v1->v4 chain", "overhead")]
    for backend, count, plain, chained in report.upcast_summary:
        overhead = (plain / chained - 1) * 100
        upcast.append(
            (backend, f"{count:,}", f"{plain:,.0f}/s", f"{chained:,.0f}/s", f"{overhead:.1f}%")
        )
    text += _aligned(upcast) + "\n(overhead = extra time per event; target: <= 25%)"
    if report.notes:
        text += "\n\n" + "\n".join(report.notes)
    return text


def _aligned(lines: list[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    )
