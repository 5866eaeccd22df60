"""In-memory projection state and read models, transactional like their SQL versions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from cqrs_ddd_advanced_core.domain.exceptions import CheckpointRegressionError, LeaseLostError
from cqrs_ddd_advanced_core.projections.query import QueryOptions
from cqrs_ddd_advanced_core.projections.storage import (
    ChangeSignal,
    DeadLetter,
    Lease,
    ProjectionRecord,
    SignalWakeup,
)
from cqrs_ddd_core.domain.specification import Specification
from cqrs_ddd_core.ports.event_store import EventStore


class InMemoryProjectionTransaction:
    """The ``connection`` handlers get from the in-memory storage: an undo log.

    Read-model stores record how to undo each write; a rollback (of the whole
    batch, or back to a savepoint) runs those undos newest first.
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Remember how to undo a write just made."""
        self._undo.append(undo)

    def mark(self) -> int:
        """Return a savepoint: the length of the undo log."""
        return len(self._undo)

    def rollback_to(self, mark: int = 0) -> None:
        """Undo every write made after ``mark``, newest first."""
        while len(self._undo) > mark:
            self._undo.pop()()


@dataclass(slots=True)
class _Row:
    position: int = 0
    owner: str | None = None
    epoch: int = 0
    expires_at: float | None = None
    halted: bool = False
    last_error: str | None = None


class _Batch:
    def __init__(
        self, transaction: InMemoryProjectionTransaction, projection: str, checkpoint: int
    ) -> None:
        self.transaction = transaction
        self.projection = projection
        self.checkpoint = checkpoint
        self.position: int | None = None
        self.letters: dict[int, DeadLetter | None] = {}
        self.halted: str | None = None

    @property
    def connection(self) -> InMemoryProjectionTransaction:
        return self.transaction

    @property
    def broken(self) -> bool:
        return False

    @property
    def held_writes_failed(self) -> bool:
        return False  # in-memory read models write at once: nothing is held back

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        mark = self.transaction.mark()
        try:
            yield
        except BaseException:
            self.transaction.rollback_to(mark)
            raise

    async def flush(self) -> None:
        # in-memory read models write at once: nothing is ever held back
        return None

    def advance(self, position: int) -> None:
        if position < self.checkpoint:
            raise CheckpointRegressionError(
                self.projection, checkpoint=self.checkpoint, requested=position
            )
        self.checkpoint = self.position = position

    async def quarantine(self, letter: DeadLetter) -> None:
        self.letters[letter.position] = letter

    async def resolve(self, position: int) -> None:
        self.letters[position] = None

    def halt(self, reason: str) -> None:
        self.halted = reason


class InMemoryProjectionStorage:
    """Checkpoints, leases and dead letters of projections, in memory.

    ``InMemoryEventStore.projection_storage()`` returns the one beside a store.
    Batches of one projection run one at a time; a batch's dead letters and
    checkpoint apply when it commits, and its read-model writes (through
    :class:`InMemoryReadModelStore`) are undone when it rolls back.
    """

    def __init__(self, event_store: EventStore, signal: ChangeSignal | None = None) -> None:
        self.event_store = event_store
        self.signal = signal or ChangeSignal()
        self._rows: dict[str, _Row] = {}
        self._letters: dict[str, dict[int, DeadLetter]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, projection: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease when it is free, expired or already ``owner``'s; else None."""
        row = self._row(projection)
        now = time.monotonic()
        free = row.owner is None or row.owner == owner or (row.expires_at or 0) < now
        if row.halted or not free:
            return None
        row.owner, row.epoch, row.expires_at = owner, row.epoch + 1, now + ttl
        return Lease(projection, owner, row.epoch, row.position)

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend ``lease``; False when it was lost."""
        row = self._row(lease.projection)
        if not _holds(row, lease):
            return False
        row.expires_at = time.monotonic() + ttl
        return True

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up (no-op when it was lost)."""
        row = self._row(lease.projection)
        if _holds(row, lease):
            row.owner, row.expires_at = None, None

    @asynccontextmanager
    async def batch(self, lease: Lease, ttl: float) -> AsyncIterator[_Batch]:
        """Open a fenced batch; see the ``ProjectionStorage`` port."""
        async with self._lock(lease.projection):
            row = self._row(lease.projection)
            if not _holds(row, lease):
                raise LeaseLostError(lease.projection, lease.owner, lease.epoch)
            batch = _Batch(InMemoryProjectionTransaction(), lease.projection, row.position)
            try:
                yield batch
            except BaseException:
                batch.transaction.rollback_to()
                raise
            if not _holds(row, lease):
                batch.transaction.rollback_to()
                raise LeaseLostError(lease.projection, lease.owner, lease.epoch)
            letters = self._letters.setdefault(lease.projection, {})
            for position, letter in batch.letters.items():
                if letter is None:
                    letters.pop(position, None)
                else:
                    letters[position] = letter
            if batch.position is not None:
                row.position = batch.position
            if batch.halted is not None:
                row.halted, row.last_error = True, batch.halted
            row.expires_at = time.monotonic() + ttl

    async def record(self, projection: str) -> ProjectionRecord:
        """Return the projection's state."""
        row = self._row(projection)
        return ProjectionRecord(
            name=projection,
            position=row.position,
            owner=row.owner,
            epoch=row.epoch,
            lease_expires_at=row.expires_at,
            halted=row.halted,
            last_error=row.last_error,
        )

    async def reset(self, projection: str, reset: Callable[[Any], Awaitable[None]]) -> None:
        """Empty the read model and start the projection again from position 0."""
        async with self._lock(projection):
            transaction = InMemoryProjectionTransaction()
            try:
                await reset(transaction)
            except BaseException:
                transaction.rollback_to()
                raise
            row = self._row(projection)
            row.position, row.epoch, row.owner, row.expires_at = 0, row.epoch + 1, None, None
            row.halted, row.last_error = False, None
            self._letters.pop(projection, None)

    async def resume(self, projection: str) -> None:
        """Clear the halted flag and the dead letters after the checkpoint."""
        row = self._row(projection)
        row.halted, row.last_error = False, None
        letters = self._letters.get(projection, {})
        for position in [p for p in letters if p > row.position]:
            del letters[position]

    async def dead_letters(self, projection: str) -> list[DeadLetter]:
        """Return the projection's dead letters in position order."""
        letters = self._letters.get(projection, {})
        return [letters[position] for position in sorted(letters)]

    async def events_after(self, position: int) -> int:
        """Return how many committed events lie after ``position``."""
        count = 0
        while True:
            found = await self.event_store.read_all(after_position=position, limit=10_000)
            if not found:
                return count
            count += len(found)
            position = found[-1].position

    @asynccontextmanager
    async def wakeups(self) -> AsyncIterator[SignalWakeup]:
        """Wake-ups from the event store's in-process signal."""
        yield SignalWakeup(self.signal)

    def _row(self, projection: str) -> _Row:
        return self._rows.setdefault(projection, _Row())

    def _lock(self, projection: str) -> asyncio.Lock:
        return self._locks.setdefault(projection, asyncio.Lock())


def _holds(row: _Row, lease: Lease) -> bool:
    return row.owner == lease.owner and row.epoch == lease.epoch


class InMemoryReadModelStore:
    """A read model kept in memory: rows as dictionaries, keyed by ``key`` field.

    Writes take the batch's ``connection`` (an :class:`InMemoryProjectionTransaction`)
    so that they roll back with it; pass ``None`` to write outside a projection.
    Queries run :class:`QueryOptions` in memory, with the same results as the SQL store.
    """

    def __init__(self, key: str = "id") -> None:
        self.key = key
        self._rows: dict[Any, dict[str, Any]] = {}

    async def get(self, connection: Any, key: Any) -> dict[str, Any] | None:
        """Return a copy of the row with ``key``, or None."""
        row = self._rows.get(key)
        return None if row is None else dict(row)

    async def upsert(self, connection: Any, row: Mapping[str, Any]) -> None:
        """Insert ``row``, or replace the row with its key."""
        if self.key not in row:
            raise KeyError(f"the row has no {self.key!r} (the read model's key)")
        key = row[self.key]
        self._remember(connection, key)
        self._rows[key] = dict(row)

    async def update(self, connection: Any, key: Any, changes: Mapping[str, Any]) -> bool:
        """Change fields of the row with ``key``; False when there is none."""
        if key not in self._rows:
            return False
        self._remember(connection, key)
        self._rows[key] = {**self._rows[key], **changes}
        return True

    async def delete(self, connection: Any, key: Any) -> bool:
        """Delete the row with ``key``; False when there was none."""
        if key not in self._rows:
            return False
        self._remember(connection, key)
        del self._rows[key]
        return True

    async def clear(self, connection: Any) -> None:
        """Delete every row."""
        before = dict(self._rows)
        if isinstance(connection, InMemoryProjectionTransaction):
            connection.on_rollback(lambda: self._restore(before))
        self._rows.clear()

    async def query(self, options: QueryOptions) -> list[dict[str, Any]]:
        """Return copies of the rows ``options`` select, ordered and paged."""
        return [dict(row) for row in options.apply(self._rows.values())]

    async def count(self, specification: Specification[Any] | None = None) -> int:
        """Return how many rows meet ``specification`` (all rows without one)."""
        if specification is None:
            return len(self._rows)
        return len(specification.filter(list(self._rows.values())))

    def rows(self) -> list[dict[str, Any]]:
        """Return copies of every row, in key order where keys compare."""
        try:
            keys = sorted(self._rows)
        except TypeError:
            keys = list(self._rows)
        return [dict(self._rows[key]) for key in keys]

    def _remember(self, connection: Any, key: Any) -> None:
        if not isinstance(connection, InMemoryProjectionTransaction):
            return
        previous = self._rows.get(key)

        def undo() -> None:
            if previous is None:
                self._rows.pop(key, None)
            else:
                self._rows[key] = previous

        connection.on_rollback(undo)

    def _restore(self, rows: dict[Any, dict[str, Any]]) -> None:
        self._rows = rows
