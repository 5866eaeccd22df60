"""Snapshots: aggregate state cached at a version, so loads replay only later events."""

from __future__ import annotations

from cqrs_ddd_advanced_core.snapshots.memory import InMemorySnapshotRepository
from cqrs_ddd_advanced_core.snapshots.repository import (
    ENTRY_POINT_GROUP,
    SnapshotAndEventsReader,
    SnapshotRepository,
    repository_for_session,
)
from cqrs_ddd_advanced_core.snapshots.snapshot import Snapshot
from cqrs_ddd_advanced_core.snapshots.store import SnapshotStore
from cqrs_ddd_advanced_core.snapshots.strategy import EveryNEventsStrategy, SnapshotStrategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "EveryNEventsStrategy",
    "InMemorySnapshotRepository",
    "Snapshot",
    "SnapshotAndEventsReader",
    "SnapshotRepository",
    "SnapshotStore",
    "SnapshotStrategy",
    "repository_for_session",
]
