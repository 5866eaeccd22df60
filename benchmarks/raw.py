"""The raw driver limit: the same rows written and read with no framework at all.

A ``raw_events`` table shaped like our ``cqrs_events`` (same columns, types,
primary key and unique constraints) is written and read with the bare driver:
asyncpg on PostgreSQL (the driver our engine uses), and on SQLite both the
standard ``sqlite3`` module (what eventsourcing uses) and ``aiosqlite`` (what
our engine uses: ``sqlite3`` on a worker thread). Payloads are the same small
JSON documents the libraries store; rows are fetched, never decoded further.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from benchmarks.timing import Sample, Stopwatch

PAYLOAD = json.dumps({"amount": 1, "currency": "EUR", "note": "salary"})

POSTGRES_TABLE = """
CREATE TABLE IF NOT EXISTS raw_events (
    position BIGSERIAL PRIMARY KEY,
    stream_id VARCHAR(255) NOT NULL,
    version INTEGER NOT NULL,
    event_id UUID NOT NULL,
    event_type VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    aggregate_type VARCHAR(255),
    occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
    correlation_id VARCHAR(255),
    causation_id VARCHAR(255),
    payload JSONB NOT NULL,
    metadata JSONB NOT NULL,
    UNIQUE (stream_id, version),
    UNIQUE (stream_id, event_id)
)"""

SQLITE_TABLE = """
CREATE TABLE IF NOT EXISTS raw_events (
    position INTEGER PRIMARY KEY,
    stream_id VARCHAR(255) NOT NULL,
    version INTEGER NOT NULL,
    event_id CHAR(32) NOT NULL,
    event_type VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    aggregate_type VARCHAR(255),
    occurred_at DATETIME NOT NULL,
    correlation_id VARCHAR(255),
    causation_id VARCHAR(255),
    payload JSON NOT NULL,
    metadata JSON NOT NULL,
    UNIQUE (stream_id, version),
    UNIQUE (stream_id, event_id)
)"""

POSTGRES_INSERT = (
    "INSERT INTO raw_events (stream_id, version, event_id, event_type, schema_version, "
    "aggregate_type, occurred_at, correlation_id, causation_id, payload, metadata) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
)
SQLITE_INSERT = (
    "INSERT INTO raw_events (stream_id, version, event_id, event_type, schema_version, "
    "aggregate_type, occurred_at, correlation_id, causation_id, payload, metadata) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
POSTGRES_STREAM = "SELECT * FROM raw_events WHERE stream_id = $1 ORDER BY version"
SQLITE_STREAM = "SELECT * FROM raw_events WHERE stream_id = ? ORDER BY version"
POSTGRES_PAGE = "SELECT * FROM raw_events WHERE position > $1 ORDER BY position LIMIT $2"
SQLITE_PAGE = "SELECT * FROM raw_events WHERE position > ? ORDER BY position LIMIT ?"


def row(stream_id: str, version: int, *, sqlite_types: bool) -> tuple[Any, ...]:
    """Return one event row as the driver takes it."""
    event_id = uuid.uuid4()
    now = datetime.now(UTC)
    return (
        stream_id,
        version,
        event_id.hex if sqlite_types else event_id,
        "MoneyDeposited",
        1,
        "Account",
        now.replace(tzinfo=None).isoformat(" ") if sqlite_types else now,
        None,
        None,
        PAYLOAD,
        "{}",
    )


class RawDriver(Protocol):
    """What every raw run offers; each method does the work and times it."""

    name: str

    async def close(self) -> None:
        """Close the driver's connection."""
        ...

    async def single_inserts(self, count: int) -> Sample:
        """Insert ``count`` rows, one INSERT per transaction (BEGIN, INSERT, COMMIT)."""
        ...

    async def batch_inserts(self, count: int, batch: int, stream_id: str | None = None) -> Sample:
        """Insert ``count`` batches of ``batch`` rows, each batch in one transaction."""
        ...

    async def seed(self, count: int) -> list[str]:
        """Create ``count`` streams of one row each; return their ids."""
        ...

    async def updates(self, stream_ids: list[str], count: int) -> Sample:
        """``count`` transactions reading a stream in order and appending one row to it."""
        ...

    async def stream_reads(self, stream_id: str, count: int) -> Sample:
        """Read one stream's rows in version order ``count`` times."""
        ...

    async def global_read(self, count: int, page_size: int) -> Sample:
        """Read ``count`` rows in position order, ``page_size`` at a time."""
        ...


class AsyncpgDriver:
    """Raw runs on PostgreSQL through asyncpg (one connection)."""

    name = "asyncpg"

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self._streams = 0

    @classmethod
    async def connect(cls, dsn: str) -> AsyncpgDriver:
        """Connect and create the table."""
        connection = await asyncpg.connect(dsn)
        await connection.execute(POSTGRES_TABLE)
        return cls(connection)

    async def close(self) -> None:
        """Close the connection."""
        await self.connection.close()

    def _new_stream(self) -> str:
        self._streams += 1
        return f"raw-{self._streams}"

    async def single_inserts(self, count: int) -> Sample:
        with Stopwatch() as watch:
            for _ in range(count):
                async with self.connection.transaction():
                    await self.connection.execute(
                        POSTGRES_INSERT, *row(self._new_stream(), 1, sqlite_types=False)
                    )
        return Sample(count, watch.seconds)

    async def batch_inserts(self, count: int, batch: int, stream_id: str | None = None) -> Sample:
        with Stopwatch() as watch:
            for number in range(count):
                stream = stream_id or self._new_stream()
                first = number * batch + 1 if stream_id else 1
                rows = [row(stream, first + i, sqlite_types=False) for i in range(batch)]
                async with self.connection.transaction():
                    await self.connection.executemany(POSTGRES_INSERT, rows)
        return Sample(count * batch, watch.seconds)

    async def seed(self, count: int) -> list[str]:
        streams = [self._new_stream() for _ in range(count)]
        rows = [row(stream, 1, sqlite_types=False) for stream in streams]
        await self.connection.executemany(POSTGRES_INSERT, rows)
        return streams

    async def updates(self, stream_ids: list[str], count: int) -> Sample:
        connection = self.connection
        with Stopwatch() as watch:
            for number in range(count):
                stream = stream_ids[number % len(stream_ids)]
                async with connection.transaction():
                    rows = await connection.fetch(POSTGRES_STREAM, stream)
                    await connection.execute(
                        POSTGRES_INSERT, *row(stream, len(rows) + 1, sqlite_types=False)
                    )
        return Sample(count, watch.seconds)

    async def stream_reads(self, stream_id: str, count: int) -> Sample:
        with Stopwatch() as watch:
            for _ in range(count):
                await self.connection.fetch(POSTGRES_STREAM, stream_id)
        return Sample(count, watch.seconds)

    async def global_read(self, count: int, page_size: int) -> Sample:
        read, position = 0, 0
        with Stopwatch() as watch:
            while read < count:
                page = await self.connection.fetch(
                    POSTGRES_PAGE, position, min(page_size, count - read)
                )
                if not page:
                    break
                read += len(page)
                position = page[-1]["position"]
        return Sample(read, watch.seconds)
