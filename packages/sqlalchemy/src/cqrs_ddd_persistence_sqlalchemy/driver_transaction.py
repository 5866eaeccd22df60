"""A PostgreSQL transaction run on the asyncpg connection itself, under SQLAlchemy.

SQLAlchemy's asyncpg adapter opens its transaction with an extra round trip
before the first statement and runs every statement through its asyncio
layer. The unit of work instead sends ``BEGIN`` and ``COMMIT`` on the driver
connection and, once something uses its SQLAlchemy connection, puts that
connection in autocommit mode, so that SQLAlchemy sends each statement as it
is: the server runs them all inside the one transaction. The event store's
hot statements then go straight to the driver, and a command that also
writes through SQLAlchemy (repositories, ``uow.session``, the outbox) is
still one transaction. ``BEGIN`` itself waits until something needs the
transaction, and a command's only append can be the transaction (see
:class:`DriverTransaction`). SQLite's transaction runs on the event loop's
thread (:class:`SQLiteDriverTransaction`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import await_only

from cqrs_ddd_persistence_sqlalchemy.engine import READ_ONLY_OPTION
from cqrs_ddd_persistence_sqlalchemy.exceptions import LockTimeoutError, PersistenceError

_logger = logging.getLogger(__name__)

_SQLITE_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_BEGIN_READ_COMMITTED = "BEGIN ISOLATION LEVEL READ COMMITTED"
_LEVELS = ("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")


def begin_statement(isolation_level: str, options: Mapping[str, Any] | None = None) -> str:
    """Return the ``BEGIN`` for an isolation level in SQLAlchemy's spelling.

    An engine in ``AUTOCOMMIT`` still gets a transaction: a unit of work is one.
    The engine's ``postgresql_readonly`` and ``postgresql_deferrable``
    execution options are kept, as SQLAlchemy's own ``BEGIN`` keeps them.
    """
    level = isolation_level.upper().replace("_", " ")
    statement = f"BEGIN ISOLATION LEVEL {level}" if level in _LEVELS else "BEGIN"
    options = options or {}
    if options.get("postgresql_readonly"):
        statement += " READ ONLY"
    if options.get("postgresql_deferrable"):
        statement += " DEFERRABLE"
    return statement


class DeferredWrite(Protocol):
    """A write a unit of work holds until it must send it (see ``DriverTransaction.defer``)."""

    async def in_transaction(self, driver: Any) -> None:
        """Send the write inside the transaction, which has just begun."""
        ...

    async def alone(self, driver: Any) -> None:
        """Send the write as the whole transaction: one statement, committed by the server."""
        ...


class DriverTransaction:
    """One transaction on the driver connection under ``connection`` (PostgreSQL, asyncpg).

    At ``READ COMMITTED`` (PostgreSQL's default) without ``READ ONLY`` or
    ``DEFERRABLE``, ``BEGIN`` is held back until something needs the
    transaction: a statement through SQLAlchemy, an append sent at once, or
    a read after a held-back append. Reads before that run as statements of
    their own, which see what a first statement of the transaction would
    see. One write can be held back to the commit (:meth:`defer`); a unit of
    work holding only that write then sends it as one statement in an
    implicit transaction: no ``BEGIN``, no ``COMMIT``, one round trip.
    """

    def __init__(
        self,
        connection: AsyncConnection,
        driver: Any,
        isolation_level: str,
        *,
        begin_later: str | None = None,
    ) -> None:
        self._connection = connection
        self.driver = driver
        """The asyncpg connection that holds the transaction."""
        self.statements: Any = driver
        """What the event store's statements run on: here the asyncpg connection."""
        self._isolation_level = isolation_level
        self._sqlalchemy_joined = False
        self._begin_later = begin_later
        self._deferred: DeferredWrite | None = None
        self._ended = False
        self._in_flight = False
        self._failed: Exception | None = None

    @property
    def begun(self) -> bool:
        """Return whether ``BEGIN`` has been sent."""
        return self._begin_later is None

    @property
    def connection(self) -> AsyncConnection:
        """Return the SQLAlchemy connection, switched to autocommit inside this transaction.

        The switch is made on first use only: a command that writes nothing
        through SQLAlchemy never pays for it. It sends nothing to the server
        (SQLAlchemy's adapter holds no transaction of its own here). While
        ``BEGIN`` is held back, SQLAlchemy's first statement sends it first.
        """
        if not self._sqlalchemy_joined:
            sync_connection = self._sync_connection()
            sync_connection.execution_options(isolation_level="AUTOCOMMIT")
            self._join(sync_connection)
            if not self.begun:
                event.listen(sync_connection, "before_cursor_execute", self._before_statement)
        return self._connection

    def _before_statement(self, *_: Any) -> None:
        if not self.begun and not self._ended:
            await_only(self.open())  # in SQLAlchemy's greenlet: the statement waits for BEGIN

    def _sync_connection(self) -> Connection:
        sync_connection = self._connection.sync_connection
        if sync_connection is None:
            raise PersistenceError("use the unit of work's connection", "it was closed")
        return sync_connection

    def _join(self, sync_connection: Connection) -> None:
        """Open SQLAlchemy's side of the transaction (it sends nothing).

        With it open, an ORM session on the connection works in a savepoint
        (``join_transaction_mode="create_savepoint"``): its ``rollback`` and
        ``commit`` reach the savepoint only, never this transaction.
        """
        if not sync_connection.in_transaction():
            sync_connection.begin()
        self._sqlalchemy_joined = True

    @classmethod
    async def begin(cls, connection: AsyncConnection, isolation_level: str) -> DriverTransaction:
        """Begin on the driver connection under ``connection`` (``BEGIN`` may wait, see above).

        ``isolation_level`` is the engine's (SQLAlchemy's spelling): the
        transaction runs at it, and :meth:`close` gives it back to the connection.
        """
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        statement = begin_statement(isolation_level, connection.engine.get_execution_options())
        if statement == _BEGIN_READ_COMMITTED:
            return cls(connection, driver, isolation_level, begin_later=statement)
        await driver.execute(statement)
        return cls(connection, driver, isolation_level)

    async def open(self) -> None:
        """Send the held-back ``BEGIN``, then the held-back write, if any (no-op once begun)."""
        statement = self._begin_later
        if statement is None:
            return
        if self._ended:
            raise PersistenceError("use the unit of work", "its transaction has ended")
        if self._failed is not None:
            raise self._failed
        self._in_flight = True  # cut short here, the server may still run BEGIN
        await self.driver.execute(statement)
        self._in_flight = False
        self._begin_later = None
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            try:
                await deferred.in_transaction(self.driver)
            except Exception as error:
                # raised from whatever statement needed the transaction: caught
                # there, it must still keep the command from committing
                self._failed = error
                raise

    def defer(self, write: DeferredWrite) -> bool:
        """Hold ``write`` back to the commit, when nothing has begun; False: send it now.

        A later statement that needs the transaction sends ``BEGIN`` and then
        ``write`` first; a commit with nothing else to send sends ``write``
        alone, as the transaction.
        """
        if self.begun or self._ended or self._deferred is not None:
            return False
        self._deferred = write
        return True

    @property
    def has_deferred(self) -> bool:
        """Return whether a write is held back."""
        return self._deferred is not None

    async def commit(self, operation: str) -> None:
        """Commit; raise ``PersistenceError`` when the server rolled back instead.

        PostgreSQL answers ``COMMIT`` of a transaction in which a statement
        failed (and whose error the caller caught) with a rollback, and no
        error: that must not pass for a commit. With ``BEGIN`` still held
        back, the held-back write (if any) is sent alone.
        """
        if self._failed is not None:
            raise self._failed  # the held-back write failed: nothing may commit
        if not self.begun:
            deferred, self._deferred = self._deferred, None
            self._ended = True
            if deferred is not None:
                self._in_flight = True
                await deferred.alone(self.driver)
                self._in_flight = False
            return
        self._ended = True
        status = await self.driver.execute("COMMIT")
        if status != "COMMIT":
            raise PersistenceError(
                operation,
                "the transaction was rolled back, not committed: a statement in it had failed",
            )

    async def end(self, *, lost: bool = False) -> None:
        """Roll back what is still open; a connection that cannot is discarded.

        Called on every way out of the unit of work, so that no pooled
        connection is handed out again in the middle of a transaction, or of
        an operation a lost connection cut short. ``lost`` says the unit of
        work ended on such a loss: errors raised on the driver go past
        SQLAlchemy, which would otherwise pool the connection again. A
        held-back write is dropped.
        """
        self._ended = True
        self._deferred = None
        if lost or self._in_flight or self._closed_under_us():
            # a held-back BEGIN or write cut short may still run on the server
            # after we look: the connection cannot be trusted again
            await self._connection.invalidate()
            return
        if not self.still_open():
            return
        try:
            await self.driver.execute("ROLLBACK")
        except BaseException as error:
            _logger.debug("rollback on the driver failed; discarding the connection", exc_info=True)
            await self._connection.invalidate()
            if not isinstance(error, Exception):
                raise  # a cancellation goes on; a failed rollback is not the caller's error

    def _closed_under_us(self) -> bool:
        """Return whether the driver connection closed without SQLAlchemy knowing it."""
        return bool(self.driver.is_closed())

    def still_open(self) -> bool:
        """Return whether the driver connection is still inside a transaction."""
        driver = self.driver
        return bool(not driver.is_closed() and driver.is_in_transaction())

    async def close(self) -> None:
        """Hand the connection back to SQLAlchemy's own transactions, once this one has ended.

        A statement sent on the connection after the unit of work committed or
        rolled back then opens a transaction of SQLAlchemy's, which the unit of
        work rolls back when it closes, instead of committing on its own.
        """
        self._ended = True
        if self._sqlalchemy_joined:
            connection = self._connection
            if connection.in_transaction():
                await connection.commit()  # SQLAlchemy's bookkeeping: it sends nothing
            await connection.execution_options(isolation_level=self._isolation_level)


class SQLiteDriverTransaction(DriverTransaction):
    """The same on SQLite: the transaction driven on the event loop's own thread.

    aiosqlite runs every call in a worker thread, and each hand-off there
    costs more than the statement itself (about 75 µs on a 2-core machine,
    against a few µs for an append). The unit of work therefore sends
    ``BEGIN IMMEDIATE``, the event store's statements and ``COMMIT`` straight
    on the ``sqlite3`` connection inside aiosqlite's, on the calling thread,
    while aiosqlite's thread is idle (every call of the unit of work on it has
    been awaited). SQLAlchemy's statements on :attr:`connection` run there
    too, once the write lock is held: while the transaction is open, the
    aiosqlite connection runs each call it is given at once, on the calling
    thread, instead of queueing it for its worker (four hand-offs per
    statement otherwise: cursor, execute, fetch, close). SQLAlchemy's
    ``begin`` (see ``create_engine``) sends nothing when the driver
    connection is already in a transaction.

    Nothing here waits on the loop's thread for another writer:

    * writers of the same file in this process queue on an asyncio lock
      (:func:`writer_lock`), each for up to the busy timeout;
    * ``BEGIN IMMEDIATE`` is first tried with a busy timeout of 0; when
      another process (or a SQLAlchemy transaction of this one) holds the
      write lock, it is sent again through aiosqlite's thread, which waits
      up to the busy timeout.

    Once ``BEGIN IMMEDIATE`` has succeeded, this connection is the file's only
    writer and, in WAL mode, its statements and its ``COMMIT`` never wait for
    a lock. In another journal mode ``COMMIT`` waits for readers, so it goes
    through aiosqlite's thread, and SQLAlchemy's statements stay there too.
    A rollback after an error goes through aiosqlite's thread, behind
    anything still queued there.
    """

    def __init__(
        self,
        connection: AsyncConnection,
        driver: Any,
        isolation_level: str,
        native: sqlite3.Connection,
        writer: asyncio.Lock | None,
        *,
        wal: bool = True,
    ) -> None:
        super().__init__(connection, driver, isolation_level)
        self.statements = SQLiteOnLoop(native)
        self.native = native
        """The ``sqlite3`` connection inside aiosqlite's: the one the statements run on."""
        self._writer = writer
        self.wal = wal
        """Whether the database is in WAL mode: ``COMMIT`` then waits for no one."""

    @property
    def connection(self) -> AsyncConnection:
        """Return the SQLAlchemy connection; its statements run inside this transaction."""
        if not self._sqlalchemy_joined:
            self._join(self._sync_connection())
        return self._connection

    @classmethod
    async def begin(cls, connection: AsyncConnection, isolation_level: str) -> DriverTransaction:
        """Begin the write transaction (``BEGIN IMMEDIATE``), waiting only off the loop's thread.

        On a read-only view of the engine (``read_only``) a plain ``BEGIN``,
        as the engine's own hook sends: it takes no lock.
        """
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        native: sqlite3.Connection = driver._conn  # the sqlite3 connection aiosqlite drives
        if connection.engine.get_execution_options().get(READ_ONLY_OPTION):
            native.execute("BEGIN")
            return cls(connection, driver, isolation_level, native, None)
        timeout_ms = busy_timeout_ms(raw.info, native)
        writer = writer_lock(connection.engine.url)
        if writer is not None:
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    await writer.acquire()
            except TimeoutError:
                raise LockTimeoutError(
                    "begin a write transaction",
                    f"another unit of work of this process held the write lock of "
                    f"{connection.engine.url.database} for longer than the busy timeout "
                    f"({timeout_ms} ms)",
                ) from None
        try:
            if not _begin_at_once(native, timeout_ms):
                await driver.execute("BEGIN IMMEDIATE")  # waits on aiosqlite's thread
        except BaseException:
            if writer is not None:
                writer.release()
            raise
        wal = journal_is_wal(raw.info, native)
        transaction = cls(connection, driver, isolation_level, native, writer, wal=wal)
        if wal:
            transaction._run_inline()
        return transaction

    def _run_inline(self) -> None:
        """Have the aiosqlite connection run its calls at once, on the calling thread."""
        driver = self.driver

        async def execute_at_once(function: Any, *args: Any, **kwargs: Any) -> Any:
            if not driver._running or not driver._connection:  # as aiosqlite checks
                raise ValueError("Connection closed")
            return function(*args, **kwargs)

        driver._execute = execute_at_once

    def _queue_again(self) -> None:
        """Give the aiosqlite connection back its worker thread (idempotent)."""
        self.driver.__dict__.pop("_execute", None)

    def still_open(self) -> bool:
        """Return whether the driver connection is still inside a transaction."""
        try:
            return bool(self.driver.in_transaction)
        except ValueError:  # aiosqlite: the connection is closed, and with it the transaction
            return False

    async def commit(self, operation: str) -> None:
        """Send ``COMMIT``; SQLite refuses it when the transaction is gone, with an error.

        In WAL mode on the loop's thread (it waits for no one); in another
        journal mode, where ``COMMIT`` waits for readers to finish, through
        aiosqlite's thread.
        """
        if self.wal:
            self.native.execute("COMMIT")
            self._queue_again()
        else:
            await self.driver.execute("COMMIT")
        self._release_writer()

    async def end(self, *, lost: bool = False) -> None:
        """Roll back what is still open, through aiosqlite's thread (behind anything queued)."""
        self._queue_again()
        try:
            await super().end(lost=lost)
        finally:
            self._release_writer()

    def _release_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()

    def _closed_under_us(self) -> bool:
        # aiosqlite's connection is closed only by SQLAlchemy, which knows it
        return False

    async def close(self) -> None:
        """End SQLAlchemy's side of the transaction (the driver's has ended already)."""
        self._queue_again()
        self._release_writer()
        if self._sqlalchemy_joined and self._connection.in_transaction():
            await self._connection.rollback()  # nothing is open on the driver: a no-op there


class SQLiteOnLoop:
    """A unit of work's ``sqlite3`` connection, behind the async calls the event store makes.

    Each call runs at once on the calling thread. A result of many rows is
    fetched a page at a time, letting other tasks run between pages.
    """

    rows_per_turn = 1000
    """Rows fetched before other tasks get a turn (about 2 ms of stepping)."""

    def __init__(self, native: sqlite3.Connection) -> None:
        self.native = native

    async def execute_fetchall(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """Run ``sql`` and return all its rows."""
        cursor = self.native.execute(sql, parameters)
        try:
            rows = cursor.fetchmany(self.rows_per_turn)
            if len(rows) == self.rows_per_turn:
                while page := cursor.fetchmany(self.rows_per_turn):
                    rows += page
                    await asyncio.sleep(0)
        finally:
            cursor.close()
        return rows

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        """Run ``sql``, which returns no rows."""
        self.native.execute(sql, parameters).close()


_BUSY_TIMEOUT = "cqrs_ddd_busy_timeout_ms"
_WAL = "cqrs_ddd_wal"
_WRITER_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def busy_timeout_ms(info: dict[Any, Any], native: sqlite3.Connection) -> int:
    """Return the connection's busy timeout, read once per pooled connection."""
    timeout = info.get(_BUSY_TIMEOUT)
    if timeout is None:
        timeout = info[_BUSY_TIMEOUT] = int(native.execute("PRAGMA busy_timeout").fetchone()[0])
    return int(timeout)


def journal_is_wal(info: dict[Any, Any], native: sqlite3.Connection) -> bool:
    """Return whether the connection's database is in WAL mode, read once per pooled connection."""
    wal = info.get(_WAL)
    if wal is None:
        mode = native.execute("PRAGMA journal_mode").fetchone()[0]
        wal = info[_WAL] = str(mode).lower() == "wal"
    return bool(wal)


def writer_lock(url: URL) -> asyncio.Lock | None:
    """Return the lock this event loop's writers of ``url``'s file queue on (None: no file)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    locks = _WRITER_LOCKS.get(asyncio.get_running_loop())
    if locks is None:
        locks = _WRITER_LOCKS[asyncio.get_running_loop()] = {}
    lock = locks.get(database)
    if lock is None:
        # one lock for every spelling of the file's path
        key = str(Path(database).absolute())
        lock = locks[database] = locks.get(key) or asyncio.Lock()
        locks[key] = lock
    return lock


def _begin_at_once(native: sqlite3.Connection, timeout_ms: int) -> bool:
    """Send ``BEGIN IMMEDIATE`` without waiting; False when another writer holds the lock."""
    native.execute("PRAGMA busy_timeout = 0")
    try:
        native.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_BUSY:
            return False
        raise
    finally:
        native.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
    return True
