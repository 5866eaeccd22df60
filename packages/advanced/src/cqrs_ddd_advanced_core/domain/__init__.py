"""Domain utilities for event-sourced aggregates, and the package's exceptions."""

from __future__ import annotations

from cqrs_ddd_advanced_core.domain.aggregate_mixin import EventSourcedAggregateMixin
from cqrs_ddd_advanced_core.domain.conflict_events import ConflictResolved, apply_resolved_state
from cqrs_ddd_advanced_core.domain.event_handlers import aggregate_event_handler
from cqrs_ddd_advanced_core.domain.event_validation import EventValidator
from cqrs_ddd_advanced_core.domain.exceptions import (
    EventHandlerError,
    EventSourcedAggregateRequiredError,
    EventSourcingConfigurationError,
    InvalidEventHandlerError,
    MissingEventHandlerError,
    StrictValidationViolationError,
)

__all__ = [
    "ConflictResolved",
    "EventHandlerError",
    "EventSourcedAggregateMixin",
    "EventSourcedAggregateRequiredError",
    "EventSourcingConfigurationError",
    "EventValidator",
    "InvalidEventHandlerError",
    "MissingEventHandlerError",
    "StrictValidationViolationError",
    "aggregate_event_handler",
    "apply_resolved_state",
]
