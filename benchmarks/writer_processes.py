"""(e) Concurrent writers as separate processes on PostgreSQL, each creating its own aggregates.

One process per writer and per side (ours, eventsourcing, raw asyncpg), each
with one connection, the way an application scales out past one interpreter.
All processes start (and warm up) first; then, round by round, the parent
releases one side's writers together through a barrier, and each writer
reports when its ``per_writer`` commands started and ended. A round's rate is
all its events over the span from the first start to the last end
(``time.perf_counter`` is the system-wide monotonic clock on Linux, so the
processes' readings compare). The sides take turns, round by round.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
import uuid
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from queue import Queue
from typing import Any

import asyncpg

from benchmarks.databases import PostgresTarget
from benchmarks.ours import OurBank
from benchmarks.raw import POSTGRES_INSERT, row
from benchmarks.theirs import TheirBank

SIDES = ("ours", "theirs", "raw")
WARM_UP_COMMANDS = 5
TIMEOUT_SECONDS = 300


def measure(target: PostgresTarget, writers: int, per_writer: int, rounds: int) -> dict[str, float]:
    """Return each side's median events/s over ``rounds`` rounds of ``writers`` processes."""
    # eventsourcing creates its tables when an application starts; several
    # processes doing so at once can collide in PostgreSQL's catalog ("tuple
    # concurrently updated"), so the tables are made here first
    TheirBank(env=target.eventsourcing_env(pool_size=1)).close()
    context = multiprocessing.get_context("spawn")
    barriers = {side: context.Barrier(writers + 1, timeout=TIMEOUT_SECONDS) for side in SIDES}
    results: Queue[tuple[float, float]] = context.Queue()  # type: ignore[assignment]
    processes = [
        context.Process(
            target=_writer,
            args=(_Job(side, target, per_writer, rounds), barriers[side], results),
            daemon=True,
        )
        for side in SIDES
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    try:
        for _ in range(rounds):
            for side in SIDES:
                barriers[side].wait()
                spans = [results.get(timeout=TIMEOUT_SECONDS) for _ in range(writers)]
                elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
                rates[side].append(writers * per_writer / elapsed)
    finally:
        for process in processes:
            process.join(timeout=TIMEOUT_SECONDS)
            if process.is_alive():
                process.terminate()
    return {side: statistics.median(values) for side, values in rates.items()}


@dataclass(frozen=True)
class _Job:
    """What one writer process does: which side, where, how much, how many rounds."""

    side: str
    target: PostgresTarget
    per_writer: int
    rounds: int


def _writer(job: _Job, barrier: Barrier, results: Queue[tuple[float, float]]) -> None:
    if job.side == "theirs":
        _their_writer(job, barrier, results)
    else:
        asyncio.run(_async_writer(job, barrier, results))


def _their_writer(job: _Job, barrier: Barrier, results: Queue[tuple[float, float]]) -> None:
    bank = TheirBank(env=job.target.eventsourcing_env(pool_size=1))
    for _ in range(WARM_UP_COMMANDS):
        bank.open_account()
    for _ in range(job.rounds):
        barrier.wait()
        start = time.perf_counter()
        for _ in range(job.per_writer):
            bank.open_account()
        results.put((start, time.perf_counter()))
    bank.close()


async def _async_writer(job: _Job, barrier: Barrier, results: Queue[tuple[float, float]]) -> None:
    command: Any
    if job.side == "ours":
        bank = OurBank.connect(job.target.sqlalchemy_url, pool_size=1, max_overflow=0)
        command, close = bank.open_account, bank.close
    else:
        connection = await asyncpg.connect(job.target.dsn)

        async def insert() -> None:
            async with connection.transaction():
                await connection.execute(
                    POSTGRES_INSERT, *row(f"p-{uuid.uuid4().hex}", 1, sqlite_types=False)
                )

        command, close = insert, connection.close
    for _ in range(WARM_UP_COMMANDS):
        await command()
    for _ in range(job.rounds):
        barrier.wait()  # blocks the loop on purpose: nothing else runs in this process
        start = time.perf_counter()
        for _ in range(job.per_writer):
            await command()
        results.put((start, time.perf_counter()))
    await close()
