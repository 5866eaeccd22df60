"""Dead letters: what a worker could not process, kept with its error until replayed.

A worker quarantines an item that keeps failing (an event a projection cannot
apply) and goes on; the dead letter records where the item is, what failed and
how often. It is written in the worker's fenced transaction, so it commits with
the checkpoint that passes the item, and it is deleted in the transaction that
finally applies it (a replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a worker could not process, with the last error and the attempts made.

    ``projection`` names the job (a projection, for the projection worker).
    """

    projection: str
    position: int
    stream_id: str
    version: int
    event_type: str
    event_id: UUID
    error_class: str
    error_message: str
    attempts: int
    first_seen_at: datetime
    last_seen_at: datetime

    def failed_again(self, stored: StoredEvent, error: BaseException) -> DeadLetter:
        """Return this letter after one more failed attempt at ``stored`` (a replay's)."""
        return dead_letter_of(
            self.projection,
            stored,
            error,
            attempts=self.attempts + 1,
            first_seen=self.first_seen_at,
        )


def dead_letter_of(
    job: str,
    stored: StoredEvent,
    error: BaseException,
    *,
    attempts: int,
    first_seen: datetime | None = None,
) -> DeadLetter:
    """Return the dead letter of job ``job`` for ``stored``, failed with ``error``.

    ``error_class`` is the error's qualified name (module and class), its
    message is cut at 2,000 characters; ``first_seen`` (default now) is when
    the event first became a dead letter.
    """
    now = datetime.now(UTC)
    return DeadLetter(
        projection=job,
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


async def event_of(event_store: EventStore, letter: DeadLetter) -> StoredEvent | None:
    """Return the stored event ``letter`` holds the place of, or None when it is gone."""
    found = await event_store.read_all(after_position=letter.position - 1, limit=1)
    return found[0] if found and found[0].position == letter.position else None


class DeadLetterStore(Protocol):
    """Keeps the dead letters of named jobs."""

    async def quarantine(self, transaction: Any, letter: DeadLetter) -> None:
        """Record ``letter`` in ``transaction``, or update the one held for its position.

        ``transaction`` is a :class:`~cqrs_ddd_advanced_core.workers.WorkTransaction`
        of the same storage: the letter commits with it.
        """
        ...

    async def resolve(self, transaction: Any, name: str, position: int) -> None:
        """Delete, in ``transaction``, the letter job ``name`` holds for ``position``."""
        ...

    async def discard(self, transaction: Any, name: str, *, after: int = 0) -> None:
        """Delete, in ``transaction``, the job's letters at positions above ``after``."""
        ...

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        """Return the job's dead letters in position order."""
        ...

    async def count(self, name: str) -> int:
        """Return how many dead letters the job holds."""
        ...
