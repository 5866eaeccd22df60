"""Typed errors of the advanced package, all under the core's root error.

The tree::

    CqrsDddError (cqrs_ddd_core.exceptions)
    ├── EventHandlerError                       an aggregate's event handlers are wrong
    │   ├── MissingEventHandlerError            an aggregate has no handler for an event it applies
    │   ├── InvalidEventHandlerError            a handler's declaration is malformed
    │   └── StrictValidationViolationError      strict validation found handlers missing
    ├── EventSourcedAggregateRequiredError      an operation needs an event-sourced aggregate
    ├── EventSourcingConfigurationError         event sourcing is configured inconsistently
    │   └── UpcasterRegistrationError           a duplicate upcaster, or a gap in a chain
    ├── UpcastingError                          an upcaster failed on a stored event
    ├── WorkerError                             a background worker cannot go on as it is
    │   ├── LeaseLostError                      another worker now holds the job's lease
    │   ├── CheckpointRegressionError           a transaction tried to move a checkpoint back
    │   ├── WorkHaltedError                     the job stopped at an item it cannot process
    │   └── ProjectionError                     a projection cannot go on as configured
    │       ├── ProjectorRegistrationError      a projector is declared or registered wrongly
    │       ├── ProjectionHaltedError           the projection stopped on a failing event
    │       │                                   (also a WorkHaltedError)
    │       └── ProjectionRebuildError          a rebuild stopped at its first failing event
    │                                           (also a WorkHaltedError)
    ├── SchedulingError                         a command cannot be scheduled, cancelled or run
    │   ├── NaiveDatetimeError                  a time without a time zone (also ValueError)
    │   ├── ScheduleNotFoundError               no schedule (or recurring schedule) with that id
    │   ├── ScheduleNotCancellableError         the schedule already ran, runs, or was cancelled
    │   ├── ScheduleNotRetryableError           a re-run asked of a schedule that did not fail
    │   ├── ScheduleLeaseLostError              a run's lease passed to another worker: fenced out
    │   ├── ScheduleConfigurationError          the scheduler is built or called inconsistently
    │   └── ScheduledCommandFailedError         a scheduled command failed for good (dead letter)
    └── ConflictResolutionError                 a conflict cannot be resolved as configured
        ├── InvalidMergeRuleError               a field rule names neither a side nor a strategy
        ├── UnresolvableConflictError           the sides disagree and the strategy will not choose
        └── ConflictHandlerError                a conflict handler cannot load, merge or save

Retry and conflict behaviours re-raise the original error, never a wrapper:
``cqrs_ddd_advanced_core.cqrs.attempts_of(error)`` lists the attempts made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


class UpcasterRegistrationError(EventSourcingConfigurationError):
    """An upcaster cannot join the registry: a duplicate, or a gap it would leave in a chain."""

    def __init__(self, event_type: str, source_version: int, reason: str) -> None:
        self.event_type = event_type
        self.source_version = source_version
        self.reason = reason
        super().__init__(
            f"cannot register the upcaster of {event_type!r} from version {source_version}: "
            f"{reason}"
        )


class UpcastingError(CqrsDddError):
    """An upcaster failed on a stored event; names the event, its stream and versions.

    It failed by raising, or by returning something other than a mapping.
    ``upcaster`` is the failing upcaster's class name, when known.
    """

    def __init__(
        self,
        event_type: str,
        *,
        schema_version: int,
        stream_id: str | None = None,
        version: int | None = None,
        reason: str = "",
        upcaster: str | None = None,
    ) -> None:
        self.event_type = event_type
        self.schema_version = schema_version
        self.stream_id = stream_id
        self.version = version
        self.upcaster = upcaster
        where = f" in stream {stream_id!r} at version {version}" if stream_id is not None else ""
        by = f" with {upcaster}" if upcaster is not None else ""
        super().__init__(
            f"upcasting {event_type!r} from schema version {schema_version}{where}{by} "
            f"failed: {reason}"
        )


class ConflictResolutionError(CqrsDddError):
    """A conflict cannot be resolved as configured; the message says why.

    Raised by merge strategies for sides they cannot merge, and by
    conflict-resolving handlers. Retry and conflict behaviours never retry it.
    """


class InvalidMergeRuleError(ConflictResolutionError):
    """A ``FieldMergeStrategy`` rule is neither a side's name nor a merge strategy."""

    def __init__(self, field: str, rule: object) -> None:
        self.field = field
        self.rule = rule
        super().__init__(
            f"invalid merge rule for field {field!r}: {rule!r} "
            "(expected 'existing', 'incoming', 'refuse' or an object with a merge method)"
        )


class UnresolvableConflictError(ConflictResolutionError):
    """The two sides disagree on a field and the strategy is not allowed to choose.

    ``field_path`` is dotted from the document's root (``"customer.email"``);
    ``existing_value`` and ``incoming_value`` are what each side holds there
    (None when a side lacks it).
    """

    def __init__(
        self, field_path: str, existing_value: Any, incoming_value: Any, *, reason: str
    ) -> None:
        self.field_path = field_path
        self.existing_value = existing_value
        self.incoming_value = incoming_value
        self.reason = reason
        super().__init__(
            f"unresolvable conflict at {field_path!r}: {reason} "
            f"(existing: {existing_value!r}, incoming: {incoming_value!r})"
        )


class ConflictHandlerError(ConflictResolutionError):
    """A conflict-resolving handler cannot load, merge or save the aggregate in conflict.

    ``handler`` names the handler class and ``stream_id`` the conflicting
    stream; the message says what is missing or wrong (no ``repo`` to load and
    save with, or a resolved aggregate of another type or id).
    """

    def __init__(self, handler: str, stream_id: str, reason: str) -> None:
        self.handler = handler
        self.stream_id = stream_id
        self.reason = reason
        super().__init__(f"{handler} cannot resolve the conflict on stream {stream_id!r}: {reason}")


class WorkerError(CqrsDddError):
    """A background worker (its loop, lease or stores) cannot go on as it is."""


class WorkHaltedError(WorkerError):
    """A job stopped at an item it cannot process: its worker halts until resumed."""


class ProjectionError(WorkerError):
    """A projection cannot go on as configured."""


class ProjectorRegistrationError(ProjectionError):
    """A projector declares its handlers wrongly, or two projectors share a name."""

    def __init__(self, projector: str, reason: str) -> None:
        self.projector = projector
        super().__init__(f"projector {projector!r}: {reason}")


class LeaseLostError(WorkerError):
    """Another worker took the job over (or it was reset): nothing was written.

    ``projection`` names the job (a projection, for the projection worker).
    """

    def __init__(self, projection: str, owner: str, epoch: int) -> None:
        self.projection = projection
        self.owner = owner
        self.epoch = epoch
        super().__init__(
            f"projection {projection!r}: worker {owner!r} no longer holds lease epoch {epoch}"
        )


class CheckpointRegressionError(WorkerError):
    """A transaction tried to set a job's checkpoint below where it already is.

    A checkpoint only moves forward: going back would apply events a second
    time. Raised by ``WorkTransaction.advance``, before anything is written.
    """

    def __init__(self, projection: str, *, checkpoint: int, requested: int) -> None:
        self.projection = projection
        self.checkpoint = checkpoint
        self.requested = requested
        super().__init__(
            f"projection {projection!r}: the checkpoint cannot move back from position "
            f"{checkpoint} to {requested}"
        )


class _EventFailureError(ProjectionError):
    summary = "failed"

    def __init__(
        self,
        projection: str,
        *,
        position: int,
        stream_id: str,
        version: int,
        event_type: str,
        reason: str,
    ) -> None:
        self.projection = projection
        self.position = position
        self.stream_id = stream_id
        self.version = version
        self.event_type = event_type
        super().__init__(
            f"projection {projection!r} {self.summary} at event {event_type!r} "
            f"(position {position}, stream {stream_id!r}, version {version}): {reason}"
        )


class ProjectionHaltedError(_EventFailureError, WorkHaltedError):
    """A projection configured to stop on error met an event it cannot apply."""

    summary = "halted"


class ProjectionRebuildError(_EventFailureError, WorkHaltedError):
    """A rebuild stopped at the first event it could not apply (nothing after it applied)."""

    summary = "rebuild failed"


class SchedulingError(CqrsDddError):
    """A command cannot be scheduled, cancelled or run as asked."""


class NaiveDatetimeError(SchedulingError, ValueError):
    """A time without a time zone: the scheduler cannot tell which instant it means.

    ``field`` names the argument (``execute_at``, ``start_at``).
    """

    def __init__(self, field: str, value: object) -> None:
        self.field = field
        self.value = value
        super().__init__(
            f"{field}={value!r} has no time zone: pass an aware datetime "
            "(for example datetime.now(timezone.utc) + timedelta(hours=1))"
        )


class ScheduleNotFoundError(SchedulingError):
    """No schedule has this id (or no recurring schedule this name)."""

    def __init__(self, schedule: object) -> None:
        self.schedule = schedule
        super().__init__(f"no schedule {schedule!s}")


class ScheduleNotCancellableError(SchedulingError):
    """The schedule can no longer be cancelled: it ran, is running, failed or was cancelled."""

    def __init__(self, schedule_id: object, status: str) -> None:
        self.schedule_id = schedule_id
        self.status = status
        super().__init__(f"schedule {schedule_id!s} cannot be cancelled: it is {status}")


class ScheduleNotRetryableError(SchedulingError):
    """Only a failed schedule (a dead letter) can be run again; this one is ``status``."""

    def __init__(self, schedule_id: object, status: str) -> None:
        self.schedule_id = schedule_id
        self.status = status
        super().__init__(
            f"schedule {schedule_id!s} cannot be run again: it is {status}, not failed"
        )


class ScheduleNotRunnableError(SchedulingError):
    """Only a pending or failed schedule can be run now; this one is ``status``."""

    def __init__(self, schedule_id: object, status: str) -> None:
        self.schedule_id = schedule_id
        self.status = status
        super().__init__(
            f"schedule {schedule_id!s} cannot be run now: it is {status}"
            " (only a pending or failed one can)"
        )


class ScheduleLeaseLostError(SchedulingError):
    """A worker's lease on a scheduled run was taken over: its completion was refused.

    The command's transaction rolls back, so its effect is not committed
    twice; the worker that holds the run now (fencing token ``lease_token``
    was this worker's) commits it.
    """

    def __init__(self, schedule_id: object, lease_token: int) -> None:
        self.schedule_id = schedule_id
        self.lease_token = lease_token
        super().__init__(
            f"schedule {schedule_id!s}: lease {lease_token} was lost to another worker; "
            "this run commits nothing"
        )


class ScheduleConfigurationError(SchedulingError):
    """The scheduler is built or called inconsistently (``reason`` says how)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ScheduledCommandFailedError(SchedulingError):
    """A scheduled command failed for good: it is a dead letter until someone re-runs it.

    ``error_class`` and ``error_message`` describe the last failure; ``attempts``
    counts the runs made. This is what the schedule's state records, as an error
    (:meth:`ScheduleState.failure` returns it).
    """

    def __init__(
        self,
        schedule_id: object,
        command_type: str,
        error_class: str,
        error_message: str,
        attempts: int,
    ) -> None:
        self.schedule_id = schedule_id
        self.command_type = command_type
        self.error_class = error_class
        self.error_message = error_message
        self.attempts = attempts
        super().__init__(
            f"scheduled {command_type!r} ({schedule_id!s}) failed after {attempts} "
            f"attempt(s): {error_class}: {error_message}"
        )
