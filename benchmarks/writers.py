"""(e) Concurrent writers on PostgreSQL, each creating its own aggregates.

Every side runs its writers inside one process, the way each library is
meant to be used concurrently: ours as asyncio tasks, each command in its own
unit of work on its own pooled connection (pool size = writers); eventsourcing
as threads sharing one ``Application`` whose psycopg pool has one connection
per writer; the raw limit as asyncio tasks on an asyncpg pool of the same
size, each doing one INSERT per transaction. Both libraries serialise appends
(ours with an advisory lock, eventsourcing with ``LOCK TABLE ... EXCLUSIVE``);
the raw runs take no lock, so they show what the server itself allows.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg

from benchmarks.ours import OurBank
from benchmarks.raw import POSTGRES_INSERT, row
from benchmarks.theirs import TheirBank
from benchmarks.timing import Sample, Stopwatch


async def ours(bank: OurBank, writers: int, per_writer: int) -> Sample:
    """Run ``writers`` tasks, each sending ``per_writer`` account-opening commands."""

    async def writer() -> None:
        for _ in range(per_writer):
            await bank.open_account()

    with Stopwatch() as watch:
        async with asyncio.TaskGroup() as group:
            for _ in range(writers):
                group.create_task(writer())
    return Sample(writers * per_writer, watch.seconds)


def theirs(bank: TheirBank, writers: int, per_writer: int) -> Sample:
    """Run ``writers`` threads, each running ``per_writer`` account-opening commands."""

    def writer() -> None:
        for _ in range(per_writer):
            bank.open_account()

    with ThreadPoolExecutor(max_workers=writers) as executor, Stopwatch() as watch:
        futures = [executor.submit(writer) for _ in range(writers)]
        for future in futures:
            future.result()  # re-raises what a writer raised
    return Sample(writers * per_writer, watch.seconds)


async def raw(pool: asyncpg.Pool, writers: int, per_writer: int) -> Sample:
    """Run ``writers`` tasks, each doing ``per_writer`` single-INSERT transactions."""

    async def writer(number: int) -> None:
        async with pool.acquire() as connection:
            for _ in range(per_writer):
                async with connection.transaction():
                    await connection.execute(
                        POSTGRES_INSERT,
                        *row(f"w{number}-{uuid.uuid4().hex}", 1, sqlite_types=False),
                    )

    with Stopwatch() as watch:
        async with asyncio.TaskGroup() as group:
            for number in range(writers):
                group.create_task(writer(number))
    return Sample(writers * per_writer, watch.seconds)
