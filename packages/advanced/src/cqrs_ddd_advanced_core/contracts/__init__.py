"""Contract test suites that every implementation of a worker port must pass.

Import them in a test module of the adapter, subclass each suite and provide
the fixtures it asks for (a fresh ``worker_storage`` for all; see each suite's
docstring for the others). The in-memory stores and the SQLAlchemy stores (on
SQLite and PostgreSQL) run every one. They need pytest and pytest-asyncio in
auto mode (the suites' tests are ``async def`` without markers).

* :class:`LeaseStoreContract`: one holder, epochs that fence, expiry, halts;
* :class:`CheckpointStoreContract`: fenced commits, no regressions, halts,
  resets and resumes;
* :class:`DeadLetterStoreContract`: letters commit, update and go with the work;
* :class:`WakeupFeedContract`: notifies and appends reach a listening worker;
* :class:`WorkerStorageContract`: a read model's writes, the checkpoint and
  the dead letters commit as one (the projection storage);
* :class:`CommandSchedulerContract`: scheduled commands run once, on time,
  fenced by their lease, through the service and the worker (fixture
  ``scheduler_kit``, a :class:`SchedulerKit`).
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.contracts.checkpoint_store_contract import CheckpointStoreContract
from cqrs_ddd_advanced_core.contracts.command_scheduler_contract import (
    CommandSchedulerContract,
    SchedulerKit,
)
from cqrs_ddd_advanced_core.contracts.dead_letter_store_contract import DeadLetterStoreContract
from cqrs_ddd_advanced_core.contracts.lease_store_contract import LeaseStoreContract
from cqrs_ddd_advanced_core.contracts.wakeup_feed_contract import WakeupFeedContract
from cqrs_ddd_advanced_core.contracts.worker_storage_contract import (
    ContractReadModel,
    WorkerStorageContract,
)

__all__ = [
    "CheckpointStoreContract",
    "CommandSchedulerContract",
    "ContractReadModel",
    "DeadLetterStoreContract",
    "LeaseStoreContract",
    "SchedulerKit",
    "WakeupFeedContract",
    "WorkerStorageContract",
]
