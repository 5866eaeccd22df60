"""The raw driver limit on SQLite: ``sqlite3`` (synchronous) and ``aiosqlite`` (a thread).

Both open the run's file with the settings the libraries get by default: WAL
journal, the compiled-in ``synchronous`` level, autocommit mode with explicit
``BEGIN IMMEDIATE`` ... ``COMMIT`` around each write transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from benchmarks.raw import SQLITE_INSERT, SQLITE_PAGE, SQLITE_STREAM, SQLITE_TABLE, row
from benchmarks.timing import Sample, Stopwatch


def _open(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(SQLITE_TABLE)
    return connection


class SQLite3Driver:
    """Raw runs through the standard ``sqlite3`` module, called directly."""

    name = "sqlite3"

    def __init__(self, path: Path) -> None:
        self.connection = _open(path)
        self._streams = 0

    async def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    def _new_stream(self) -> str:
        self._streams += 1
        return f"raw3-{self._streams}"

    async def single_inserts(self, count: int) -> Sample:
        connection = self.connection
        with Stopwatch() as watch:
            for _ in range(count):
                connection.execute("BEGIN IMMEDIATE")
                connection.execute(SQLITE_INSERT, row(self._new_stream(), 1, sqlite_types=True))
                connection.execute("COMMIT")
        return Sample(count, watch.seconds)

    async def batch_inserts(self, count: int, batch: int, stream_id: str | None = None) -> Sample:
        connection = self.connection
        with Stopwatch() as watch:
            for number in range(count):
                stream = stream_id or self._new_stream()
                first = number * batch + 1 if stream_id else 1
                rows = [row(stream, first + i, sqlite_types=True) for i in range(batch)]
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(SQLITE_INSERT, rows)
                connection.execute("COMMIT")
        return Sample(count * batch, watch.seconds)

    async def seed(self, count: int) -> list[str]:
        streams = [self._new_stream() for _ in range(count)]
        rows = [row(stream, 1, sqlite_types=True) for stream in streams]
        self.connection.execute("BEGIN IMMEDIATE")
        self.connection.executemany(SQLITE_INSERT, rows)
        self.connection.execute("COMMIT")
        return streams

    async def updates(self, stream_ids: list[str], count: int) -> Sample:
        connection = self.connection
        with Stopwatch() as watch:
            for number in range(count):
                stream = stream_ids[number % len(stream_ids)]
                connection.execute("BEGIN IMMEDIATE")
                rows = connection.execute(SQLITE_STREAM, (stream,)).fetchall()
                connection.execute(SQLITE_INSERT, row(stream, len(rows) + 1, sqlite_types=True))
                connection.execute("COMMIT")
        return Sample(count, watch.seconds)

    async def stream_reads(self, stream_id: str, count: int) -> Sample:
        with Stopwatch() as watch:
            for _ in range(count):
                self.connection.execute(SQLITE_STREAM, (stream_id,)).fetchall()
        return Sample(count, watch.seconds)

    async def global_read(self, count: int, page_size: int) -> Sample:
        read, position = 0, 0
        with Stopwatch() as watch:
            while read < count:
                page = self.connection.execute(
                    SQLITE_PAGE, (position, min(page_size, count - read))
                ).fetchall()
                if not page:
                    break
                read += len(page)
                position = page[-1][0]
        return Sample(read, watch.seconds)


class AiosqliteDriver:
    """Raw runs through ``aiosqlite``: ``sqlite3`` on a worker thread, awaited."""

    name = "aiosqlite"

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        self._streams = 0

    @classmethod
    async def connect(cls, path: Path) -> AiosqliteDriver:
        """Open the file and create the table."""
        connection = await aiosqlite.connect(path, isolation_level=None)
        await connection.execute("PRAGMA journal_mode = WAL")
        await connection.execute(SQLITE_TABLE)
        return cls(connection)

    async def close(self) -> None:
        """Close the connection (and its thread)."""
        await self.connection.close()

    def _new_stream(self) -> str:
        self._streams += 1
        return f"rawa-{self._streams}"

    async def single_inserts(self, count: int) -> Sample:
        connection = self.connection
        with Stopwatch() as watch:
            for _ in range(count):
                await connection.execute("BEGIN IMMEDIATE")
                await connection.execute(
                    SQLITE_INSERT, row(self._new_stream(), 1, sqlite_types=True)
                )
                await connection.execute("COMMIT")
        return Sample(count, watch.seconds)

    async def batch_inserts(self, count: int, batch: int, stream_id: str | None = None) -> Sample:
        connection = self.connection
        with Stopwatch() as watch:
            for number in range(count):
                stream = stream_id or self._new_stream()
                first = number * batch + 1 if stream_id else 1
                rows = [row(stream, first + i, sqlite_types=True) for i in range(batch)]
                await connection.execute("BEGIN IMMEDIATE")
                await connection.executemany(SQLITE_INSERT, rows)
                await connection.execute("COMMIT")
        return Sample(count * batch, watch.seconds)

    async def seed(self, count: int) -> list[str]:
        streams = [self._new_stream() for _ in range(count)]
        rows = [row(stream, 1, sqlite_types=True) for stream in streams]
        await self.connection.execute("BEGIN IMMEDIATE")
        await self.connection.executemany(SQLITE_INSERT, rows)
        await self.connection.execute("COMMIT")
        return streams

    async def updates(self, stream_ids: list[str], count: int) -> Sample:
        connection = self.connection
        with Stopwatch() as watch:
            for number in range(count):
                stream = stream_ids[number % len(stream_ids)]
                await connection.execute("BEGIN IMMEDIATE")
                async with connection.execute(SQLITE_STREAM, (stream,)) as cursor:
                    rows = list(await cursor.fetchall())
                await connection.execute(
                    SQLITE_INSERT, row(stream, len(rows) + 1, sqlite_types=True)
                )
                await connection.execute("COMMIT")
        return Sample(count, watch.seconds)

    async def stream_reads(self, stream_id: str, count: int) -> Sample:
        with Stopwatch() as watch:
            for _ in range(count):
                async with self.connection.execute(SQLITE_STREAM, (stream_id,)) as cursor:
                    await cursor.fetchall()
        return Sample(count, watch.seconds)

    async def global_read(self, count: int, page_size: int) -> Sample:
        read, position = 0, 0
        with Stopwatch() as watch:
            while read < count:
                async with self.connection.execute(
                    SQLITE_PAGE, (position, min(page_size, count - read))
                ) as cursor:
                    page = list(await cursor.fetchall())
                if not page:
                    break
                read += len(page)
                position = page[-1][0]
        return Sample(read, watch.seconds)
