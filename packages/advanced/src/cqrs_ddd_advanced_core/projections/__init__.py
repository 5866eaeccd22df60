"""Projections: read models kept from the event log by a worker, and queried with specifications.

* :class:`Projector` and :func:`projects` declare handlers; :class:`ProjectorRegistry`
  routes events to them.
* :class:`ProjectionWorker` applies them from their checkpoints, in batches,
  one worker per projection at a time (leases), with retries and dead letters:
  each projection is a job on the shared worker machinery
  (:mod:`cqrs_ddd_advanced_core.workers`).
* :class:`SpecificationBuilder` and :class:`QueryOptions` query read models.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.domain.exceptions import (
    CheckpointRegressionError,
    LeaseLostError,
    ProjectionError,
    ProjectionHaltedError,
    ProjectionRebuildError,
    ProjectorRegistrationError,
)
from cqrs_ddd_advanced_core.projections.builder import SpecificationBuilder
from cqrs_ddd_advanced_core.projections.projector import (
    ProjectionContext,
    Projector,
    projects,
)
from cqrs_ddd_advanced_core.projections.query import Ordering, QueryOptions
from cqrs_ddd_advanced_core.projections.registry import ProjectorRegistry, RegisteredProjector
from cqrs_ddd_advanced_core.projections.worker import (
    ErrorPolicy,
    ProjectionState,
    ProjectionStatus,
    ProjectionWorker,
    ReplayResult,
)
from cqrs_ddd_advanced_core.workers import DeadLetter, Lease

__all__ = [
    "CheckpointRegressionError",
    "DeadLetter",
    "ErrorPolicy",
    "Lease",
    "LeaseLostError",
    "Ordering",
    "ProjectionContext",
    "ProjectionError",
    "ProjectionHaltedError",
    "ProjectionRebuildError",
    "ProjectionState",
    "ProjectionStatus",
    "ProjectionWorker",
    "Projector",
    "ProjectorRegistrationError",
    "ProjectorRegistry",
    "QueryOptions",
    "RegisteredProjector",
    "ReplayResult",
    "SpecificationBuilder",
    "projects",
]
