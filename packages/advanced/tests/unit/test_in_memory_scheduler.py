"""The in-memory command scheduler passes the scheduler contract."""

from __future__ import annotations

import pytest

from cqrs_ddd_advanced_core.adapters.memory import InMemoryCommandScheduler, InMemoryEventStore
from cqrs_ddd_advanced_core.contracts import CommandSchedulerContract, SchedulerKit
from cqrs_ddd_core import InMemoryUnitOfWork


@pytest.fixture
def scheduler_kit() -> SchedulerKit:
    return SchedulerKit(
        scheduler=InMemoryCommandScheduler(),
        event_store=InMemoryEventStore(),
        uow_factory=InMemoryUnitOfWork,
    )


class TestInMemoryCommandScheduler(CommandSchedulerContract):
    pass
