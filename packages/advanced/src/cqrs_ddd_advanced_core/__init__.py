"""cqrs-ddd advanced core: event sourcing, snapshots, upcasting, projections, conflict resolution.

Also the retrying and conflict-resolving command handlers. What is importable
from here is listed in ``__all__``, and each subpackage keeps its own. Sagas,
command scheduling and undo/redo are not written yet.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.conflict import (
    ConflictHandlerError,
    ConflictResolutionError,
    ConflictResolved,
    DeepMergeStrategy,
    FieldMergeStrategy,
    InvalidMergeRuleError,
    LastWinsStrategy,
    MergeStrategy,
    TimestampStrategy,
    UnionStrategy,
    UnresolvableConflictError,
)
from cqrs_ddd_advanced_core.cqrs import (
    AttemptRecord,
    BehaviorPipeline,
    ConflictBehavior,
    ConflictCommandHandler,
    ResilientCommandHandler,
    RetryBehavior,
    attempts_of,
)
from cqrs_ddd_advanced_core.decorators import non_event_sourced
from cqrs_ddd_advanced_core.domain import (
    EventHandlerError,
    EventSourcedAggregateMixin,
    EventSourcedAggregateRequiredError,
    EventSourcingConfigurationError,
    EventValidator,
    InvalidEventHandlerError,
    MissingEventHandlerError,
    StrictValidationViolationError,
    aggregate_event_handler,
)
from cqrs_ddd_advanced_core.event_sourcing import (
    EventSourcedLoader,
    EventSourcedMediator,
    EventSourcedMediatorFactory,
    EventSourcedPersistenceOrchestrator,
    EventSourcedRepository,
)
from cqrs_ddd_advanced_core.projections import (
    LeaseLostError,
    ProjectionContext,
    ProjectionError,
    ProjectionHaltedError,
    ProjectionRebuildError,
    ProjectionStatus,
    ProjectionWorker,
    Projector,
    ProjectorRegistrationError,
    ProjectorRegistry,
    QueryOptions,
    SpecificationBuilder,
    projects,
)

__all__ = [
    "AttemptRecord",
    "BehaviorPipeline",
    "ConflictBehavior",
    "ConflictCommandHandler",
    "ConflictHandlerError",
    "ConflictResolutionError",
    "ConflictResolved",
    "DeepMergeStrategy",
    "EventHandlerError",
    "EventSourcedAggregateMixin",
    "EventSourcedAggregateRequiredError",
    "EventSourcedLoader",
    "EventSourcedMediator",
    "EventSourcedMediatorFactory",
    "EventSourcedPersistenceOrchestrator",
    "EventSourcedRepository",
    "EventSourcingConfigurationError",
    "EventValidator",
    "FieldMergeStrategy",
    "InvalidEventHandlerError",
    "InvalidMergeRuleError",
    "LastWinsStrategy",
    "LeaseLostError",
    "MergeStrategy",
    "MissingEventHandlerError",
    "ProjectionContext",
    "ProjectionError",
    "ProjectionHaltedError",
    "ProjectionRebuildError",
    "ProjectionStatus",
    "ProjectionWorker",
    "Projector",
    "ProjectorRegistrationError",
    "ProjectorRegistry",
    "QueryOptions",
    "ResilientCommandHandler",
    "RetryBehavior",
    "SpecificationBuilder",
    "StrictValidationViolationError",
    "TimestampStrategy",
    "UnionStrategy",
    "UnresolvableConflictError",
    "aggregate_event_handler",
    "attempts_of",
    "non_event_sourced",
    "projects",
]
