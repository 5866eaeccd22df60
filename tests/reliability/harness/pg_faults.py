"""PostgreSQL faults: terminate sessions, hold transactions that pin or lock, and the control.

- `terminate_backends` kills the sessions of one ``application_name`` in the DSN's
  database, as an operator or a failover would (``pg_terminate_backend``).
- `hold_xid` keeps a transaction open that owns an xid (``pg_current_xact_id()``):
  while it is open, ``pg_snapshot_xmin(pg_current_snapshot())`` cannot pass it, in any
  database of the cluster, which stalls an xid8-barrier catch-up reader.
- `idle_in_transaction` parks a session idle inside a transaction that holds a row
  lock (``SELECT … FOR UPDATE``), which takes an xid too: the "leader keeps a write
  transaction open" trap of RELIABILITY.md pitfall 3.
- `hold_read_only_transaction` is the control case: ``BEGIN; SELECT 1`` and idle. It
  never gets an xid, so it must not stall an xid8 reader.

Each holder yields a `HeldTransaction` (backend pid, xid and the connection, for
extra statements inside the held transaction) and rolls back and disconnects on
exit, unless asked to commit. Every connect and statement has a timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

HARNESS_APPLICATION_NAME = "cqrs_ddd_harness"
"""The ``application_name`` of the harness's own sessions (never terminated by it)."""

HOLDER_APPLICATION_NAME = "cqrs_ddd_harness_holder"
"""The default ``application_name`` of the sessions that hold transactions."""

SCRATCH_TABLE = "cqrs_ddd_harness_locks"
"""The table `idle_in_transaction` creates (if needed) to lock one of its rows."""

TIMEOUT_SECONDS = 10.0


class PgFaultError(RuntimeError):
    """A fault could not be set up as asked (e.g. the lock statement locked nothing)."""


@dataclass(frozen=True, slots=True)
class HeldTransaction:
    """A transaction kept open: its backend ``pid`` and ``xid`` (None when it has none).

    ``connection`` runs further statements inside it; don't commit or roll it back
    yourself, the context manager does.
    """

    pid: int
    xid: int | None
    connection: asyncpg.Connection


async def connect(dsn: str, *, application_name: str) -> asyncpg.Connection:
    """Open a connection that names itself ``application_name`` (10 s timeout)."""
    return await asyncpg.connect(
        dsn,
        timeout=TIMEOUT_SECONDS,
        command_timeout=TIMEOUT_SECONDS,
        server_settings={"application_name": application_name},
    )


async def snapshot_xmin(connection: asyncpg.Connection) -> int:
    """Return ``pg_snapshot_xmin(pg_current_snapshot())``: the oldest xid still running.

    It is cluster-wide: a transaction in another database holds it back too.
    """
    xmin: int = await connection.fetchval(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
    )
    return xmin


async def terminate_backends(dsn: str, application_name: str, *, wait_seconds: float = 5.0) -> int:
    """Terminate the sessions named ``application_name`` in the DSN's database.

    Waits up to ``wait_seconds`` for each to end and returns how many ended in
    time. The calling session is never among them.
    """
    connection = await connect(dsn, application_name=HARNESS_APPLICATION_NAME)
    try:
        terminated: int = await connection.fetchval(
            """
            WITH victims AS MATERIALIZED (
                SELECT pid FROM pg_stat_activity
                WHERE application_name = $1
                  AND datname = current_database()
                  AND pid <> pg_backend_pid()
            )
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $2)) FROM victims
            """,
            application_name,
            round(wait_seconds * 1000),
        )
    finally:
        await connection.close(timeout=TIMEOUT_SECONDS)
    return terminated


@contextlib.asynccontextmanager
async def hold_xid(
    dsn: str, *, application_name: str = HOLDER_APPLICATION_NAME, commit: bool = False
) -> AsyncIterator[HeldTransaction]:
    """Open a transaction, give it an xid with ``pg_current_xact_id()``, and hold it.

    The transaction ends when the block exits: rolled back, or committed with
    ``commit=True`` (only when the block raised nothing).
    """
    async with _held(dsn, application_name, commit=commit) as connection:
        row = await connection.fetchrow(
            "SELECT pg_backend_pid() AS pid, pg_current_xact_id()::text::bigint AS xid"
        )
        assert row is not None
        yield HeldTransaction(pid=row["pid"], xid=row["xid"], connection=connection)


@contextlib.asynccontextmanager
async def idle_in_transaction(
    dsn: str,
    *,
    lock_sql: str | None = None,
    application_name: str = HOLDER_APPLICATION_NAME,
) -> AsyncIterator[HeldTransaction]:
    """Park a session idle in a transaction that holds a row lock, until the block exits.

    ``lock_sql`` is the locking statement (``SELECT … FOR UPDATE`` on the row you
    choose); by default it locks row 1 of `SCRATCH_TABLE`, created if needed.
    Raises `PgFaultError` when the statement leaves the transaction without an
    xid (it matched no row, so nothing is locked). Rolled back on exit.
    """
    if lock_sql is None:
        await _ensure_scratch_row(dsn)
        lock_sql = "SELECT id FROM cqrs_ddd_harness_locks WHERE id = 1 FOR UPDATE"
    async with _held(dsn, application_name, commit=False) as connection:
        await connection.execute(lock_sql)
        held = await _describe(connection)
        if held.xid is None:
            msg = f"{lock_sql!r} locked nothing: the transaction has no xid"
            raise PgFaultError(msg)
        yield held


@contextlib.asynccontextmanager
async def hold_read_only_transaction(
    dsn: str, *, application_name: str = HOLDER_APPLICATION_NAME
) -> AsyncIterator[HeldTransaction]:
    """Hold ``BEGIN; SELECT 1`` open and idle: a transaction with no xid (the control case)."""
    async with _held(dsn, application_name, commit=False) as connection:
        await connection.execute("SELECT 1")
        held = await _describe(connection)
        if held.xid is not None:
            msg = f"a read-only transaction got xid {held.xid}"
            raise PgFaultError(msg)
        yield held


@contextlib.asynccontextmanager
async def _held(
    dsn: str, application_name: str, *, commit: bool
) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(dsn, application_name=application_name)
    try:
        transaction = connection.transaction()
        await transaction.start()
        yield connection
        if commit:
            await transaction.commit()
    finally:
        # closing rolls back whatever is still open; a terminated session is fine too
        # (close aborts the socket itself when the graceful way fails)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await connection.close(timeout=TIMEOUT_SECONDS)


async def _describe(connection: asyncpg.Connection) -> HeldTransaction:
    row = await connection.fetchrow(
        "SELECT pg_backend_pid() AS pid, pg_current_xact_id_if_assigned()::text::bigint AS xid"
    )
    assert row is not None
    return HeldTransaction(pid=row["pid"], xid=row["xid"], connection=connection)


async def _ensure_scratch_row(dsn: str) -> None:
    connection = await connect(dsn, application_name=HARNESS_APPLICATION_NAME)
    try:
        async with connection.transaction():
            # concurrent CREATE TABLE IF NOT EXISTS can still collide: serialise them
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext('cqrs_ddd_harness_locks'));"
                "CREATE TABLE IF NOT EXISTS cqrs_ddd_harness_locks (id integer PRIMARY KEY);"
                "INSERT INTO cqrs_ddd_harness_locks (id) VALUES (1) ON CONFLICT DO NOTHING"
            )
    finally:
        await connection.close(timeout=TIMEOUT_SECONDS)
