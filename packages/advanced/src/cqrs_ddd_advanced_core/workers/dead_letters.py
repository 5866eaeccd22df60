"""Dead letters: what a worker could not process, kept with its error until replayed.

A worker quarantines an item that keeps failing (an event a projection cannot
apply) and goes on; the dead letter records where the item is, what failed and
how often. It is written in the worker's fenced transaction, so it commits with
the checkpoint that passes the item, and it is deleted in the transaction that
finally applies it (a replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID


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
