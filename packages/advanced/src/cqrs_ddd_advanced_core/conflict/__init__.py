"""Conflict resolution: merge strategies for concurrent edits of the same state.

``existing`` is the state as stored, ``incoming`` the concurrent change; every
strategy returns a new merged document and never touches its inputs:

- ``LastWinsStrategy``: the incoming side whole.
- ``FieldMergeStrategy``: per top-level field, a side or a nested strategy.
- ``DeepMergeStrategy``: nested dicts key by key, lists of entities by id.
- ``TimestampStrategy``: the side (or, per field, the change) with the newer timestamp.
- ``UnionStrategy``: lists and sets united without duplicates, order kept.

``MergeStrategy`` is the protocol a custom strategy fulfils. ``ConflictResolved``
(home: ``domain.conflict_events``) is the event a conflict-resolving handler
records with the merged state; ``ConflictHandlerError`` is raised when such a
handler cannot load, merge or save.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.conflict.resolution import (
    ConflictResolutionError,
    DeepMergeStrategy,
    FieldMergeStrategy,
    FieldRule,
    InvalidMergeRuleError,
    LastWinsStrategy,
    MergeStrategy,
    TimestampStrategy,
    UnionStrategy,
    UnresolvableConflictError,
)
from cqrs_ddd_advanced_core.domain.conflict_events import ConflictResolved
from cqrs_ddd_advanced_core.domain.exceptions import ConflictHandlerError

__all__ = [
    "ConflictHandlerError",
    "ConflictResolutionError",
    "ConflictResolved",
    "DeepMergeStrategy",
    "FieldMergeStrategy",
    "FieldRule",
    "InvalidMergeRuleError",
    "LastWinsStrategy",
    "MergeStrategy",
    "TimestampStrategy",
    "UnionStrategy",
    "UnresolvableConflictError",
]
