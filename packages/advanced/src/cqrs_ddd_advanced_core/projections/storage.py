"""The port a projection worker keeps its state through: checkpoints, leases, dead letters.

One row per projection holds its checkpoint (the position of the last event
applied), its lease (owner, epoch, expiry) and whether it is halted. A worker
applies a batch inside :meth:`ProjectionStorage.batch`: one transaction that
first checks the lease (the fence: owner and epoch must still be the worker's)
and at the end writes the new checkpoint, so the read-model changes made
through ``batch.connection`` commit with it or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to apply a projection: held by ``owner`` for ``epoch``.

    Every takeover increments the epoch, so a worker that lost its lease
    (stopped, cut off) can no longer commit: its writes carry the old epoch.
    ``position`` is the checkpoint when the lease was taken.
    """

    projection: str
    owner: str
    epoch: int
    position: int


@dataclass(frozen=True, slots=True)
class ProjectionRecord:
    """A projection's stored state."""

    name: str
    position: int
    owner: str | None
    epoch: int
    lease_expires_at: float | None
    halted: bool
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a projection could not apply, with the last error and its attempts."""

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


class ProjectionBatch(Protocol):
    """One open, fenced transaction of a projection."""

    @property
    def connection(self) -> Any:
        """The transaction handle that handlers write through."""
        ...

    @property
    def broken(self) -> bool:
        """True when the transaction's connection was lost (not a handler's fault)."""
        ...

    @property
    def held_writes_failed(self) -> bool:
        """True once sending held-back read-model writes failed in this transaction.

        A held-back write fails when it is sent: at :meth:`flush`, or inside
        whichever handler runs the next statement on the connection, which is
        then not the handler that made the write.
        """
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """Return a block whose writes are undone (and only those) when it raises."""
        ...

    async def flush(self) -> None:
        """Send the read-model writes the transaction holds back (see the SQL storage).

        Called by the worker after the handlers of a batch ran, so that a
        failing write is seen before the checkpoint; a savepoint flushes at
        its end by itself.
        """
        ...

    def advance(self, position: int) -> None:
        """Set the checkpoint that commits with the batch.

        Raises ``CheckpointRegressionError`` for a position below the
        checkpoint (as stored when the batch began, or as advanced since);
        the same position again changes nothing.
        """
        ...

    async def quarantine(self, letter: DeadLetter) -> None:
        """Record ``letter``, or update the one already held for its position."""
        ...

    async def resolve(self, position: int) -> None:
        """Delete the dead letter held for ``position`` (it has been applied)."""
        ...

    def halt(self, reason: str) -> None:
        """Mark the projection halted when the batch commits."""
        ...


class Wakeup(Protocol):
    """Tells a waiting worker that new events may have been committed."""

    async def wait(self, seconds: float) -> None:
        """Return when new events may exist, or after ``seconds``."""
        ...


@runtime_checkable
class ProjectionStorage(Protocol):
    """Checkpoints, leases and dead letters of projections."""

    async def acquire(self, projection: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease when it is free, expired or already ``owner``'s; else None."""
        ...

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend ``lease``; False when it was lost."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up (no-op when it was lost)."""
        ...

    def batch(self, lease: Lease, ttl: float) -> AbstractAsyncContextManager[ProjectionBatch]:
        """Open a fenced transaction; raise ``LeaseLostError`` when the lease is gone.

        The transaction commits when the block ends normally and the fence still
        holds; it rolls back when the block raises.
        """
        ...

    async def record(self, projection: str) -> ProjectionRecord:
        """Return the projection's stored state (a fresh one when it has none)."""
        ...

    async def reset(self, projection: str, reset: Callable[[Any], Awaitable[None]]) -> None:
        """Run ``reset(connection)``, set the checkpoint to 0 and drop dead letters, atomically.

        The epoch moves on, so a worker applying the projection loses its lease
        and starts again from position 0.
        """
        ...

    async def resume(self, projection: str) -> None:
        """Clear the halted flag and the dead letters after the checkpoint (to be tried again)."""
        ...

    async def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's dead letters in position order."""
        ...

    async def events_after(self, position: int) -> int:
        """Return how many committed events lie after ``position``."""
        ...

    def wakeups(self) -> AbstractAsyncContextManager[Wakeup]:
        """Listen for new events for as long as the block runs."""
        ...


@runtime_checkable
class ProjectionStorageProvider(Protocol):
    """An event store that knows where projections of its events keep their state."""

    def projection_storage(self) -> ProjectionStorage:
        """Return the projection storage that lives beside this event store."""
        ...


class ChangeSignal:
    """An in-process wake-up: :meth:`notify` releases every current waiter.

    Event stores call :meth:`notify` after events commit; workers ``await
    signal.wait(timeout)``. A notification between two waits is not lost: a
    waiter returns at once when the signal moved on since it last looked.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0

    @property
    def generation(self) -> int:
        """How many notifications were made so far."""
        return self._generation

    def notify(self) -> None:
        """Wake every waiter."""
        self._generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, seconds: float, *, seen: int | None = None) -> int:
        """Wait for a notification after ``seen`` (default: now), for at most ``seconds``.

        Returns the generation seen on return, to pass as ``seen`` next time.
        """
        if seen is not None and seen != self._generation:
            return self._generation
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # an event belongs to one loop; tests run several
            self._loop, self._event = loop, asyncio.Event()
        event = self._event
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
        return self._generation


class SignalWakeup:
    """A :class:`Wakeup` fed by a :class:`ChangeSignal`: no notification made since is lost."""

    def __init__(self, signal: ChangeSignal) -> None:
        self._signal = signal
        self._seen = signal.generation

    async def wait(self, seconds: float) -> None:
        """Return when the signal was notified since the last wait, or after ``seconds``."""
        self._seen = await self._signal.wait(seconds, seen=self._seen)
