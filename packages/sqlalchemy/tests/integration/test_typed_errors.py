"""One typed error per kind of failure, the same on SQLite and PostgreSQL.

A lock not granted in time is ``LockTimeoutError`` whichever database made the
caller wait (PostgreSQL's ``lock_timeout``, SQLite's ``busy_timeout``), whether
the wait was in an append or in the ``BEGIN IMMEDIATE`` that opens a unit of
work; a connection cut under a projection batch is ``DatabaseUnavailableError``;
an in-memory SQLite database, which concurrent commands would share, is refused
when a store is built.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from projection_test_model import Ticked, Writer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import (
    ProjectionContext,
    ProjectionWorker,
    Projector,
    ProjectorRegistry,
    projects,
)
from cqrs_ddd_core import AggregateRoot, DomainEvent, command_scope
from cqrs_ddd_persistence_sqlalchemy import (
    DatabaseUnavailableError,
    LockTimeoutError,
    SQLAlchemyEventStore,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
    UnsupportedDatabaseError,
    create_engine,
)
from cqrs_ddd_persistence_sqlalchemy.event_store import APPEND_LOCK_KEY

pytest_plugins = ["sqlalchemy_fixtures"]


class Noted(DomainEvent):
    note: str = ""


class Note(AggregateRoot):
    text: str = ""


@asynccontextmanager
async def lock_held(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the lock an append needs, from another connection, until the block ends."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        assert database is not None
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    async with engine.connect() as holder, holder.begin():
        await holder.execute(text(f"SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})"))
        yield


@pytest.fixture
async def impatient(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """An engine on the same database that waits at most 200 ms for a lock."""
    other = create_engine(engine.url, lock_timeout_ms=200, busy_timeout_ms=200)
    yield other
    await other.dispose()


async def test_an_append_that_waits_too_long_for_the_lock_is_a_lock_timeout_error(
    engine: AsyncEngine, impatient: AsyncEngine
) -> None:
    store = SQLAlchemyEventStore(impatient)
    async with lock_held(engine):
        with pytest.raises(LockTimeoutError, match="append to stream 's-1'"):
            await store.append("s-1", [Noted()], expected_version=0)
    assert await store.load_stream("s-1") == []


async def test_a_unit_of_work_that_waits_too_long_to_begin_is_a_lock_timeout_error(
    engine: AsyncEngine, impatient: AsyncEngine
) -> None:
    # on SQLite the wait is in BEGIN IMMEDIATE itself, on PostgreSQL in the append
    store = SQLAlchemyEventStore(impatient)

    async def append_in_a_unit_of_work() -> None:
        async with SQLAlchemyUnitOfWork(impatient) as uow:
            with command_scope(uow):
                await store.append("s-1", [Noted()], expected_version=0)
            await uow.commit()

    async with lock_held(engine):
        with pytest.raises(LockTimeoutError):
            await append_in_a_unit_of_work()


class Severing(Projector):
    """Cuts its own batch's connection on the second event (PostgreSQL)."""

    projection_name = "severing"

    def __init__(self) -> None:
        self.cut_on: int | None = 2
        self.applied: list[int] = []

    @projects(Ticked)
    async def ticked(self, event: Ticked, context: ProjectionContext) -> None:
        if event.n == self.cut_on:
            await context.connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        self.applied.append(event.n)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_connection_cut_mid_batch_is_a_database_unavailable_error(
    engine: AsyncEngine,
) -> None:
    # given
    store = SQLAlchemyEventStore(engine)
    await Writer(store).tick("a", 3)
    projector = Severing()
    worker = ProjectionWorker(ProjectorRegistry([projector]), store, retry_backoff=0)
    # when / then: typed, nothing of the batch is kept, and no event was blamed
    with pytest.raises(DatabaseUnavailableError):
        await worker.catch_up()
    assert (await store.worker_storage().record("severing")).position == 0
    # and once the connection stays up, the next run applies every event
    projector.cut_on = None
    [status] = await worker.catch_up()
    assert (status.checkpoint, status.dead_letters) == (3, 0)


@pytest.mark.parametrize(
    "url",
    ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"],
    ids=["empty", "memory"],
)
async def test_an_in_memory_sqlite_database_is_refused_when_a_store_is_built(url: str) -> None:
    engine = create_engine(url)
    try:
        for build in (
            SQLAlchemyEventStore,
            SQLAlchemyUnitOfWork,
            lambda e: SQLAlchemyRepository(Note, e),
        ):
            with pytest.raises(UnsupportedDatabaseError, match="InMemoryEventStore"):
                build(engine)
    finally:
        await engine.dispose()
