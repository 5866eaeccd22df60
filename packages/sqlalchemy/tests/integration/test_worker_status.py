"""A worker's status, read from the database by a process that runs no worker.

The operator tools and the example service show every worker's progress; they
run no worker themselves. ``read_status`` over a ``SQLAlchemyWorkerStorage``
of their own must give the figures the worker's own ``status()`` gives.
"""

from __future__ import annotations

import pytest
from projection_test_model import LedgerProjector, Writer
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionWorker, ProjectorRegistry
from cqrs_ddd_advanced_core.workers import read_status
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyReadModelStore,
    SQLAlchemyWorkerStorage,
    create_engine,
)

pytest_plugins = ["sqlalchemy_fixtures"]

ledger = Table(
    "status_ledger",
    MetaData(),
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("stream_id", String(100), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("times", Integer, nullable=False),
)


async def test_a_process_without_workers_reads_the_same_status_as_the_worker(
    engine: AsyncEngine,
) -> None:
    # given: a worker that projected 20 events, one of them failing, with 5 more appended since
    async with engine.begin() as connection:
        await connection.run_sync(ledger.metadata.create_all)
    store = SQLAlchemyEventStore(engine)
    writer = Writer(store)
    await writer.tick("a", 20)
    projector = LedgerProjector(SQLAlchemyReadModelStore(ledger, engine), "ledger")
    projector.fail_on = {7}
    worker = ProjectionWorker(
        ProjectorRegistry([projector]), store, retry_backoff=0, worker_id="busy"
    )
    await worker.catch_up()
    await writer.tick("b", 5)
    # when: another process, with stores of its own, reads the status
    elsewhere = create_engine(engine.url)
    try:
        status = await read_status(
            SQLAlchemyWorkerStorage(elsewhere), SQLAlchemyEventStore(elsewhere), "ledger"
        )
    finally:
        await elsewhere.dispose()
    # then: the same figures as the worker's own view (only its loop's state is its own)
    [own] = await worker.status()
    assert (status.checkpoint, status.head_position, status.lag_events) == (20, 25, 5)
    assert (status.dead_letters, status.owner, status.kind) == (1, None, "projection")
    assert status.lag_seconds >= 0
    assert (status.checkpoint, status.head_position, status.lag_events, status.dead_letters) == (
        own.checkpoint,
        own.head_position,
        own.lag_events,
        own.dead_letters,
    )
    assert status.state == "idle"
    assert pytest.approx(status.lag_seconds, abs=5) == own.lag_seconds
