"""Hot reads run straight on the driver: one call per query, no execution layer around it.

A read of a few rows (a snapshot and the events after it) costs far less in the
database than around it. Through SQLAlchemy's asyncio layer a single SELECT
takes a pool checkout wrapped in an ``AsyncConnection``, greenlet switches and
a result object; on SQLite each cursor operation is also its own hand-off to
aiosqlite's worker thread (cursor, execute, fetch, close, then the ``BEGIN``
and ``ROLLBACK`` around them), each tens of microseconds. Measured on the
snapshot load (``benchmarks/README.md``), that was most of its time.

:class:`DriverQuery` compiles a SELECT once for an engine's dialect and runs
it with the driver's own one-call API: ``fetch`` on asyncpg, ``execute_fetchall``
(one hand-off) on aiosqlite, then applies the dialect's result processors, so
the rows are the values SQLAlchemy would return. :class:`SQLiteLoopReader`
goes further for reads outside a command on a SQLite file: it runs the query
on the event loop's own thread through a private ``sqlite3`` connection, with
no hand-off at all, under limits that keep it short (see its docstring).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import CompoundSelect, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

_logger = logging.getLogger("cqrs_ddd_persistence_sqlalchemy.driver_reads")

Row = tuple[Any, ...]
"""One result row, its values as SQLAlchemy would return them."""

_DRIVERS = ("asyncpg", "aiosqlite")
_SQLITE_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def bind_processor_of(column_type: Any, dialect: Dialect) -> Callable[[Any], Any]:
    """Return how ``dialect`` turns a Python value of ``column_type`` into the driver's value."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return lambda value: value
    return process  # type: ignore[no-any-return]


class DriverQuery:
    """A SELECT compiled once for ``engine``, run on the driver connection in one call.

    ``supported`` is False for drivers other than asyncpg and aiosqlite and for
    engines whose execution options change the SQL (``schema_translate_map``):
    callers then execute the statement through SQLAlchemy as usual.
    """

    def __init__(self, statement: Select[Any] | CompoundSelect[Any], engine: AsyncEngine) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.driver = dialect.driver
        self.supported = (
            self.driver in _DRIVERS and "schema_translate_map" not in engine.get_execution_options()
        )
        self._names: Sequence[str] = compiled.positiontup or ()
        self._binds: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in self._names
        ]
        # binds the statement fixes itself (SQLite's "OFFSET ?" after a LIMIT)
        self._fixed: Mapping[str, Any] = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]
        self._make_row = _row_maker(processors)

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        """Return ``parameters`` as the driver's positional arguments, bind-processed."""
        fixed = self._fixed
        values = [
            parameters.get(name, fixed[name]) if name in fixed else parameters[name]
            for name, _ in self._binds
        ]
        return [
            value if process is None else process(value)
            for value, (_, process) in zip(values, self._binds, strict=True)
        ]

    def rows(self, raw_rows: Sequence[Sequence[Any]]) -> list[Row]:
        """Return the driver's rows with the dialect's result processors applied."""
        return list(map(self._make_row, raw_rows))

    async def fetch_with(self, driver_connection: Any, parameters: Mapping[str, Any]) -> list[Row]:
        """Run on ``driver_connection``, inside whatever transaction it has.

        asyncpg's connection, aiosqlite's, or a unit of work's ``SQLiteOnLoop``
        (see ``SQLAlchemyUnitOfWork.driver_for_read``).
        """
        return await self._fetch(driver_connection, parameters)

    async def fetch_pooled(self, engine: AsyncEngine, parameters: Mapping[str, Any]) -> list[Row]:
        """Run on a connection checked out of ``engine``'s pool, outside any transaction.

        A single statement outside a transaction sees one consistent state of
        the database on both backends. On failure the connection is discarded
        (it may be broken) and the error raised.
        """
        proxied = await engine.raw_connection()
        try:
            rows = await self._fetch(proxied.driver_connection, parameters)
        except BaseException:
            await greenlet_spawn(proxied.invalidate)
            raise
        await greenlet_spawn(proxied.close)
        return rows

    async def _fetch(self, driver_connection: Any, parameters: Mapping[str, Any]) -> list[Row]:
        arguments = self.arguments(parameters)
        if self.driver == "asyncpg":
            raw_rows = await driver_connection.fetch(self.sql, *arguments)
        else:
            raw_rows = await driver_connection.execute_fetchall(self.sql, arguments)
        return self.rows(raw_rows)


def _row_maker(processors: Sequence[Callable[[Any], Any] | None]) -> Callable[[Any], Row]:
    """Return a function making one result row: a tuple with each column's processor applied.

    Written out for the statement's columns (``(p1(row[1]), row[2], ...)``),
    so a row costs one call and one tuple, with no loop over its columns.
    """
    names = {f"p{index}": process for index, process in enumerate(processors) if process}
    values = ", ".join(
        f"p{index}(row[{index}])" if f"p{index}" in names else f"row[{index}]"
        for index in range(len(processors))
    )
    defaults = ", ".join(f"{name}={name}" for name in names)
    source = f"def make(row, {defaults}):\n    return ({values},)"
    namespace: dict[str, Any] = {}
    exec(source, names, namespace)  # noqa: S102 - the source holds indices and names only
    maker: Callable[[Any], Row] = namespace["make"]
    return maker


class PreparedRead:
    """A SELECT prepared for one engine: its driver query and, on a SQLite file, its loop reader.

    ``query`` is None where :class:`DriverQuery` is not supported (read
    through SQLAlchemy then), ``loop_reader`` None where there is no file to
    read on the loop.
    """

    def __init__(self, statement: Select[Any] | CompoundSelect[Any], engine: AsyncEngine) -> None:
        query = DriverQuery(statement, engine)
        self.query = query if query.supported else None
        self.loop_reader = (
            SQLiteLoopReader.for_engine(engine, query.sql) if query.supported else None
        )


class SQLiteLoopReader:
    """Runs short reads of one SQLite file on the calling thread: no hand-off, no pool.

    For reads outside a command only (inside one, the command's connection is
    the only one that sees its writes). The reads go through a private
    ``sqlite3`` connection that is read-only (``query_only``) and never waits:

    * **No lock waits.** Its busy timeout is 0, so where SQLite would make it
      wait (WAL recovery, a database not in WAL mode being written) the read
      gives up at once and :meth:`fetch` returns None: the caller then reads
      through the pool on aiosqlite's thread, waiting there. In WAL mode, the
      mode ``create_engine`` sets, readers otherwise never wait for writers.
    * **Bounded work.** A read that would return more than ``max_rows`` rows
      is abandoned after that many (None again); a single statement in
      autocommit mode sees one committed state of the database, as the
      pooled read does.
    * **One caller at a time.** A second thread finding the connection in use
      does not wait for it either (None).

    Any ``sqlite3`` error also returns None, so the caller's ordinary read
    decides (and reports) what is wrong. The connection is replaced on the
    first read after its engine was disposed (the engine then has a new pool;
    nothing is hung on the engine to tell), and closed by :meth:`close` or
    when the reader is garbage collected.
    """

    max_rows = 250
    """Reads returning more rows than this run through the pool instead.

    Stepping through a row costs ``sqlite3`` about 2 µs on the loop (small
    events, 2-core machine), so a read that gives up has held the loop for
    about half a millisecond; a snapshot every 100 events (the default)
    leaves at most 100 rows to read.
    """

    def __init__(self, path: str, sql: str, engine: AsyncEngine | None = None) -> None:
        self.path = path
        self.sql = sql
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._engine = engine
        self._pool: object | None = None  # the engine's pool when the connection was opened
        self._wal = True  # until the connection, once open, says otherwise

    @classmethod
    def for_engine(cls, engine: AsyncEngine, sql: str) -> SQLiteLoopReader | None:
        """Return a reader of ``engine``'s database file, or None when it has none.

        Only a plain file path on aiosqlite qualifies: not ``:memory:``, not a
        ``file:`` URI, no URL query options, no ``native_datetime`` (whose
        values the private connection would not convert alike). After
        ``engine`` is disposed, the reader's next read opens a new connection.
        """
        url = engine.url
        database = url.database
        if (
            engine.dialect.driver != "aiosqlite"
            or not database
            or database == ":memory:"
            or database.startswith("file:")
            or url.query
            or getattr(engine.dialect, "native_datetime", False)
        ):
            return None
        return cls(str(Path(database).absolute()), sql, engine)

    def fetch(self, arguments: Sequence[Any]) -> list[Sequence[Any]] | None:
        """Return the raw rows of the query for ``arguments``, or None to read elsewhere."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            cursor = self._current_connection().execute(self.sql, arguments)
            try:
                rows = cursor.fetchmany(self.max_rows + 1)
            finally:
                cursor.close()  # ends the statement, and with it the read transaction
        except sqlite3.Error as error:
            self._given_up(error)
            return None
        finally:
            self._lock.release()
        return None if len(rows) > self.max_rows else rows

    async def fetch_in_turns(self, arguments: Sequence[Any]) -> list[Sequence[Any]] | None:
        """Return the raw rows of the query for ``arguments``, however many; None: read elsewhere.

        The rows are stepped through ``max_rows`` at a time, other tasks
        getting a turn in between, so no turn holds the loop longer than a
        :meth:`fetch` does. The statement keeps one committed state of the
        database across the turns (in WAL mode a reader's snapshot holds
        until its statement ends). A second read meanwhile finds the
        connection in use and reads elsewhere, as from another thread.
        """
        if not self._wal:
            # outside WAL mode a reader paused between pages would hold its
            # lock while a writer on the loop's thread waits for it
            return self.fetch(arguments)
        if not self._lock.acquire(blocking=False):
            return None
        try:
            connection = self._current_connection()
            if not self.in_wal_mode():
                return None  # found out on opening: the next read takes the bounded way
            cursor = connection.execute(self.sql, arguments)
            try:
                rows = page = cursor.fetchmany(self.max_rows)
                while len(page) == self.max_rows:
                    await asyncio.sleep(0)
                    page = cursor.fetchmany(self.max_rows)
                    rows += page
            finally:
                cursor.close()  # ends the statement, and with it the read transaction
        except sqlite3.Error as error:
            self._given_up(error)
            return None
        finally:
            self._lock.release()
        return rows

    def _current_connection(self) -> sqlite3.Connection:
        """Return the private connection, opening a new one after the engine was disposed."""
        if self._engine is not None and self._pool is not self._engine.sync_engine.pool:
            self._close_connection()  # the engine was disposed since it opened
        return self._connection or self._open()

    def _given_up(self, error: sqlite3.Error) -> None:
        """Give a read up to the pool; a connection that failed otherwise than busy is closed."""
        if getattr(error, "sqlite_errorcode", None) not in _SQLITE_BUSY_CODES:
            _logger.debug("SQLite loop read of %s failed, reading through the pool", self.path)
            self._close_connection()

    def in_wal_mode(self) -> bool:
        """Return whether the database was in WAL mode when the connection opened (True before)."""
        return self._wal

    def close(self) -> None:
        """Close the private connection (a later read opens a new one)."""
        with self._lock:
            self._close_connection()

    def _open(self) -> sqlite3.Connection:
        uri = f"file:{quote(self.path)}?mode=rw"  # never creates a missing database
        connection = sqlite3.connect(
            uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA query_only = ON")
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        except BaseException:
            connection.close()
            raise
        self._wal = str(mode).lower() == "wal"
        self._connection = connection
        if self._engine is not None:
            self._pool = self._engine.sync_engine.pool
        return connection

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def __del__(self) -> None:
        connection = getattr(self, "_connection", None)
        if connection is not None:
            connection.close()
