"""Typed errors of the core package, all under one root.

The tree::

    CqrsDddError
    ├── HandlerError
    │   ├── HandlerNotFoundError          no handler for a command or query type
    │   └── HandlerAlreadyRegisteredError a second handler for the same type
    ├── ValidationError                   a message or value failed validation (names fields)
    ├── ConcurrencyError                  stale expected version on a stream or aggregate
    ├── DuplicateEventIdError             a batch repeats some, not all, stored event ids
    ├── AggregateNotFoundError            no aggregate with that id in a repository
    ├── UnitOfWorkError
    │   └── NoActiveUnitOfWorkError       ambient unit of work read outside a command
    ├── EventDispatchError                in-process event handlers raised after a commit
    ├── TransientError                    may pass when the same work is tried again later
    ├── MessageTypeError
    │   ├── UnknownMessageTypeError       a command type name the message registry does not know
    │   ├── MessageTypeConflictError      two classes registered under one message type name
    │   ├── MessageSerializationError     a command holds a value JSON cannot carry safely
    │   └── MessageDeserializationError   a stored command does not fit its class
    └── EventTypeError
        ├── UnknownEventTypeError         an event type name the registry does not know
        ├── EventTypeConflictError        two classes registered under one name and version
        ├── EventSchemaVersionError       stored schema version differs from the class's
        ├── EventSerializationError       an event holds a value JSON cannot carry safely
        └── EventDeserializationError     a stored payload does not fit its event class

Every error carries its context as attributes and names it in its message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CqrsDddError(Exception):
    """Root of every error raised by cqrs-ddd packages."""


class HandlerError(CqrsDddError):
    """A problem with the handlers registered for a message type."""


class HandlerNotFoundError(HandlerError):
    """No handler is registered for a command or query type."""

    def __init__(self, message_type: type) -> None:
        self.message_type = message_type
        super().__init__(f"no handler registered for {message_type.__qualname__}")


class HandlerAlreadyRegisteredError(HandlerError):
    """A handler is already registered for this command or query type."""

    def __init__(self, message_type: type) -> None:
        self.message_type = message_type
        super().__init__(f"a handler is already registered for {message_type.__qualname__}")


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One reason a field failed validation: where (dotted path) and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidationError(CqrsDddError):
    """A message or value failed validation; ``issues`` names each field and why."""

    def __init__(self, subject: str, issues: Sequence[FieldIssue]) -> None:
        self.subject = subject
        self.issues = tuple(issues)
        details = "; ".join(str(issue) for issue in self.issues)
        super().__init__(f"{subject} is invalid: {details}")

    @property
    def fields(self) -> tuple[str, ...]:
        """Return the names of the fields that failed, in order."""
        return tuple(issue.field for issue in self.issues)


class ConcurrencyError(CqrsDddError):
    """A write was made against a version that is no longer current.

    Raised when an append or save names an expected version that differs from the
    stored one; nothing of that write is stored.
    """

    def __init__(self, stream_id: str, *, expected_version: int, actual_version: int) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"concurrency conflict on stream {stream_id!r}: expected version "
            f"{expected_version}, actual version {actual_version}"
        )


class DuplicateEventIdError(CqrsDddError):
    """Some, but not all, events of an appended batch are already stored in the stream.

    Re-appending a whole batch that is already stored is a no-op (a safe retry);
    a batch that overlaps a stored one only in part is not a retry of it, and is
    refused with nothing written.
    """

    def __init__(self, stream_id: str, event_ids: Sequence[object]) -> None:
        self.stream_id = stream_id
        self.event_ids = tuple(event_ids)
        shown = ", ".join(str(event_id) for event_id in self.event_ids[:5])
        super().__init__(
            f"stream {stream_id!r} already holds {len(self.event_ids)} event(s) of this batch "
            f"but not all of them ({shown}); a retry must repeat the whole batch"
        )


class AggregateNotFoundError(CqrsDddError):
    """A repository holds no aggregate with the requested id."""

    def __init__(self, aggregate_type: str, aggregate_id: str) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        super().__init__(f"{aggregate_type} {aggregate_id!r} not found")


class UnitOfWorkError(CqrsDddError):
    """The unit of work was used in a way it does not allow."""


class NoActiveUnitOfWorkError(UnitOfWorkError):
    """The ambient unit of work was read outside of a command."""

    def __init__(self) -> None:
        super().__init__(
            "no unit of work is active: repositories and stores join the unit of work "
            "that Mediator.send opens for a command; use them inside a command handler "
            "or inside `async with command_scope(uow)`"
        )


class TransientError(CqrsDddError):
    """An error that may pass when the same work is tried again later.

    Workers that retry (the command scheduler) retry these, and
    ``ConcurrencyError``, with back-off; any other error fails at once.
    Adapters derive their "lock not granted in time" and "database
    unavailable" errors from it.
    """


class MessageTypeError(CqrsDddError):
    """A problem mapping between command classes and their stored form."""


class UnknownMessageTypeError(MessageTypeError):
    """The message registry knows no class under this name.

    ``message_type`` is the name; ``where`` says which stored message carried
    it, when it came from storage (a scheduled command's id).
    """

    def __init__(self, message_type: str, *, where: str | None = None) -> None:
        self.message_type = message_type
        self.where = where
        place = f" ({where})" if where else ""
        super().__init__(
            f"unknown message type {message_type!r}{place}: register its class in the "
            "message registry first"
        )


class MessageTypeConflictError(MessageTypeError):
    """Two different classes were registered under one message type name."""

    def __init__(self, message_type: str, existing: type, incoming: type) -> None:
        self.message_type = message_type
        self.existing = existing
        self.incoming = incoming
        super().__init__(
            f"message type {message_type!r} is already registered to "
            f"{existing.__qualname__}, cannot register {incoming.__qualname__}"
        )


class MessageSerializationError(MessageTypeError):
    """A message holds a value that cannot be stored as portable JSON; names each field."""

    def __init__(self, message_type: str, issues: Sequence[FieldIssue]) -> None:
        self.message_type = message_type
        self.issues = tuple(issues)
        details = "; ".join(str(issue) for issue in self.issues)
        super().__init__(f"message {message_type!r} cannot be serialised: {details}")


class MessageDeserializationError(MessageTypeError):
    """A stored message does not fit its class (missing, extra or malformed fields)."""

    def __init__(
        self, message_type: str, issues: Sequence[FieldIssue], *, where: str | None = None
    ) -> None:
        self.message_type = message_type
        self.issues = tuple(issues)
        self.where = where
        details = "; ".join(str(issue) for issue in self.issues)
        place = f" ({where})" if where else ""
        super().__init__(f"malformed {message_type!r} message{place}: {details}")


class EventTypeError(CqrsDddError):
    """A problem mapping between event classes and their stored form."""


class UnknownEventTypeError(EventTypeError):
    """The registry knows no event class under this name."""

    def __init__(
        self, event_type: str, *, stream_id: str | None = None, version: int | None = None
    ) -> None:
        self.event_type = event_type
        self.stream_id = stream_id
        self.version = version
        super().__init__(
            f"unknown event type {event_type!r}{_where(stream_id, version)}: "
            "register its class first"
        )


class EventTypeConflictError(EventTypeError):
    """Two different classes were registered under one event type name."""

    def __init__(self, event_type: str, existing: type, incoming: type) -> None:
        self.event_type = event_type
        self.existing = existing
        self.incoming = incoming
        super().__init__(
            f"event type {event_type!r} is already registered to "
            f"{existing.__qualname__}, cannot register {incoming.__qualname__}"
        )


class EventSchemaVersionError(EventTypeError):
    """A stored event's schema version differs from its class's and no upcaster bridged it."""

    def __init__(
        self,
        event_type: str,
        *,
        stored_version: int,
        class_version: int,
        stream_id: str | None = None,
        version: int | None = None,
    ) -> None:
        self.event_type = event_type
        self.stored_version = stored_version
        self.class_version = class_version
        self.stream_id = stream_id
        self.version = version
        super().__init__(
            f"event type {event_type!r}{_where(stream_id, version)} is stored at schema "
            f"version {stored_version} but its class is at version {class_version}"
        )


class EventSerializationError(EventTypeError):
    """An event holds a value that cannot be stored as portable JSON."""

    def __init__(self, event_type: str, field: str, reason: str) -> None:
        self.event_type = event_type
        self.field = field
        self.reason = reason
        super().__init__(f"event {event_type!r} cannot be serialised: field {field!r} {reason}")


class EventDeserializationError(EventTypeError):
    """A stored payload does not fit its event class (missing, extra or malformed fields)."""

    def __init__(
        self,
        event_type: str,
        issues: Sequence[FieldIssue],
        *,
        stream_id: str | None = None,
        version: int | None = None,
    ) -> None:
        self.event_type = event_type
        self.issues = tuple(issues)
        self.stream_id = stream_id
        self.version = version
        details = "; ".join(str(issue) for issue in self.issues)
        super().__init__(f"malformed {event_type!r} event{_where(stream_id, version)}: {details}")


def _where(stream_id: str | None, version: int | None) -> str:
    """Describe where a stored event sits, for error messages (empty when unknown)."""
    if stream_id is None:
        return ""
    return f" in stream {stream_id!r}" + (f" at version {version}" if version is not None else "")


class EventDispatchError(CqrsDddError):
    """One or more in-process event handlers raised while events were dispatched.

    ``failures`` holds ``(event, handler name, exception)`` triples. Every other
    handler still received its events.
    """

    def __init__(self, failures: Sequence[tuple[object, str, BaseException]]) -> None:
        self.failures = tuple(failures)
        details = "; ".join(
            f"{handler} on {type(event).__name__}: {type(error).__name__}: {error}"
            for event, handler, error in self.failures
        )
        super().__init__(f"{len(self.failures)} event handler(s) failed: {details}")
