"""``SQLAlchemyEventStore``: the event store on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from itertools import starmap
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, String, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cqrs_ddd_advanced_core.workers.storage import WorkerStorage
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import ConcurrencyError, DuplicateEventIdError
from cqrs_ddd_core.failpoints import async_failpoint
from cqrs_ddd_core.ports.event_store import StoredEvent
from cqrs_ddd_core.serialization import prepare_append
from cqrs_ddd_core.wakeup import Wakeup
from cqrs_ddd_persistence_sqlalchemy.channels import NOTIFY_CHANNEL
from cqrs_ddd_persistence_sqlalchemy.connections import (
    EngineSource,
    Reads,
    engine_of,
    once_more_if_disconnected,
)
from cqrs_ddd_persistence_sqlalchemy.driver_reads import PreparedRead
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.postgres_append import APPEND_LOCK_KEY, PostgresAppend
from cqrs_ddd_persistence_sqlalchemy.schema import events
from cqrs_ddd_persistence_sqlalchemy.sqlite_append import SQLiteAppend
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import (
    SQLAlchemyUnitOfWork,
    ambient_connection,
    ambient_unit_of_work,
    unit_of_work_for_write,
)
from cqrs_ddd_persistence_sqlalchemy.worker_storage import SQLAlchemyWorkerStorage

__all__ = ["APPEND_LOCK_KEY", "SQLAlchemyEventStore"]

_COLUMNS = (
    events.c.position,
    events.c.stream_id,
    events.c.version,
    events.c.event_type,
    events.c.schema_version,
    events.c.event_id,
    events.c.occurred_at,
    events.c.payload,
    events.c.aggregate_type,
    events.c.correlation_id,
    events.c.causation_id,
    events.c.metadata,
)
"""The columns every read selects, in the order of ``StoredEvent``'s fields."""

# The statements are built once, with bind parameters, so that each call only
# binds its values (SQLAlchemy reuses their compiled form).
_LOAD_STREAM = (
    select(*_COLUMNS)
    .where(
        events.c.stream_id == bindparam("stream_id", type_=String()),
        events.c.version >= bindparam("from_version", type_=Integer()),
    )
    .order_by(events.c.version)
)
_logger = logging.getLogger(__name__)

_READ_ALL = (
    select(*_COLUMNS)
    .where(events.c.position > bindparam("after_position", type_=Integer()))
    .order_by(events.c.position)
    .limit(bindparam("limit", type_=Integer()))
)
_CURRENT_POSITION = select(func.max(events.c.position))
_COUNT_AFTER = select(func.count()).where(
    events.c.position > bindparam("after_position", type_=Integer())
)
_LATEST_VERSION = select(func.max(events.c.version)).where(
    events.c.stream_id == bindparam("stream_id", type_=String())
)
# PostgreSQL, one round trip: wait for the append lock, then read the stream's
# version; the notification (for projection workers) is delivered at commit.
_LOCK_AND_LATEST_VERSION = select(
    func.pg_advisory_xact_lock(APPEND_LOCK_KEY).label("locked"),
    _LATEST_VERSION.scalar_subquery().label("version"),
    func.pg_notify(NOTIFY_CHANNEL, "").label("notified"),
)


class SQLAlchemyEventStore:
    """Streams of events in the ``cqrs_events`` table, on SQLite or PostgreSQL.

    Appends join the ambient :class:`SQLAlchemyUnitOfWork` (same engine) when a
    command is running, and use a transaction of their own otherwise.

    **Global order without skipped events.** Appends are serialised: on
    PostgreSQL each append first takes a transaction-scoped advisory lock
    (held to commit), on SQLite the write transaction itself is exclusive
    (``BEGIN IMMEDIATE``). Positions are therefore handed out in commit order,
    every position still in flight is above every committed one, and a reader
    that resumes after the last position it saw never skips an event that
    commits later. Rolled-back appends leave gaps, which readers pass over.
    A writer that waits longer than ``lock_timeout`` for the lock gets
    ``LockTimeoutError``.

    ``source`` is an ``AsyncEngine``, an ``async_sessionmaker`` or an
    ``AsyncSession``; the store uses the engine behind it.

    **Wake-ups.** After an append commits, the store notifies :attr:`wakeup`
    (pass one to share it; by default its own); on PostgreSQL every append
    also ``NOTIFY``s the ``cqrs_events`` channel, for workers in other
    processes. The store knows no worker: :meth:`worker_storage` only says
    where workers reading these events keep their state.

    **Reads on the driver.** Outside a command, :meth:`read_all` and
    :meth:`load_stream` run their one SELECT straight on the driver (see
    ``driver_reads``): asyncpg's ``fetch``, or on a SQLite file a private
    read-only ``sqlite3`` connection on the event loop's thread, stepping
    through 250 rows per turn of the loop (``sqlite_loop_reads=False``
    turns that off), aiosqlite otherwise.
    """

    def __init__(
        self,
        source: EngineSource,
        *,
        wakeup: Wakeup | None = None,
        sqlite_loop_reads: bool = True,
    ) -> None:
        self.engine: AsyncEngine = engine_of(source)
        self.wakeup = wakeup or Wakeup()
        """Notified after every append commits."""
        self.sqlite_loop_reads = sqlite_loop_reads
        self._is_postgresql = self.engine.dialect.name == "postgresql"
        insert = (postgresql.insert if self._is_postgresql else sqlite.insert)(events)
        # Unsorted RETURNING: SQLAlchemy sends a batch as a few multi-row
        # statements instead of one statement per row (which it must do on SQLite
        # to return rows in parameter order); rows are matched back by version.
        self._insert = insert.on_conflict_do_nothing().returning(
            events.c.position, events.c.version
        )
        # The append is one statement on the driver (see postgres_append and
        # sqlite_append), unless the engine rewrites its SQL (schema_translate_map).
        self._driver_append: PostgresAppend | SQLiteAppend | None = None
        if "schema_translate_map" not in self.engine.get_execution_options():
            driver = self.engine.dialect.driver
            if driver == "asyncpg":
                self._driver_append = PostgresAppend(self.engine.dialect)
            elif driver == "aiosqlite":
                self._driver_append = SQLiteAppend(self.engine.dialect)
        self._worker_storage: WorkerStorage | None = None
        self._reads = Reads(self.engine)
        self._read_all: PreparedRead | None = None  # compiled on the first read
        self._load_stream: PreparedRead | None = None

    def worker_storage(self) -> WorkerStorage:
        """Return the stores of workers reading these events (same database, woken by ``wakeup``).

        This is where ``ProjectionWorker`` keeps its state when it is given
        none (one storage per event store).
        """
        if self._worker_storage is None:
            self._worker_storage = SQLAlchemyWorkerStorage(self.engine, wakeup=self.wakeup)
        return self._worker_storage

    async def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int,
    ) -> list[StoredEvent]:
        """Append ``events`` after ``expected_version``; see the ``EventStore`` port."""
        documents = prepare_append(stream_id, events, expected_version=expected_version)
        if not documents:
            return []
        operation = f"append to stream {stream_id!r}"
        uow = unit_of_work_for_write(self.engine, operation)
        return await self._append_documents(uow, operation, stream_id, documents, expected_version)

    async def _append_documents(
        self,
        uow: SQLAlchemyUnitOfWork | None,
        operation: str,
        stream_id: str,
        documents: list[dict[str, Any]],
        expected_version: int,
    ) -> list[StoredEvent]:
        if uow is not None:
            with translated_errors(operation):
                uow.call_after_commit(self.wakeup.notify)
                return await self._append(uow, stream_id, documents, expected_version)

        async def append_on_its_own() -> list[StoredEvent]:
            async with SQLAlchemyUnitOfWork(self.engine, operation=operation) as own:
                stored = await self._append(own, stream_id, documents, expected_version)
                await own.commit()
            self.wakeup.notify()
            await async_failpoint("event_store.after_commit_before_return")
            return stored

        return await once_more_if_disconnected(self.engine, operation, append_on_its_own)

    async def append_at_commit(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int,
    ) -> None:
        """Append ``events`` as :meth:`append` does, at the latest when the command commits.

        The batch is checked at once (``ValidationError``,
        ``EventSerializationError``). On PostgreSQL, in a command that has not
        needed its transaction yet, the append is held back: a command whose
        only write it is then commits it as one statement, in one round trip,
        and its ``ConcurrencyError`` (or ``DuplicateEventIdError``) comes
        from the commit. Anywhere else (SQLite, outside a command, a command
        already in its transaction) this is :meth:`append`.
        """
        documents = prepare_append(stream_id, events, expected_version=expected_version)
        if not documents:
            return
        operation = f"append to stream {stream_id!r}"
        uow = unit_of_work_for_write(self.engine, operation)
        append = self._driver_append
        if uow is not None and isinstance(append, PostgresAppend):
            held = _HeldAppend(append, operation, stream_id, documents, expected_version)
            if uow.defer(held):
                uow.call_after_commit(self.wakeup.notify)
                return
        await self._append_documents(uow, operation, stream_id, documents, expected_version)

    async def load_stream(self, stream_id: str, *, from_version: int = 1) -> list[StoredEvent]:
        """Return the stream's events from ``from_version`` on, in version order."""
        parameters = {"stream_id": stream_id, "from_version": from_version}

        async def load() -> list[StoredEvent]:
            rows = await self._load_on_driver(parameters)
            if rows is not None:
                return list(starmap(StoredEvent, rows))
            async with self._reads.connection() as connection:
                result = await connection.execute(_LOAD_STREAM, parameters)
                return list(starmap(StoredEvent, result))

        return await once_more_if_disconnected(self.engine, f"load stream {stream_id!r}", load)

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Return up to ``limit`` committed events after ``after_position``, in position order."""
        parameters = {"after_position": after_position, "limit": limit}

        async def read() -> list[StoredEvent]:
            if ambient_connection(self.engine) is None:
                rows = await self._read_on_driver(parameters)
                if rows is not None:
                    return list(starmap(StoredEvent, rows))
            async with self._reads.connection() as connection:
                result = await connection.execute(_READ_ALL, parameters)
                return list(starmap(StoredEvent, result))

        operation = f"read events after position {after_position}"
        return await once_more_if_disconnected(self.engine, operation, read)

    async def _read_on_driver(self, parameters: dict[str, Any]) -> Sequence[Sequence[Any]] | None:
        """Read a page of ``read_all`` on the driver; None to read through SQLAlchemy."""
        read = self._read_all
        if read is None:
            read = self._read_all = PreparedRead(_READ_ALL, self.engine)
        return await self._read_apart(read, parameters)

    async def _load_on_driver(self, parameters: dict[str, Any]) -> Sequence[Sequence[Any]] | None:
        """Load a stream on the driver; None to load through SQLAlchemy.

        Inside a command, on the unit of work's driver connection (after any
        held-back append); outside one, as :meth:`_read_apart` reads.
        """
        load = self._load_stream
        if load is None:
            load = self._load_stream = PreparedRead(_LOAD_STREAM, self.engine)
        query = load.query
        if query is None:
            return None
        uow = ambient_unit_of_work(self.engine)
        if uow is None:
            return await self._read_apart(load, parameters)
        driver = await uow.driver_for_read()
        return None if driver is None else await query.fetch_with(driver, parameters)

    async def _read_apart(
        self, read: PreparedRead, parameters: dict[str, Any]
    ) -> Sequence[Sequence[Any]] | None:
        """Run a read outside any command on the driver; None to read through SQLAlchemy.

        On a SQLite file on the loop's thread, in turns (see ``SQLiteLoopReader``),
        unless that gives up; otherwise on a pooled driver connection.
        """
        query = read.query
        if query is None:
            return None
        loop_reader = read.loop_reader
        if loop_reader is not None and self.sqlite_loop_reads:
            raw_rows = await loop_reader.fetch_in_turns(query.arguments(parameters))
            if raw_rows is not None:
                return query.rows(raw_rows)
        try:
            return await query.fetch_pooled(self.engine, parameters)
        except Exception:  # SQLAlchemy's run reports it, typed
            _logger.debug("driver read failed, reading through SQLAlchemy", exc_info=True)
            return None

    async def current_position(self) -> int:
        """Return the position of the last committed event (0 for an empty store)."""

        async def read() -> int:
            async with self._reads.connection() as connection:
                return int(await connection.scalar(_CURRENT_POSITION) or 0)

        return await once_more_if_disconnected(self.engine, "read the current position", read)

    async def count_after(self, position: int) -> int:
        """Return how many committed events lie after ``position``."""

        async def read() -> int:
            async with self._reads.connection() as connection:
                count = await connection.scalar(_COUNT_AFTER, {"after_position": position})
                return int(count or 0)

        operation = f"count the events after position {position}"
        return await once_more_if_disconnected(self.engine, operation, read)

    async def _append(
        self,
        uow: SQLAlchemyUnitOfWork,
        stream_id: str,
        documents: list[dict[str, Any]],
        expected_version: int,
    ) -> list[StoredEvent]:
        driver = await uow.driver_for_write()
        rows = [_row(stream_id, document) for document in documents]
        if driver is not None and self._driver_append is not None:
            append = self._driver_append
            positions = await append.insert(driver, stream_id, documents, expected_version)
            if len(positions) != len(rows) and positions:
                await append.take_out(driver, list(positions.values()))
        else:
            connection = uow.connection
            actual = await self._lock_and_read_version(connection, stream_id)
            if actual != expected_version:
                positions = {}
            else:
                result = await connection.execute(self._insert, rows)
                positions = {version: position for position, version in result}
                if len(positions) != len(rows) and positions:
                    await connection.execute(
                        delete(events).where(events.c.position.in_(list(positions.values())))
                    )
        if len(positions) != len(rows):
            # The version was read from a snapshot taken before the wait for the
            # lock; any rows that did go in were taken out again above.
            return await self._resolve_mismatch(
                uow.connection, stream_id, documents, expected_version
            )
        return [StoredEvent(position=positions[row["version"]], **row) for row in rows]

    async def _lock_and_read_version(self, connection: AsyncConnection, stream_id: str) -> int:
        parameters = {"stream_id": stream_id}
        if self._is_postgresql:
            row = (await connection.execute(_LOCK_AND_LATEST_VERSION, parameters)).one()
            return int(row.version or 0)
        return int(await connection.scalar(_LATEST_VERSION, parameters) or 0)

    async def _resolve_mismatch(
        self,
        connection: AsyncConnection,
        stream_id: str,
        documents: list[dict[str, Any]],
        expected_version: int,
    ) -> list[StoredEvent]:
        # A fresh statement: it sees everything committed before it, unlike the
        # locking statement, whose snapshot predates the wait for the lock.
        ids = [UUID(document["event_id"]) for document in documents]
        found = await connection.execute(
            select(*_COLUMNS)
            .where(events.c.stream_id == stream_id, events.c.event_id.in_(ids))
            .order_by(events.c.version)
        )
        existing = {stored.event_id: stored for stored in starmap(StoredEvent, found)}
        if existing and len(existing) == len(ids):
            return [existing[event_id] for event_id in ids]
        if existing:
            raise DuplicateEventIdError(stream_id, [i for i in ids if i in existing])
        actual = await connection.scalar(
            select(func.coalesce(func.max(events.c.version), 0)).where(
                events.c.stream_id == stream_id
            )
        )
        raise ConcurrencyError(
            stream_id, expected_version=expected_version, actual_version=int(actual or 0)
        )


def _row(stream_id: str, document: dict[str, Any]) -> dict[str, Any]:
    return {
        "stream_id": stream_id,
        "version": document["version"],
        "event_id": UUID(document["event_id"]),
        "event_type": document["event_type"],
        "schema_version": document["schema_version"],
        "aggregate_type": document["aggregate_type"],
        "occurred_at": datetime.fromisoformat(document["occurred_at"]),
        "correlation_id": document["correlation_id"],
        "causation_id": document["causation_id"],
        "payload": document["payload"],
        "metadata": document["metadata"],
    }


class _HeldAppend:
    """An append a PostgreSQL unit of work holds back to its commit (see ``append_at_commit``)."""

    def __init__(
        self,
        append: PostgresAppend,
        operation: str,
        stream_id: str,
        documents: list[dict[str, Any]],
        expected_version: int,
    ) -> None:
        self._append = append
        self._operation = operation
        self._stream_id = stream_id
        self._documents = documents
        self._expected_version = expected_version

    async def in_transaction(self, driver: Any) -> None:
        """Append inside the transaction that has just begun; raise on a conflict."""
        append, arguments = self._append, self._arguments(driver)
        with translated_errors(self._operation):
            positions = await append.insert(*arguments)
            if len(positions) != len(self._documents):
                if positions:
                    await append.take_out(driver, list(positions.values()))
                await append.explain_refusal(*arguments)

    async def alone(self, driver: Any) -> None:
        """Append as one statement the server commits; raise on a conflict."""
        append, arguments = self._append, self._arguments(driver)
        with translated_errors(self._operation):
            if not await append.insert_alone(*arguments):
                await append.explain_refusal(*arguments)

    def _arguments(self, driver: Any) -> tuple[Any, str, list[dict[str, Any]], int]:
        return (driver, self._stream_id, self._documents, self._expected_version)
