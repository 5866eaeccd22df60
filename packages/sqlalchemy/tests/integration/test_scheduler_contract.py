"""The SQLAlchemy command scheduler passes the scheduler contract, on SQLite and PostgreSQL.

The contract's commands run in ``SQLAlchemyUnitOfWork``s on the same database,
so each run's completion commits in the command's own transaction.
"""

from __future__ import annotations

from functools import partial

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.contracts import CommandSchedulerContract, SchedulerKit
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyCommandScheduler,
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
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
