"""How a projection names what failed: dead letters, and the errors that halt it."""

from __future__ import annotations

from typing import TypeVar

from cqrs_ddd_advanced_core.domain.exceptions import ProjectionHaltedError, ProjectionRebuildError
from cqrs_ddd_core.ports.event_store import StoredEvent


def describe(stored: StoredEvent) -> str:
    """Return how logs name a stored event: type, position, stream and version."""
    return (
        f"{stored.event_type!r} at position {stored.position} "
        f"(stream {stored.stream_id!r}, version {stored.version})"
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
