"""In-memory implementations of the advanced package's ports: products for fast tests."""

from __future__ import annotations

from cqrs_ddd_advanced_core.adapters.memory.event_store import InMemoryEventStore
from cqrs_ddd_advanced_core.adapters.memory.inbox import InMemoryInbox
from cqrs_ddd_advanced_core.adapters.memory.projections import InMemoryReadModelStore
from cqrs_ddd_advanced_core.adapters.memory.sagas import (
    InMemoryBranchBarrier,
    InMemorySagaRepository,
)
from cqrs_ddd_advanced_core.adapters.memory.scheduling import InMemoryCommandScheduler
from cqrs_ddd_advanced_core.adapters.memory.undo import InMemoryUndoLog
from cqrs_ddd_advanced_core.adapters.memory.workers import (
    InMemoryCheckpointStore,
    InMemoryDeadLetterStore,
    InMemoryLeaseStore,
    InMemoryProjectionTransaction,
    InMemoryWakeupFeed,
    InMemoryWorkerState,
    InMemoryWorkerStorage,
)
from cqrs_ddd_advanced_core.snapshots.memory import InMemorySnapshotRepository

__all__ = [
    "InMemoryBranchBarrier",
    "InMemoryCheckpointStore",
    "InMemoryCommandScheduler",
    "InMemoryDeadLetterStore",
    "InMemoryEventStore",
    "InMemoryInbox",
    "InMemoryLeaseStore",
    "InMemoryProjectionTransaction",
    "InMemoryReadModelStore",
    "InMemorySagaRepository",
    "InMemorySnapshotRepository",
    "InMemoryUndoLog",
    "InMemoryWakeupFeed",
    "InMemoryWorkerState",
    "InMemoryWorkerStorage",
]
