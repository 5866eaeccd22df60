"""``@non_event_sourced``: mark an aggregate whose events are not kept in the event store."""

from __future__ import annotations

from typing import TypeVar

TType = TypeVar("TType", bound=type)

_MARKER = "__cqrs_ddd_event_sourced__"


def non_event_sourced(aggregate_type: TType) -> TType:
    """Mark ``aggregate_type`` as state-stored: its events are not appended to the event store.

    The persistence orchestrator honours the mark without any registration; an
    explicit ``register_event_sourced_type`` for the same type wins over it. The
    aggregate's events still reach the outbox through its repository and the
    event dispatcher after commit.
    """
    setattr(aggregate_type, _MARKER, False)
    return aggregate_type


def is_marked_non_event_sourced(aggregate_type: type) -> bool:
    """Return whether ``aggregate_type`` or a base class carries ``@non_event_sourced``."""
    return getattr(aggregate_type, _MARKER, True) is False
