"""The SQLAlchemy worker stores run every worker contract suite, on SQLite and PostgreSQL.

The storage is the one a ``SQLAlchemyEventStore`` offers its workers, so that
its appends notify the storage's wake-up. Appends "elsewhere" go through a
second engine on the same database with a wake-up of its own, as another
process's would: only ``LISTEN``/``NOTIFY`` (PostgreSQL) or the file's
``data_version`` (SQLite) can carry them to the feed. The suites' read model is
a table of the same database written through ``SQLAlchemyReadModelStore``, so
its upserts are held back and sent as a projection's are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.contracts import (
    CheckpointStoreContract,
    ContractReadModel,
    DeadLetterStoreContract,
    LeaseStoreContract,
    WakeupFeedContract,
    WorkerStorageContract,
)
from cqrs_ddd_advanced_core.contracts.wakeup_feed_contract import Append
from cqrs_ddd_core.contracts.event_store_contract import happened
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyReadModelStore,
    SQLAlchemyWorkerStorage,
    create_engine,
)

pytest_plugins = ["sqlalchemy_fixtures"]

metadata = MetaData()
contract_rows = Table("contract_rows", metadata, Column("key", String(50), primary_key=True))


class SQLContractReadModel:
    """The suites' read model: a one-column table written through ``SQLAlchemyReadModelStore``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.store = SQLAlchemyReadModelStore(contract_rows, engine)

    async def write(self, connection: Any, key: str) -> None:
        await self.store.upsert(connection, {"key": key})

    async def keys(self) -> list[str]:
        async with self.engine.connect() as connection:
            found = await connection.scalars(select(contract_rows.c.key).order_by("key"))
            return list(found)


def appending(store: SQLAlchemyEventStore) -> Append:
    async def append() -> None:
        await store.append(f"s-{uuid4()}", [happened("a")], expected_version=0)

    return append


@pytest.fixture
def event_store(engine: AsyncEngine) -> SQLAlchemyEventStore:
    return SQLAlchemyEventStore(engine)


@pytest.fixture
def worker_storage(event_store: SQLAlchemyEventStore) -> SQLAlchemyWorkerStorage:
    storage = event_store.worker_storage()
    assert isinstance(storage, SQLAlchemyWorkerStorage)
    return storage


@pytest.fixture
def append_event(event_store: SQLAlchemyEventStore) -> Append:
    return appending(event_store)


@pytest_asyncio.fixture
async def other_engine(engine: AsyncEngine, database_url: str) -> AsyncIterator[AsyncEngine]:
    """A second engine on the same (migrated) database: another process, as the feed sees it."""
    other = create_engine(database_url)
    yield other
    await other.dispose()


@pytest_asyncio.fixture
async def read_model(engine: AsyncEngine) -> ContractReadModel:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return SQLContractReadModel(engine)


class TestSQLAlchemyLeaseStore(LeaseStoreContract):
    pass


class TestSQLAlchemyCheckpointStore(CheckpointStoreContract):
    pass


class TestSQLAlchemyDeadLetterStore(DeadLetterStoreContract):
    pass


class TestSQLAlchemyWakeupFeed(WakeupFeedContract):
    @pytest.fixture
    def append_elsewhere(self, other_engine: AsyncEngine) -> Append | None:
        return appending(SQLAlchemyEventStore(other_engine))


class TestSQLAlchemyWorkerStorage(WorkerStorageContract):
    pass
