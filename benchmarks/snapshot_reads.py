"""Where the time of a load from a snapshot goes: each read path and its building blocks.

``uv run --group bench python -m benchmarks.snapshot_reads [--calls N]``: on a fresh
SQLite file and a fresh PostgreSQL database, an account of 1,000 events with a
snapshot at its last version (as in (f)), then each way of reading "the newest
snapshot and the events after it", and the pieces they are made of, timed alone:
a pool checkout, one driver call, one statement through SQLAlchemy, one hand-off
to aiosqlite's thread. Each figure is the median of 5 samples of ``--calls``
calls (default 2,000), in microseconds per call. Not part of
``python -m benchmarks``; see ``benchmarks/README.md``, "Snapshots and upcasting".
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Integer, String, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from benchmarks.databases import fresh_postgres, fresh_sqlite
from benchmarks.ours import Account, OurBank
from cqrs_ddd_advanced_core import EventSourcedLoader, EventSourcedRepository
from cqrs_ddd_advanced_core.snapshots import EveryNEventsStrategy, SnapshotStore
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemySnapshotRepository, read_only
from cqrs_ddd_persistence_sqlalchemy.connections import Reads
from cqrs_ddd_persistence_sqlalchemy.driver_reads import DriverQuery, SQLiteLoopReader
from cqrs_ddd_persistence_sqlalchemy.schema import events, snapshots
from cqrs_ddd_persistence_sqlalchemy.snapshots import _SNAPSHOT_AND_LATER_EVENTS

LENGTH = 1_000

# The second of the two statements a load made before the one-round-trip read.
_EVENTS_FROM = (
    select(*events.c)
    .where(
        events.c.stream_id == bindparam("stream_id", type_=String()),
        events.c.version >= bindparam("from_version", type_=Integer()),
    )
    .order_by(events.c.version)
)

Timed = Callable[[], Awaitable[Any]]


async def _median_us(function: Timed, calls: int) -> float:
    for _ in range(max(calls // 10, 20)):
        await function()
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            await function()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def _read_view(engine: AsyncEngine) -> AsyncEngine:
    """What ``reading()`` built on every call before it kept one per engine."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return read_only(engine)


def _read_paths(engine: AsyncEngine, stream_id: str) -> list[tuple[str, Timed]]:
    parameters = {"stream_id": stream_id}
    query = DriverQuery(_SNAPSHOT_AND_LATER_EVENTS, engine)

    async def two_reads_before() -> None:
        async with _read_view(engine).connect() as connection:
            newest = (
                select(snapshots)
                .where(snapshots.c.stream_id == stream_id)
                .order_by(snapshots.c.version.desc())
                .limit(1)
            )
            row = (await connection.execute(newest)).mappings().one()
        async with _read_view(engine).connect() as connection:
            after = {"stream_id": stream_id, "from_version": row["version"] + 1}
            (await connection.execute(_EVENTS_FROM, after)).all()

    reads = Reads(engine)

    async def joint_through_sqlalchemy() -> None:
        async with reads.connection() as connection:
            (await connection.execute(_SNAPSHOT_AND_LATER_EVENTS, parameters)).all()

    async def joint_on_pooled_driver() -> None:
        await query.fetch_pooled(engine, parameters)

    paths: list[tuple[str, Timed]] = [
        ("read, before: two SELECTs via SQLAlchemy, a view per call", two_reads_before),
        ("read: the joint SELECT via SQLAlchemy (Reads)", joint_through_sqlalchemy),
        ("read: the joint SELECT on a pooled driver connection", joint_on_pooled_driver),
    ]
    loop_reader = SQLiteLoopReader.for_engine(engine, query.sql)
    if loop_reader is not None:
        arguments = query.arguments(parameters)

        async def joint_on_the_loop() -> None:
            query.rows(loop_reader.fetch(arguments) or [])

        paths.append(("read: the joint SELECT on the loop (SQLiteLoopReader)", joint_on_the_loop))
    return paths


async def _pieces(engine: AsyncEngine, calls: int) -> list[tuple[str, float]]:
    reads = Reads(engine)

    async def checkout_view() -> None:
        async with reads.connection():
            pass

    async def checkout_raw() -> None:
        proxied = await engine.raw_connection()
        await greenlet_spawn(proxied.close)

    rows = [
        ("piece: pool checkout + return of the read view", await _median_us(checkout_view, calls)),
        ("piece: raw pool checkout + return", await _median_us(checkout_raw, calls)),
    ]
    async with engine.connect() as held:
        driver = (await held.get_raw_connection()).driver_connection
        if engine.dialect.name == "postgresql":
            label, one_call = (
                "piece: one asyncpg round trip (SELECT 1, held connection)",
                (lambda: driver.fetch("SELECT 1")),
            )
        else:
            label, one_call = (
                "piece: one aiosqlite hand-off (SELECT 1, held connection)",
                (lambda: driver.execute_fetchall("SELECT 1", ())),
            )
        rows.append((label, await _median_us(one_call, calls)))
        rows.append(
            (
                "piece: SELECT 1 through SQLAlchemy (held connection)",
                await _median_us(lambda: held.execute(text("SELECT 1")), calls),
            )
        )
    if engine.dialect.name == "sqlite" and engine.url.database:
        plain = sqlite3.connect(engine.url.database, isolation_level=None)

        async def sqlite3_select() -> None:
            plain.execute("SELECT 1").fetchall()

        rows.append(
            ("piece: sqlite3 SELECT 1 on the loop", await _median_us(sqlite3_select, calls))
        )
        plain.close()
    return rows


async def _measure(url: str, calls: int) -> list[tuple[str, float]]:
    bank = await OurBank.build(url)
    try:
        snapshot_repository = SQLAlchemySnapshotRepository(bank.engine)
        store = SnapshotStore(strategy=EveryNEventsStrategy(100), repository=snapshot_repository)
        repository = EventSourcedRepository(
            EventSourcedLoader(Account, bank.event_store, bank.event_registry, store)
        )
        bank.accounts = repository
        stream_id = await bank.build_stream(LENGTH, LENGTH)
        paths: list[tuple[str, Timed]] = [
            ("whole load from the snapshot: repository.get", lambda: repository.get(stream_id)),
            (
                "read: load_snapshot_and_events (what a load uses)",
                lambda: snapshot_repository.load_snapshot_and_events(stream_id),
            ),
            *_read_paths(bank.engine, stream_id),
        ]
        rows = [(label, await _median_us(function, calls)) for label, function in paths]
        return rows + await _pieces(bank.engine, calls)
    finally:
        await bank.close()


async def _run(calls: int) -> None:
    async with fresh_sqlite() as sqlite_target:
        sqlite_rows = await _measure(sqlite_target.sqlalchemy_url, calls)
    async with fresh_postgres() as postgres_target:
        postgres_rows = await _measure(postgres_target.sqlalchemy_url, calls)
    for backend, rows in (("sqlite", sqlite_rows), ("postgres", postgres_rows)):
        print(f"\n{backend} (µs per call, median of 5 x {calls:,})")
        for label, microseconds in rows:
            print(f"  {label:64s} {microseconds:9.1f}")


def main() -> None:
    """Parse the arguments and print both backends' figures."""
    parser = argparse.ArgumentParser(description="Time each read path of a snapshot load.")
    parser.add_argument("--calls", type=int, default=2_000, help="calls per sample")
    asyncio.run(_run(parser.parse_args().calls))


if __name__ == "__main__":
    main()
