from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.contracts import EventStoreContract
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore, SQLAlchemyUnitOfWork

pytest_plugins = ["sqlalchemy_fixtures"]


@pytest.fixture
def event_store(engine: AsyncEngine) -> SQLAlchemyEventStore:
    return SQLAlchemyEventStore(engine)


@pytest.fixture
def uow_factory(engine: AsyncEngine) -> Callable[[], SQLAlchemyUnitOfWork]:
    return lambda: SQLAlchemyUnitOfWork(engine)


class TestSQLAlchemyEventStore(EventStoreContract):
    pass
