"""The event store port: ordered, versioned streams of events and one global log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from cqrs_ddd_core.domain.events import DomainEvent


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as an event store holds it: envelope columns and a JSON payload.

    ``position`` is the event's place in the store's global order (increasing, not
    necessarily contiguous); ``version`` its place in its stream (1, 2, 3 ...).
    ``payload`` holds the event's own fields in their JSON form at
    ``schema_version``; readers deserialise it through an event type registry,
    upcasting first where the class has moved on.
    """

    position: int
    stream_id: str
    version: int
    event_type: str
    schema_version: int
    event_id: UUID
    occurred_at: datetime
    payload: dict[str, Any]
    aggregate_type: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class EventStore(Protocol):
    """Appends events to streams with optimistic concurrency and reads them back.

    Invariants every adapter keeps:

    * ``append`` is atomic: all of the batch is stored, or none of it.
    * ``expected_version`` is the stream's version before the batch (0 for a new
      stream); a different stored version raises ``ConcurrencyError`` and writes
      nothing.
    * Appending an event whose ``event_id`` the stream already holds is a no-op,
      so a retried append after an ambiguous failure stores each event once.
    * ``read_all`` returns committed events in the store's global order and never
      skips an event that commits later at a lower position.
    """

    async def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int,
    ) -> list[StoredEvent]:
        """Append ``events`` to the stream and return them as stored."""
        ...

    async def load_stream(self, stream_id: str, *, from_version: int = 1) -> list[StoredEvent]:
        """Return the stream's events from ``from_version`` on, in version order."""
        ...

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Return up to ``limit`` events after ``after_position`` in global order."""
        ...

    async def current_position(self) -> int:
        """Return the position of the last committed event (0 for an empty store)."""
        ...


async def append_for_command(
    store: EventStore,
    stream_id: str,
    events: Sequence[DomainEvent],
    *,
    expected_version: int,
) -> None:
    """Append a command's events through ``store``, letting it wait for the commit if it can.

    A store with an ``append_at_commit`` method (``SQLAlchemyEventStore``)
    may hold the append back until the command's unit of work commits, and
    send it there with the commit in one round trip; a conflict
    (``ConcurrencyError``) then comes from the commit rather than from here.
    Other stores append at once. The events are checked here either way.
    """
    at_commit = getattr(store, "append_at_commit", None)
    if at_commit is None:
        await store.append(stream_id, events, expected_version=expected_version)
    else:
        await at_commit(stream_id, events, expected_version=expected_version)
