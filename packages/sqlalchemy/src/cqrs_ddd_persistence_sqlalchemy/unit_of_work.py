"""The SQLAlchemy unit of work: one database transaction per command."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from cqrs_ddd_core.cqrs.scope import current_scope_or_none
from cqrs_ddd_core.exceptions import UnitOfWorkError
from cqrs_ddd_core.failpoints import async_failpoint
from cqrs_ddd_persistence_sqlalchemy.driver_transaction import (
    DeferredWrite,
    DriverTransaction,
    SQLiteDriverTransaction,
)
from cqrs_ddd_persistence_sqlalchemy.engine import check_database, same_database
from cqrs_ddd_persistence_sqlalchemy.error_translation import (
    is_connection_loss,
    translated_errors,
)

logger = logging.getLogger(__name__)


class SQLAlchemyUnitOfWork:
    """Opens one transaction on ``engine``; the package's stores and repositories join it.

    While a command runs, ``SQLAlchemyEventStore``, ``SQLAlchemyRepository`` and
    the outbox find this unit of work in the ambient command scope and write
    through its :attr:`connection`, so the events, the aggregate state and the
    outbox rows of one command commit together or not at all. :attr:`session`
    gives an ORM session bound to the same transaction, for repositories of
    your own. Leaving the block without :meth:`commit` rolls back.

    On asyncpg and aiosqlite the unit of work sends ``BEGIN`` (on SQLite
    ``BEGIN IMMEDIATE``, on the event loop's thread; on PostgreSQL at ``READ
    COMMITTED`` only once something needs the transaction, see :meth:`defer`)
    and ``COMMIT`` on the driver connection itself, and
    SQLAlchemy's statements run inside that transaction (see
    ``driver_transaction``): the event store then appends straight on the
    driver, and everything written through SQLAlchemy on :attr:`connection`
    or :attr:`session` is still part of the one transaction. Use
    :meth:`commit` and :meth:`rollback` of the unit of work, not of the
    connection.
    """

    def __init__(self, engine: AsyncEngine, *, operation: str | None = None) -> None:
        """Prepare a unit of work on ``engine`` (nothing is sent before ``async with``).

        ``operation`` names what the transaction is for in its errors (an
        event store appending on its own passes "append to stream ..."); by
        default errors say "begin a unit of work", "commit a unit of work".
        """
        self.engine = check_database(engine)
        self._operation = operation
        self._driver_transaction: type[DriverTransaction] | None = {
            "asyncpg": DriverTransaction,
            "aiosqlite": SQLiteDriverTransaction,
        }.get(engine.dialect.driver)
        self._transaction: DriverTransaction | None = None
        self._connection: AsyncConnection | None = None
        self._session: AsyncSession | None = None
        self._after_commit: list[Callable[[], None]] = []

    def call_after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction has committed (not after a rollback).

        Adding the same callback twice runs it once. Errors it raises are logged.
        """
        if callback not in self._after_commit:
            self._after_commit.append(callback)

    @property
    def connection(self) -> AsyncConnection:
        """Return the connection that holds this unit of work's transaction."""
        if self._connection is None:
            raise UnitOfWorkError("the unit of work is not open: use `async with uow:`")
        if self._transaction is not None:
            return self._transaction.connection
        return self._connection

    @property
    def driver_connection(self) -> Any | None:
        """Return what the event store's statements run on.

        The asyncpg connection on PostgreSQL; on SQLite the ``sqlite3``
        connection driven on the event loop's thread (``SQLiteOnLoop``). None
        for other drivers, whose transaction is SQLAlchemy's. On PostgreSQL
        ``BEGIN`` may not have been sent yet: a write sent here would commit
        on its own, ahead of a held-back append. Use :meth:`driver_for_write`
        (or :meth:`driver_for_read`) to send statements.
        """
        return None if self._transaction is None else self._transaction.statements

    async def driver_for_read(self) -> Any | None:
        """Return :attr:`driver_connection`, for a read that must see this transaction's writes.

        A write held back to the commit (:meth:`defer`) is sent first; a read
        before any write may run outside the transaction on PostgreSQL (see
        ``DriverTransaction``), as its first statement would see the same.
        """
        transaction = self._transaction
        if transaction is None:
            return None
        if transaction.has_deferred:
            await transaction.open()
        return transaction.statements

    async def driver_for_write(self) -> Any | None:
        """Return :attr:`driver_connection` inside the transaction (``BEGIN`` sent)."""
        transaction = self._transaction
        if transaction is None:
            return None
        await transaction.open()
        return transaction.statements

    def defer(self, write: DeferredWrite) -> bool:
        """Hold ``write`` back until the commit, where the driver allows it; False: send it now.

        On PostgreSQL, when nothing has needed the transaction yet: a commit
        with nothing else to send then sends ``write`` alone, one statement
        in an implicit transaction. Anything that needs the transaction first
        (a statement through SQLAlchemy, a read of this transaction's writes)
        sends ``BEGIN`` and then ``write``. A rollback drops it.
        """
        transaction = self._transaction
        return transaction is not None and transaction.defer(write)

    @property
    def session(self) -> AsyncSession:
        """Return an ORM session that works inside this unit of work's transaction."""
        if self._session is None:
            self._session = AsyncSession(
                bind=self.connection, join_transaction_mode="create_savepoint"
            )
        return self._session

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise UnitOfWorkError("this unit of work is already in use; build one per command")
        with translated_errors(self._operation or "begin a unit of work"):
            connection = await self.engine.connect()
            try:
                if self._driver_transaction is not None:
                    self._transaction = await self._driver_transaction.begin(
                        connection, self._isolation_level()
                    )
                else:
                    await connection.begin()
            except BaseException:
                await connection.invalidate()  # it may be left inside a transaction
                await connection.close()
                raise
        self._connection = connection
        return self

    def _isolation_level(self) -> str:
        dialect = self.engine.dialect
        level = (
            self.engine.get_execution_options().get("isolation_level")
            or getattr(dialect, "isolation_level", None)
            or dialect.default_isolation_level
            or "READ COMMITTED"
        )
        return str(level)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._after_commit = []
        connection, self._connection = self._connection, None
        session, self._session = self._session, None
        transaction, self._transaction = self._transaction, None
        if connection is None:
            return
        try:
            if session is not None:
                await session.close()
        except Exception:
            if exc is None:
                raise
            # the block's own error (or cancellation) is the one to report
            logger.debug("closing the session after %r failed", exc, exc_info=True)
        finally:
            await self._end(
                connection, transaction, lost=exc is not None and is_connection_loss(exc)
            )

    @staticmethod
    async def _end(
        connection: AsyncConnection, transaction: DriverTransaction | None, *, lost: bool
    ) -> None:
        """End the transaction whatever happened; never pool a connection still inside one."""
        try:
            if transaction is not None:
                await transaction.end(lost=lost)
            if connection.in_transaction():
                await connection.rollback()
        finally:
            if transaction is not None and not connection.invalidated and transaction.still_open():
                await connection.invalidate()  # the rollback did not take: discard it
            await connection.close()

    async def commit(self) -> None:
        """Commit everything written through this unit of work."""
        operation = self._operation or "commit a unit of work"
        with translated_errors(operation):
            if self._session is not None:
                await self._session.flush()
            await async_failpoint("unit_of_work.before_commit")
            transaction = self._transaction
            if transaction is None:
                await self.connection.commit()
            else:
                await transaction.commit(operation)
                self._transaction = None
                await transaction.close()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("an after-commit callback failed")
        await async_failpoint("unit_of_work.after_commit")

    async def rollback(self) -> None:
        """Discard everything written through this unit of work."""
        with translated_errors(self._operation or "roll back a unit of work"):
            transaction, self._transaction = self._transaction, None
            if transaction is None:
                await self.connection.rollback()
            else:
                await transaction.end()
                await transaction.close()


def ambient_unit_of_work(engine: AsyncEngine) -> SQLAlchemyUnitOfWork | None:
    """Return the ambient ``SQLAlchemyUnitOfWork`` when a command runs one on ``engine``'s database.

    The unit of work may be on ``engine`` itself or on another engine of the
    same database (see :func:`same_database`): a store joins the command's
    transaction either way, so its writes commit or roll back with it.
    """
    scope = current_scope_or_none()
    if scope is None or not isinstance(scope.uow, SQLAlchemyUnitOfWork):
        return None
    uow = scope.uow
    if uow.engine.pool is engine.pool or same_database(uow.engine, engine):
        return uow
    return None


def ambient_connection(engine: AsyncEngine) -> AsyncConnection | None:
    """Return the connection of the ambient ``SQLAlchemyUnitOfWork`` on ``engine``'s database.

    For reads: a unit of work on another database is not joined (None).
    """
    uow = ambient_unit_of_work(engine)
    return None if uow is None else uow.connection


def unit_of_work_for_write(engine: AsyncEngine, operation: str) -> SQLAlchemyUnitOfWork | None:
    """Return the unit of work a write on ``engine`` must join: the command's, or None outside one.

    Raises ``UnitOfWorkError`` naming ``operation`` inside a command whose unit
    of work cannot carry the write (not a ``SQLAlchemyUnitOfWork``, or one on
    another database): written on its own, the write would commit even when
    the command rolls back.
    """
    scope = current_scope_or_none()
    if scope is None:
        return None
    uow = ambient_unit_of_work(engine)
    if uow is None:
        raise UnitOfWorkError(
            f"{operation} cannot join the command's unit of work "
            f"({type(scope.uow).__qualname__}{_database_of(scope.uow)}): its writes would "
            f"commit apart from the command. Run the command in a SQLAlchemyUnitOfWork on "
            f"the same database ({engine.url.render_as_string(hide_password=True)})"
        )
    return uow


def _database_of(uow: object) -> str:
    if isinstance(uow, SQLAlchemyUnitOfWork):
        return f" on {uow.engine.url.render_as_string(hide_password=True)}"
    return ""
