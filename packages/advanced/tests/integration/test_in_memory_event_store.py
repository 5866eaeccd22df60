from __future__ import annotations

import pytest

from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore
from cqrs_ddd_core import InMemoryUnitOfWork
from cqrs_ddd_core.contracts import EventStoreContract


@pytest.fixture
def event_store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def uow_factory() -> type[InMemoryUnitOfWork]:
    return InMemoryUnitOfWork


class TestInMemoryEventStore(EventStoreContract):
    pass
