"""Finding the engine behind what users pass in, and the right connection for a read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_persistence_sqlalchemy.engine import read_only
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import ambient_connection

EngineSource = AsyncEngine | async_sessionmaker[AsyncSession] | AsyncSession
"""What stores accept: an engine, or a session factory or session bound to one."""


def engine_of(source: EngineSource) -> AsyncEngine:
    """Return the engine behind ``source``; raise ``TypeError`` when it has none."""
    if isinstance(source, AsyncEngine):
        return source
    bind = source.kw.get("bind") if isinstance(source, async_sessionmaker) else source.bind
    if isinstance(bind, AsyncEngine):
        return bind
    if isinstance(bind, AsyncConnection):
        return bind.engine
    raise TypeError(f"{type(source).__name__} is not bound to an AsyncEngine")


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Yield a connection for reads: the command's own when one runs on ``engine``.

    Otherwise a short-lived connection that never takes write locks:
    autocommit on PostgreSQL (no BEGIN/COMMIT round trips for a single
    statement), a deferred transaction on SQLite (never blocks writers in WAL mode).
    """
    connection = ambient_connection(engine)
    if connection is not None:
        yield connection
        return
    if engine.dialect.name == "postgresql":
        reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    else:
        reader = read_only(engine)
    async with reader.connect() as own:
        yield own
