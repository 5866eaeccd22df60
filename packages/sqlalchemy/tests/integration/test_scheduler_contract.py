"""The SQLAlchemy command scheduler passes the scheduler contract, on SQLite and PostgreSQL.

The contract's commands run in ``SQLAlchemyUnitOfWork``s on the same database,
so each run's completion commits in the command's own transaction.
"""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.contracts import CommandSchedulerContract, SchedulerKit
from cqrs_ddd_advanced_core.contracts.command_scheduler_contract import Effect, eventually, later
from cqrs_ddd_advanced_core.scheduling import CommandSchedulerService, CommandSchedulerWorker
from cqrs_ddd_core import (
    HandlerRegistry,
    InMemoryUnitOfWork,
    Mediator,
    MessageTypeRegistry,
    command_scope,
)
from cqrs_ddd_core.exceptions import UnitOfWorkError
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyCommandScheduler,
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
    create_engine,
)

pytest_plugins = ["sqlalchemy_fixtures"]


@pytest.fixture
def scheduler_kit(engine: AsyncEngine) -> SchedulerKit:
    return SchedulerKit(
        scheduler=SQLAlchemyCommandScheduler(engine),
        event_store=SQLAlchemyEventStore(engine),
        uow_factory=partial(SQLAlchemyUnitOfWork, engine),
    )


class TestSQLAlchemyCommandScheduler(CommandSchedulerContract):
    pass


async def test_a_schedule_made_by_another_process_wakes_a_sleeping_worker(
    engine: AsyncEngine,
) -> None:
    """Only LISTEN/NOTIFY (PostgreSQL) or the file's data_version (SQLite) can carry it."""
    kit = SchedulerKit(
        scheduler=SQLAlchemyCommandScheduler(engine),
        event_store=SQLAlchemyEventStore(engine),
        uow_factory=partial(SQLAlchemyUnitOfWork, engine),
    )
    worker = CommandSchedulerWorker(kit.service(), poll_interval=60.0)
    elsewhere = create_engine(engine.url)  # another pool, another wake-up: as another process
    try:
        await worker.start()
        other = kit.service()
        other.scheduler = SQLAlchemyCommandScheduler(elsewhere)
        await asyncio.sleep(0.2)  # the worker went to sleep for its 60 s poll
        await other.schedule(Effect(key="from-afar"), later(0.1))

        async def ran() -> bool:
            return await kit.effects("from-afar") == 1

        await eventually(ran)
    finally:
        await worker.stop()
        await elsewhere.dispose()


async def test_scheduling_in_a_unit_of_work_it_cannot_join_is_refused(engine: AsyncEngine) -> None:
    service = CommandSchedulerService(
        scheduler=SQLAlchemyCommandScheduler(engine),
        mediator_send_fn=Mediator(registry=HandlerRegistry(), uow_factory=InMemoryUnitOfWork).send,
        message_registry=MessageTypeRegistry([Effect]),
    )
    with command_scope(InMemoryUnitOfWork()), pytest.raises(UnitOfWorkError, match="schedule"):
        await service.schedule(Effect(key="apart"), later(-1))
    assert await service.scheduler.seconds_until_due() is None
