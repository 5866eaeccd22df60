"""Merge strategies, at the module path the spec names (``conflict/resolution.py``).

Each strategy has its own home module in this package; this module re-exports
the very same objects, with the protocol and the errors they raise.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.conflict.deep_merge import DeepMergeStrategy
from cqrs_ddd_advanced_core.conflict.field_merge import FieldMergeStrategy, FieldRule
from cqrs_ddd_advanced_core.conflict.last_wins import LastWinsStrategy
from cqrs_ddd_advanced_core.conflict.merge_strategy import MergeStrategy
from cqrs_ddd_advanced_core.conflict.timestamp import TimestampStrategy
from cqrs_ddd_advanced_core.conflict.union import UnionStrategy
from cqrs_ddd_advanced_core.domain.exceptions import (
    ConflictResolutionError,
    InvalidMergeRuleError,
    UnresolvableConflictError,
)

__all__ = [
    "ConflictResolutionError",
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
