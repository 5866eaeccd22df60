"""The in-memory worker stores run every worker contract suite.

The storage is the one an ``InMemoryEventStore`` offers its workers, so that
its appends notify the storage's wake-up; read-model writes go to an
``InMemoryReadModelStore`` through the transaction's undo log.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from cqrs_ddd_advanced_core.adapters.memory import (
    InMemoryEventStore,
    InMemoryReadModelStore,
    InMemoryWorkerStorage,
)
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


class InMemoryContractReadModel:
    """The suites' read model on an ``InMemoryReadModelStore``."""

    def __init__(self) -> None:
        self.store = InMemoryReadModelStore(key="key")

    async def write(self, connection: Any, key: str) -> None:
        await self.store.upsert(connection, {"key": key})

    async def keys(self) -> list[str]:
        return [row["key"] for row in self.store.rows()]


@pytest.fixture
def worker_storage(event_store: InMemoryEventStore) -> InMemoryWorkerStorage:
    storage = event_store.worker_storage()
    assert isinstance(storage, InMemoryWorkerStorage)
    return storage


@pytest.fixture
def append_event(event_store: InMemoryEventStore) -> Append:
    async def append() -> None:
        await event_store.append(f"s-{uuid4()}", [happened("a")], expected_version=0)

    return append


@pytest.fixture
def read_model() -> ContractReadModel:
    return InMemoryContractReadModel()


class TestInMemoryLeaseStore(LeaseStoreContract):
    pass


class TestInMemoryCheckpointStore(CheckpointStoreContract):
    pass


class TestInMemoryDeadLetterStore(DeadLetterStoreContract):
    pass


class TestInMemoryWakeupFeed(WakeupFeedContract):
    pass


class TestInMemoryWorkerStorage(WorkerStorageContract):
    pass
