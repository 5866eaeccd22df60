"""Snapshots under their ``event_sourcing`` path (home: ``cqrs_ddd_advanced_core.snapshots``)."""

from __future__ import annotations

from cqrs_ddd_advanced_core.snapshots import (
    EveryNEventsStrategy,
    Snapshot,
    SnapshotRepository,
    SnapshotStore,
    SnapshotStrategy,
)

__all__ = [
    "EveryNEventsStrategy",
    "Snapshot",
    "SnapshotRepository",
    "SnapshotStore",
    "SnapshotStrategy",
]
