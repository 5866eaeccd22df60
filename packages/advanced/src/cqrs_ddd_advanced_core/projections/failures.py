"""How a projection names what failed: dead letters, and the errors that halt it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from cqrs_ddd_advanced_core.domain.exceptions import ProjectionHaltedError, ProjectionRebuildError
from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter
from cqrs_ddd_core.ports.event_store import StoredEvent


def describe(stored: StoredEvent) -> str:
    """Return how logs name a stored event: type, position, stream and version."""
    return (
        f"{stored.event_type!r} at position {stored.position} "
        f"(stream {stored.stream_id!r}, version {stored.version})"
    )


def dead_letter(
    projection: str,
    stored: StoredEvent,
    error: BaseException,
    *,
    attempts: int,
    first_seen: datetime | None,
) -> DeadLetter:
    """Return the dead letter of ``stored``, failed with ``error`` after ``attempts``."""
    now = datetime.now(UTC)
    return DeadLetter(
        projection=projection,
        position=stored.position,
        stream_id=stored.stream_id,
        version=stored.version,
        event_type=stored.event_type,
        event_id=stored.event_id,
        error_class=f"{type(error).__module__}.{type(error).__qualname__}",
        error_message=str(error)[:2000],
        attempts=attempts,
        first_seen_at=first_seen or now,
        last_seen_at=now,
    )


TEventError = TypeVar("TEventError", ProjectionHaltedError, ProjectionRebuildError)


def event_error(
    kind: type[TEventError], projection: str, stored: StoredEvent, error: BaseException
) -> TEventError:
    """Return a halt or rebuild error naming the event where the projection stopped."""
    return kind(
        projection,
        position=stored.position,
        stream_id=stored.stream_id,
        version=stored.version,
        event_type=stored.event_type,
        reason=f"{type(error).__name__}: {error}",
    )
