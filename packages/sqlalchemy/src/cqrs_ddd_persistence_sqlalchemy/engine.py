"""Building engines that give the framework's guarantees on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cqrs_ddd_persistence_sqlalchemy.exceptions import UnsupportedDatabaseError
from cqrs_ddd_persistence_sqlalchemy.types import parse_json_text

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///cqrs_ddd.sqlite"
"""The embedded default: a SQLite file in the working directory."""

READ_ONLY_OPTION = "cqrs_ddd_read_only"
"""Execution option marking a SQLite connection whose transactions only read."""


def create_engine(
    url: str | URL = DEFAULT_SQLITE_URL,
    *,
    lock_timeout_ms: int = 10_000,
    busy_timeout_ms: int = 10_000,
    application_name: str = "cqrs-ddd",
    **engine_options: Any,
) -> AsyncEngine:
    """Return an async engine for ``url``, set up for the framework.

    SQLite (``sqlite+aiosqlite``): WAL journal, ``busy_timeout``, foreign keys,
    and every write transaction opened with ``BEGIN IMMEDIATE``, so a writer
    waits for the lock up front instead of failing with ``database is locked``
    when it upgrades a read to a write. Reads made through
    :func:`read_only` connections use a deferred ``BEGIN`` and never block writers.

    PostgreSQL (``postgresql+asyncpg``): ``lock_timeout`` and
    ``application_name`` on every connection, so a writer stuck behind a lock
    fails with a typed error rather than waiting forever; and a pooled
    connection the server has closed (a restart, a failover,
    ``pg_terminate_backend``) is replaced when it is checked out, at no cost
    of a round trip (the driver already knows its socket was closed).

    On both, JSON columns are read with ``types.parse_json_text``
    (``json.loads``, faster for what the stores write) unless
    ``json_deserializer`` is given.

    ``engine_options`` go to ``create_async_engine`` (pool size, echo ...).
    """
    url = make_url(url)
    engine_options.setdefault("json_deserializer", parse_json_text)
    if url.get_backend_name() == "sqlite":
        connect_args = dict(engine_options.pop("connect_args", {}))
        connect_args.setdefault("factory", RollingBackConnection)
        engine = create_async_engine(url, connect_args=connect_args, **engine_options)
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    if url.get_backend_name() == "postgresql":
        connect_args = dict(engine_options.pop("connect_args", {}))
        settings = dict(connect_args.get("server_settings", {}))
        settings.setdefault("lock_timeout", str(lock_timeout_ms))
        settings.setdefault("application_name", application_name)
        connect_args["server_settings"] = settings
        engine = create_async_engine(url, connect_args=connect_args, **engine_options)
        event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
        return engine
    return create_async_engine(url, **engine_options)


class RollingBackConnection(sqlite3.Connection):
    """A ``sqlite3`` connection that rolls back an open transaction when it is closed.

    SQLite keeps a closed connection alive, locks and all, while a cursor of
    it still holds a statement (``sqlite3_close_v2``). When a task is
    cancelled in the middle of a statement, SQLAlchemy invalidates the
    connection and closes it, but the cursor lives on in the cancelled
    frame's traceback until the garbage collector runs: a write transaction
    (``BEGIN IMMEDIATE``) would keep the database file locked for every other
    writer meanwhile. Rolling back first ends the transaction at once; a
    rollback is allowed with statements still pending.
    """

    def close(self) -> None:
        """Roll back the open transaction, if any, then close."""
        # closing is what matters: a failed rollback leaves it to the close
        with contextlib.suppress(sqlite3.Error):
            if self.in_transaction:
                self.rollback()
        super().close()


def check_database(engine: AsyncEngine) -> AsyncEngine:
    """Return ``engine``, or raise ``UnsupportedDatabaseError`` if its database is in memory.

    An in-memory SQLite database (``sqlite+aiosqlite://``, ``:memory:``, a
    ``mode=memory`` URI) lives in one connection shared by every task, so
    concurrent commands would run inside each other's transactions ("cannot
    start a transaction within a transaction").
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or "mode=memory" in database:
            raise UnsupportedDatabaseError(
                url.render_as_string(hide_password=True),
                "an in-memory SQLite database is one connection that concurrent commands "
                "would share: use a SQLite file (sqlite+aiosqlite:///app.sqlite), or "
                "InMemoryEventStore and InMemoryRepository in tests",
            )
    return engine


def same_database(first: AsyncEngine, second: AsyncEngine) -> bool:
    """Return whether two engines open connections to the same database.

    True for views of one engine (one pool), and for engines built from URLs
    naming the same database: the same SQLite file (paths compared once made
    absolute), or the same PostgreSQL host, port, database and user. An
    in-memory SQLite database is private to its engine.
    """
    if first.pool is second.pool:
        return True
    key = _database_key(first)
    return key is not None and key == _database_key(second)


def _database_key(engine: AsyncEngine) -> tuple[object, ...] | None:
    url = engine.url
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return (backend, str(Path(database).absolute()))
    return (backend, url.host or "", url.port, url.database or "", url.username or "")


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """Return a view of ``engine`` whose transactions only read (deferred on SQLite)."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def _refuse_closed_connection(
    dbapi_connection: Any, connection_record: Any, connection_proxy: Any
) -> None:
    # the pool invalidates a connection refused here and checks out another
    driver = connection_record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    _skip_empty_rollbacks(engine)

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take transaction control from the driver so that "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        driver = connection.connection.driver_connection
        if driver is not None and driver.in_transaction:
            return  # a unit of work began its transaction on the driver: join it
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _skip_empty_rollbacks(engine: AsyncEngine) -> None:
    """Make a rollback with no transaction open cost nothing, instead of a thread hand-off.

    The pool rolls back every connection given back to it; on aiosqlite that
    is a hand-off to the connection's worker thread (tens of µs), for a
    ``sqlite3`` rollback that does nothing when no transaction is open. The
    check ``sqlite3`` makes there is made here first, on the calling thread:
    a pooled connection's worker thread is idle (SQLAlchemy discards a
    connection whose statement was cancelled), so the answer is current.
    """
    dialect = engine.sync_engine.dialect
    rollback_on_driver = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            idle = not dbapi_connection.driver_connection.in_transaction
        except (AttributeError, ValueError):  # closed: let the driver say so
            idle = False
        if not idle:
            rollback_on_driver(dbapi_connection)

    setattr(dialect, "do_rollback", do_rollback)  # noqa: B010 - an instance override
