"""(i) Scheduled commands due at once, on PostgreSQL: our scheduler and procrastinate, side by side.

``python -m benchmarks.scheduling [--quick]`` (or ``python -m benchmarks --only scheduling``).

Each side runs 1, 2 and 4 worker processes, each running up to 10 commands at
once (our ``CommandSchedulerWorker(batch_size=10)``, procrastinate's
``run_worker_async(concurrency=10)``), both polling every second and woken by
``LISTEN``/``NOTIFY``. The work is the same on both sides: one ``INSERT`` into
``bench_effects`` of the command's key and the database's clock at its start
(ours in the command's unit of work, with the run's completion; procrastinate's
task on a connection of its own, then procrastinate marks the job done).

Round ("burst"): the workers start and go idle; N commands (procrastinate:
jobs) are stored due at one instant a few seconds ahead (our rows written as
``schedule`` writes them, in one ``executemany``; procrastinate's with
``batch_defer_async(schedule_at=...)``); the round ends when every effect is
in. Figures, from the effects' start times (the database's clock):

* ``commands/s``: N over the span from the due instant to the last start;
* ``delay p50`` / ``p99``: start time minus due time (queueing included).

Then "idle": one worker per side, 50 commands due 100 ms apart (nothing queues):
the delay from due time to start, p50 and p99. The sides take turns, round by
round, on one database.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from multiprocessing.synchronize import Event
from typing import Any
from uuid import uuid4

import asyncpg
import procrastinate
from sqlalchemy import func, insert, select, text

from benchmarks.databases import PostgresTarget, fresh_postgres
from cqrs_ddd_advanced_core.scheduling import CommandSchedulerService, CommandSchedulerWorker
from cqrs_ddd_core import Command, HandlerRegistry, Mediator, MessageTypeRegistry, current_uow
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyCommandScheduler,
    SQLAlchemyUnitOfWork,
    create_engine,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy.channels import SCHEDULE_CHANNEL
from cqrs_ddd_persistence_sqlalchemy.schema import scheduled_commands

SIDES = ("ours", "procrastinate")
WORKER_COUNTS = (1, 2, 4)
CONCURRENCY = 10
POLL_SECONDS = 1.0
LEAD_SECONDS = 3.0
IDLE_COMMANDS = 50
IDLE_SPACING_SECONDS = 0.1
DEADLINE_SECONDS = 600.0
START_DEADLINE_SECONDS = 120.0

EFFECTS_DDL = """
CREATE TABLE IF NOT EXISTS bench_effects (
    key text PRIMARY KEY,
    started_at double precision NOT NULL
)
"""
EFFECT_INSERT = (
    "INSERT INTO bench_effects (key, started_at) VALUES ($1, extract(epoch FROM clock_timestamp()))"
)
CLOCK = "SELECT extract(epoch FROM clock_timestamp())::float8"


# ---------------------------------------------------------------- our side


def _our_service(url: str) -> tuple[Any, CommandSchedulerService]:
    """Return our engine and a scheduler service whose command inserts the effect row."""
    engine = create_engine(url, pool_size=CONCURRENCY + 4)
    insert = text(
        "INSERT INTO bench_effects (key, started_at) "
        "VALUES (:key, extract(epoch FROM clock_timestamp()))"
    )
    registry = HandlerRegistry()

    @registry.command_handler(RunTask)
    async def run_task(command: RunTask) -> None:
        uow = current_uow()
        if not isinstance(uow, SQLAlchemyUnitOfWork):
            raise TypeError(type(uow))
        await uow.connection.execute(insert, {"key": command.key})

    mediator = Mediator(registry=registry, uow_factory=partial(SQLAlchemyUnitOfWork, engine))
    service = CommandSchedulerService(
        scheduler=SQLAlchemyCommandScheduler(engine),
        mediator_send_fn=mediator.send,
        message_registry=MessageTypeRegistry([RunTask]),
    )
    return engine, service


class RunTask(Command):
    """The scheduled work: insert ``key``'s effect row."""

    key: str


async def _our_worker(url: str, ready: Any, stop: Event) -> None:
    engine, service = _our_service(url)
    worker = CommandSchedulerWorker(service, poll_interval=POLL_SECONDS, batch_size=CONCURRENCY)
    await worker.start()
    ready.put("ready")
    while not await asyncio.to_thread(stop.wait, 0.2):
        pass
    await worker.stop()
    await engine.dispose()


async def _store_ours(target: PostgresTarget, keys: Sequence[str], due_at: Sequence[float]) -> None:
    """Write the rows ``CommandSchedulerService.schedule`` writes, all in one go, and NOTIFY."""
    engine = create_engine(target.sqlalchemy_url)
    now = time.time()
    rows = [
        {
            "schedule_id": uuid4(),
            "command_type": "RunTask",
            "payload": RunTask(key=key).model_dump(mode="json"),
            "status": "pending",
            "due_at": due,
            "available_at": due,
            "attempts": 0,
            "lease_token": 0,
            "created_at": now,
        }
        for key, due in zip(keys, due_at, strict=True)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(scheduled_commands), rows)
        await connection.execute(select(func.pg_notify(SCHEDULE_CHANNEL, "")))
    await engine.dispose()


# ---------------------------------------------------------------- procrastinate


def _procrastinate_app(dsn: str) -> Any:
    return procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=2, max_size=CONCURRENCY + 4)
    )


async def _procrastinate_worker(dsn: str, ready: Any, stop: Event) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=CONCURRENCY, max_size=CONCURRENCY)
    app = _procrastinate_app(dsn)

    @app.task(name="run_task")
    async def run_task(key: str) -> None:
        async with pool.acquire() as connection:
            await connection.execute(EFFECT_INSERT, key)

    async with app.open_async():
        task = asyncio.create_task(
            app.run_worker_async(
                concurrency=CONCURRENCY,
                fetch_job_polling_interval=POLL_SECONDS,
                install_signal_handlers=False,
            )
        )
        await asyncio.sleep(0.5)  # let it LISTEN before the round stores its jobs
        ready.put("ready")
        while not await asyncio.to_thread(stop.wait, 0.2):
            pass
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await pool.close()


async def _store_procrastinate(
    target: PostgresTarget, keys: Sequence[str], due_at: Sequence[float]
) -> None:
    app = _procrastinate_app(target.dsn)

    @app.task(name="run_task")
    async def run_task(key: str) -> None:  # the workers run it; here it is only deferred
        raise AssertionError(key)

    async with app.open_async():
        moments = {due: datetime.fromtimestamp(due, UTC) for due in set(due_at)}
        for due in sorted(moments):
            batch = [{"key": key} for key, at in zip(keys, due_at, strict=True) if at == due]
            await run_task.configure(schedule_at=moments[due]).batch_defer_async(*batch)


# ---------------------------------------------------------------- the rounds


def _worker_process(side: str, target: PostgresTarget, ready: Any, stop: Event) -> None:
    runner = _our_worker if side == "ours" else _procrastinate_worker
    address = target.sqlalchemy_url if side == "ours" else target.dsn
    asyncio.run(runner(address, ready, stop))


@dataclass
class Figures:
    """One round's figures for one side."""

    rate: float
    p50: float
    p99: float


@dataclass
class Results:
    """Every round's figures, by workload, worker count and side."""

    burst: dict[tuple[int, str], Figures] = field(default_factory=dict)
    idle: dict[str, Figures] = field(default_factory=dict)
    commands: int = 0


async def _prepare(target: PostgresTarget) -> None:
    engine = create_engine(target.sqlalchemy_url)
    await upgrade_schema(engine)
    await engine.dispose()
    app = _procrastinate_app(target.dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
    connection = await asyncpg.connect(target.dsn)
    try:
        await connection.execute(EFFECTS_DDL)
    finally:
        await connection.close()


async def _round(
    target: PostgresTarget, side: str, workers: int, due_offsets: Sequence[float]
) -> Figures:
    connection = await asyncpg.connect(target.dsn)
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    processes = [
        context.Process(target=_worker_process, args=(side, target, ready, stop), daemon=True)
        for _ in range(workers)
    ]
    try:
        await connection.execute(
            "TRUNCATE bench_effects, cqrs_scheduled_commands, procrastinate_jobs CASCADE"
        )
        for process in processes:
            process.start()
        for _ in processes:
            await asyncio.to_thread(ready.get, True, START_DEADLINE_SECONDS)
        keys = [f"k{number}" for number in range(len(due_offsets))]
        base = float(await connection.fetchval(CLOCK)) + LEAD_SECONDS
        due_at = [base + offset for offset in due_offsets]
        store = _store_ours if side == "ours" else _store_procrastinate
        await store(target, keys, due_at)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while await connection.fetchval("SELECT count(*) FROM bench_effects") < len(keys):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{side} with {workers} workers did not finish")
            await asyncio.sleep(0.05)
        rows = await connection.fetch("SELECT key, started_at FROM bench_effects")
    finally:
        stop.set()
        for process in processes:
            await asyncio.to_thread(process.join, 30)
            if process.is_alive():
                process.kill()
        await connection.close()
    due_of = dict(zip(keys, due_at, strict=True))
    delays = sorted(row["started_at"] - due_of[row["key"]] for row in rows)
    span = max(row["started_at"] for row in rows) - min(due_at)
    return Figures(
        rate=len(rows) / span,
        p50=statistics.median(delays),
        p99=delays[min(len(delays) - 1, int(len(delays) * 0.99))],
    )


async def bench_scheduling(target: PostgresTarget, commands: int, progress: Any) -> Results:
    """Run the burst rounds (1, 2 and 4 workers) and the idle round, each side in turn."""
    await _prepare(target)
    results = Results(commands=commands)
    for workers in WORKER_COUNTS:
        for side in SIDES:
            progress(f"(i) {commands:,} due at once, {workers} worker process(es): {side}")
            results.burst[(workers, side)] = await _round(target, side, workers, [0.0] * commands)
    offsets = [number * IDLE_SPACING_SECONDS for number in range(IDLE_COMMANDS)]
    for side in SIDES:
        spacing = IDLE_SPACING_SECONDS * 1000
        progress(f"(i) idle workers, {IDLE_COMMANDS} due {spacing:g} ms apart: {side}")
        results.idle[side] = await _round(target, side, 1, offsets)
    return results


def summary_text(results: Results) -> str:
    """Return the results as a Markdown table, ratios ours/procrastinate on the rates."""
    lines = [
        f"(i) scheduled commands on PostgreSQL: {results.commands:,} due at once; "
        "delay = start - due (database clock)",
        "",
        "| workers | ours cmd/s | procrastinate cmd/s | ours/procrastinate | "
        "ours delay p50 / p99 | procrastinate delay p50 / p99 |",
        "|---|---|---|---|---|---|",
    ]
    for workers in WORKER_COUNTS:
        ours = results.burst[(workers, "ours")]
        theirs = results.burst[(workers, "procrastinate")]
        lines.append(
            f"| {workers} | {ours.rate:,.0f} | {theirs.rate:,.0f} | "
            f"{ours.rate / theirs.rate:.2f} | "
            f"{ours.p50 * 1000:,.0f} / {ours.p99 * 1000:,.0f} ms | "
            f"{theirs.p50 * 1000:,.0f} / {theirs.p99 * 1000:,.0f} ms |"
        )
    ours, theirs = results.idle["ours"], results.idle["procrastinate"]
    lines += [
        "",
        f"idle workers (1 process, {IDLE_COMMANDS} commands {IDLE_SPACING_SECONDS * 1000:g} ms "
        "apart): delay p50 / p99",
        f"ours {ours.p50 * 1000:,.1f} / {ours.p99 * 1000:,.1f} ms; "
        f"procrastinate {theirs.p50 * 1000:,.1f} / {theirs.p99 * 1000:,.1f} ms",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Run (i) on a fresh PostgreSQL database and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 commands instead of 10,000")
    args = parser.parse_args(argv)
    commands = 1_000 if args.quick else 10_000

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    async def run() -> Results:
        async with fresh_postgres() as target:
            return await bench_scheduling(target, commands, progress)

    print(summary_text(asyncio.run(run())))


if __name__ == "__main__":
    main()
