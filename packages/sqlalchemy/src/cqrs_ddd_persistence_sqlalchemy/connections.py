"""Finding the engine behind what users pass in, and the right connection for a read."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_persistence_sqlalchemy.engine import check_database, read_only
from cqrs_ddd_persistence_sqlalchemy.errors import translated_errors
from cqrs_ddd_persistence_sqlalchemy.exceptions import DatabaseUnavailableError
from cqrs_ddd_persistence_sqlalchemy.unit_of_work import ambient_connection, ambient_unit_of_work

_logger = logging.getLogger(__name__)

EngineSource = AsyncEngine | async_sessionmaker[AsyncSession] | AsyncSession
"""What stores accept: an engine, or a session factory or session bound to one."""

T = TypeVar("T")

_READER = "reader"


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
    async with per_engine(engine, _READER, _reader).connect() as own:
        yield own


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


async def read_reconnecting(
    engine: AsyncEngine, operation: str, read: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    """Return ``await read(connection)`` on a :func:`reading` connection, once more if it was lost.

    See :func:`once_more_if_disconnected`.
    """

    async def run() -> T:
        async with reading(engine) as connection:
            return await read(connection)

    return await once_more_if_disconnected(engine, operation, run)


def per_engine(engine: AsyncEngine, key: str, build: Callable[[AsyncEngine], T]) -> T:
    """Return ``build(engine)``, built once per engine and kept for its lifetime.

    What a store derives from an engine (a read-only view of it, compiled
    queries) is cached on the engine itself, so a store built per request does
    not rebuild it, and it goes away with the engine. ``key`` names the value
    among the package's; ``build`` must return the same type for one key.
    """
    cache = _cache_of(engine)
    if cache is None:
        return build(engine)
    value: T | None = cache.get(key)
    if value is None:
        value = cache[key] = build(engine)
    return value


def _cache_of(engine: AsyncEngine) -> dict[str, Any] | None:
    try:
        attributes = vars(engine.sync_engine)
    except TypeError:  # an engine class without a __dict__: build every time
        return None
    cache: dict[str, Any] | None = attributes.get("_cqrs_ddd_cache")
    if cache is None:
        cache = attributes["_cqrs_ddd_cache"] = {}
    return cache


def _reader(engine: AsyncEngine) -> AsyncEngine:
    # Building an execution-options view costs about as much as the read it serves.
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return read_only(engine)


def base_engine(engine: AsyncEngine) -> Engine:
    """Return the sync engine behind ``engine``, past any ``execution_options`` views.

    Views made with ``execution_options`` (``OptionEngine``) share their
    engine's pool and events: state kept per engine is kept on this one.
    """
    base = engine.sync_engine
    while hasattr(base, "_proxied"):  # an OptionEngine: a view of another engine
        base = base._proxied
    return base
