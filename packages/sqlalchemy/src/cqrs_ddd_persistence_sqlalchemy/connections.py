"""Finding the engine behind what users pass in, and the right connection for a read."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_persistence_sqlalchemy.engine import check_database, read_only
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.exceptions import DatabaseUnavailableError
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import ambient_connection, ambient_unit_of_work

_logger = logging.getLogger(__name__)

EngineSource = AsyncEngine | async_sessionmaker[AsyncSession] | AsyncSession
"""What stores accept: an engine, or a session factory or session bound to one."""

T = TypeVar("T")


def engine_of(source: EngineSource) -> AsyncEngine:
    """Return the engine behind ``source``, which every store is built on.

    Raises ``TypeError`` when there is none, and ``UnsupportedDatabaseError``
    for an in-memory SQLite database (see :func:`check_database`).
    """
    if isinstance(source, AsyncEngine):
        return check_database(source)
    bind = source.kw.get("bind") if isinstance(source, async_sessionmaker) else source.bind
    if isinstance(bind, AsyncEngine):
        return check_database(bind)
    if isinstance(bind, AsyncConnection):
        return check_database(bind.engine)
    raise TypeError(f"{type(source).__name__} is not bound to an AsyncEngine")


class Reads:
    """How a store reads: on the command's connection, or on a short-lived read-only one.

    Made once per store (stores are built once, at the composition root): it
    keeps the read-only view of the engine that reads outside a command use,
    autocommit on PostgreSQL (no BEGIN/COMMIT round trips for a single
    statement), a deferred transaction on SQLite (never blocks writers in WAL
    mode). Building such a view costs about as much as the read it serves.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        if engine.dialect.name == "postgresql":
            self._view = engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            self._view = read_only(engine)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """Yield a connection for reads: the command's own when one runs on this database."""
        connection = ambient_connection(self.engine)
        if connection is not None:
            yield connection
            return
        async with self._view.connect() as own:
            yield own

    async def run(self, operation: str, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Return ``await read(connection)``, once more on a fresh connection if it was lost.

        See :func:`once_more_if_disconnected`.
        """

        async def run() -> T:
            async with self.connection() as connection:
                return await read(connection)

        return await once_more_if_disconnected(self.engine, operation, run)


async def once_more_if_disconnected(
    engine: AsyncEngine, operation: str, run: Callable[[], Awaitable[T]]
) -> T:
    """Return ``await run()``, errors translated; after a lost connection, run it once more.

    For operations that are safe to repeat: reads, and appends in a
    transaction of their own (idempotent by event id, so a commit whose
    answer was lost is not doubled). A server restart or failover ends every
    pooled connection; SQLAlchemy then refreshes the pool, and the second run
    goes out on a new connection. Inside a command on ``engine``'s database
    nothing is repeated: the command's transaction ended with its connection,
    and ``DatabaseUnavailableError`` goes to the caller.
    """
    try:
        with translated_errors(operation):
            return await run()
    except DatabaseUnavailableError as error:
        if ambient_unit_of_work(engine) is not None:
            raise
        _logger.info("%s lost its connection (%s); trying once more", operation, error.detail)
    with translated_errors(operation):
        return await run()
