"""Typed errors of the advanced package, all under the core's root error.

The tree::

    CqrsDddError (cqrs_ddd_core.exceptions)
    ├── EventHandlerError                       an aggregate's event handlers are wrong
    │   ├── MissingEventHandlerError            an aggregate has no handler for an event it applies
    │   ├── InvalidEventHandlerError            a handler's declaration is malformed
    │   └── StrictValidationViolationError      strict validation found handlers missing
    ├── EventSourcedAggregateRequiredError      an operation needs an event-sourced aggregate
    └── EventSourcingConfigurationError         event sourcing is configured inconsistently
"""

from __future__ import annotations

from collections.abc import Sequence

from cqrs_ddd_core.exceptions import CqrsDddError


class EventHandlerError(CqrsDddError):
    """Base of every error about an aggregate's event handlers."""


class MissingEventHandlerError(EventHandlerError):
    """An aggregate was asked to apply an event it has no handler for."""

    def __init__(self, aggregate_type: str, event_type: str) -> None:
        self.aggregate_type = aggregate_type
        self.event_type = event_type
        super().__init__(f"{aggregate_type} has no event handler for {event_type}")


class InvalidEventHandlerError(EventHandlerError):
    """An event handler is declared wrongly (bad signature, unknown event type, duplicate)."""

    def __init__(self, aggregate_type: str, handler: str, reason: str) -> None:
        self.aggregate_type = aggregate_type
        self.handler = handler
        self.reason = reason
        super().__init__(f"invalid event handler {aggregate_type}.{handler}: {reason}")


class StrictValidationViolationError(EventHandlerError):
    """Strict validation found event types an aggregate records but cannot apply."""

    def __init__(self, aggregate_type: str, missing_event_types: Sequence[str]) -> None:
        self.aggregate_type = aggregate_type
        self.missing_event_types = tuple(missing_event_types)
        super().__init__(
            f"{aggregate_type} lacks event handlers for: {', '.join(self.missing_event_types)}"
        )


class EventSourcedAggregateRequiredError(CqrsDddError):
    """An operation that rebuilds state from events was given a non-event-sourced type."""

    def __init__(self, aggregate_type: str, operation: str) -> None:
        self.aggregate_type = aggregate_type
        self.operation = operation
        super().__init__(
            f"{operation} needs an event-sourced aggregate, but {aggregate_type} is not "
            "(it is marked @non_event_sourced or registered as non-event-sourced)"
        )


class EventSourcingConfigurationError(CqrsDddError):
    """Event sourcing is configured inconsistently; the message says what and where."""
