"""A PostgreSQL transaction run on the asyncpg connection itself, under SQLAlchemy.

SQLAlchemy's asyncpg adapter opens its transaction with an extra round trip
before the first statement and runs every statement through its asyncio
layer. The unit of work instead sends ``BEGIN`` and ``COMMIT`` on the driver
connection and, once something uses its SQLAlchemy connection, puts that
connection in autocommit mode, so that SQLAlchemy sends each statement as it
is: the server runs them all inside the one transaction. The event store's
hot statements then go straight to the driver, and a command that also
writes through SQLAlchemy (repositories, ``uow.session``, the outbox) is
still one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from cqrs_ddd_persistence_sqlalchemy.engine import READ_ONLY_OPTION
from cqrs_ddd_persistence_sqlalchemy.exceptions import PersistenceError

_logger = logging.getLogger(__name__)

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


class DriverTransaction:
    """One transaction on the driver connection under ``connection`` (PostgreSQL, asyncpg)."""

    def __init__(self, connection: AsyncConnection, driver: Any, isolation_level: str) -> None:
        self._connection = connection
        self.driver = driver
        """The asyncpg connection that holds the transaction."""
        self._isolation_level = isolation_level
        self._sqlalchemy_joined = False

    @property
    def connection(self) -> AsyncConnection:
        """Return the SQLAlchemy connection, switched to autocommit inside this transaction.

        The switch is made on first use only: a command that writes nothing
        through SQLAlchemy never pays for it. It sends nothing to the server
        (SQLAlchemy's adapter holds no transaction of its own here).
        """
        if not self._sqlalchemy_joined:
            sync_connection = self._sync_connection()
            sync_connection.execution_options(isolation_level="AUTOCOMMIT")
            self._join(sync_connection)
        return self._connection

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
        """Send ``BEGIN`` on the driver connection under ``connection``.

        ``isolation_level`` is the engine's (SQLAlchemy's spelling): the
        transaction runs at it, and :meth:`close` gives it back to the connection.
        """
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        options = connection.engine.get_execution_options()
        await driver.execute(begin_statement(isolation_level, options))
        return cls(connection, driver, isolation_level)

    async def commit(self, operation: str) -> None:
        """Send ``COMMIT``; raise ``PersistenceError`` when the server rolled back instead.

        PostgreSQL answers ``COMMIT`` of a transaction in which a statement
        failed (and whose error the caller caught) with a rollback, and no
        error: that must not pass for a commit.
        """
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
        SQLAlchemy, which would otherwise pool the connection again.
        """
        if lost or self._closed_under_us():
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
        if self._sqlalchemy_joined:
            connection = self._connection
            if connection.in_transaction():
                await connection.commit()  # SQLAlchemy's bookkeeping: it sends nothing
            await connection.execution_options(isolation_level=self._isolation_level)


class SQLiteDriverTransaction(DriverTransaction):
    """The same on SQLite (aiosqlite): ``BEGIN IMMEDIATE`` and ``COMMIT`` sent on the driver.

    Each is one hand-off to aiosqlite's thread, where SQLAlchemy's own
    transaction takes several. SQLAlchemy needs no switch here: its
    connection's ``begin`` (see ``create_engine``) sends nothing when the
    driver connection is already in a transaction, and its statements then run
    inside this one.
    """

    @property
    def connection(self) -> AsyncConnection:
        """Return the SQLAlchemy connection; its statements run inside this transaction."""
        if not self._sqlalchemy_joined:
            self._join(self._sync_connection())
        return self._connection

    @classmethod
    async def begin(cls, connection: AsyncConnection, isolation_level: str) -> DriverTransaction:
        """Send ``BEGIN IMMEDIATE`` (it waits up to the busy timeout for the write lock).

        On a read-only view of the engine (``read_only``) a plain ``BEGIN``,
        as the engine's own hook sends.
        """
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        read_only = connection.engine.get_execution_options().get(READ_ONLY_OPTION)
        await driver.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
        return cls(connection, driver, isolation_level)

    def still_open(self) -> bool:
        """Return whether the driver connection is still inside a transaction."""
        try:
            return bool(self.driver.in_transaction)
        except ValueError:  # aiosqlite: the connection is closed, and with it the transaction
            return False

    async def commit(self, operation: str) -> None:
        """Send ``COMMIT``; SQLite refuses it when the transaction is gone, with an error."""
        await self.driver.execute("COMMIT")

    def _closed_under_us(self) -> bool:
        # aiosqlite's connection is closed only by SQLAlchemy, which knows it
        return False

    async def close(self) -> None:
        """End SQLAlchemy's side of the transaction (the driver's has ended already)."""
        if self._sqlalchemy_joined and self._connection.in_transaction():
            await self._connection.rollback()  # nothing is open on the driver: a no-op there
