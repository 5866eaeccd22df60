"""Checkpoints: how far a job got, moved only inside a transaction fenced by its lease.

A worker does each piece of work in a :class:`WorkTransaction` that
:meth:`CheckpointStore.transaction` opens: it first checks the lease (the fence:
owner and epoch must still be the worker's), the work's own writes go through
``transaction.connection``, and the new checkpoint is stored when it commits.
The work and the checkpoint commit together or not at all, and a worker that
lost its lease writes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from cqrs_ddd_advanced_core.workers.lease import Lease


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A job's stored state: checkpoint, lease holder and halt, and its kind when recorded."""

    name: str
    position: int
    owner: str | None
    epoch: int
    lease_expires_at: float | None
    halted: bool
    last_error: str | None
    kind: str | None = None


class WorkTransaction(Protocol):
    """One open transaction of a job, fenced by its lease."""

    @property
    def name(self) -> str:
        """The job the transaction belongs to."""
        ...

    @property
    def connection(self) -> Any:
        """The transaction handle the work writes through (a SQLAlchemy connection, ...)."""
        ...

    @property
    def checkpoint(self) -> int:
        """The job's checkpoint: as stored when the transaction began, or as advanced since."""
        ...

    @property
    def broken(self) -> bool:
        """True when the transaction's connection was lost (not the work's fault)."""
        ...

    @property
    def held_writes_failed(self) -> bool:
        """True once sending writes the transaction held back failed.

        A held-back write (see the SQL read-model store) fails when it is sent:
        at :meth:`flush`, or inside whatever runs the next statement on the
        connection, which then is not the work that made the write.
        """
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """Return a block whose writes are undone (and only those) when it raises.

        Writes held back inside the block are sent at its end, so that their
        failure is the block's.
        """
        ...

    async def flush(self) -> None:
        """Send the writes the transaction holds back."""
        ...

    def advance(self, position: int) -> None:
        """Set the checkpoint that commits with the transaction.

        Raises ``CheckpointRegressionError`` for a position below the
        checkpoint (as stored when the transaction began, or as advanced
        since); the same position again changes nothing.
        """
        ...

    def halt(self, reason: str) -> None:
        """Mark the job halted when the transaction commits (its lease is then refused)."""
        ...


class CheckpointStore(Protocol):
    """Keeps each job's checkpoint and halt, changed in fenced transactions."""

    def transaction(self, lease: Lease, ttl: float) -> AbstractAsyncContextManager[WorkTransaction]:
        """Open a transaction fenced by ``lease``; raise ``LeaseLostError`` when it is gone.

        Opening it extends the lease by ``ttl``; the transaction commits when
        the block ends normally and the fence still holds, and rolls back when
        the block raises.
        """
        ...

    async def record(self, name: str) -> WorkerRecord:
        """Return the job's stored state (a fresh one when it has none)."""
        ...

    async def reset(self, name: str, reset: Callable[[WorkTransaction], Awaitable[None]]) -> None:
        """Start the job over, atomically: the callback in a transaction, then checkpoint 0.

        The epoch moves on and the holder is cleared, so a worker doing the
        job loses its lease, and the next holder starts again from position 0.
        """
        ...

    async def resume(self, name: str, resume: Callable[[WorkTransaction], Awaitable[None]]) -> None:
        """Clear the job's halt and run the callback in the same transaction."""
        ...
