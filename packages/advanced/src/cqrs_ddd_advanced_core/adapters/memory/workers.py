"""In-memory worker stores: leases, checkpoints, dead letters and wake-ups, for fast tests.

They behave as the SQL stores do (both run the suites of
:mod:`cqrs_ddd_advanced_core.contracts`): a transaction's checkpoint, halt and
dead letters apply when it commits, and only while its lease still holds and
the job is not halted; its read-model writes (through
:class:`InMemoryReadModelStore`, on the transaction's ``connection``) and dead
letters are undone when it, or the savepoint they were made in, rolls back.
Transactions of one job run one at a time. Build them together with
:class:`InMemoryWorkerStorage`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from cqrs_ddd_advanced_core.domain.exceptions import CheckpointRegressionError, LeaseLostError
from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter
from cqrs_ddd_advanced_core.workers.lease import Lease
from cqrs_ddd_advanced_core.workers.progress import WorkerRecord, WorkTransaction
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage
from cqrs_ddd_core.wakeup import Wakeup


class InMemoryProjectionTransaction:
    """The ``connection`` work gets from the in-memory stores: an undo log.

    Read-model stores record how to undo each write; a rollback (of the whole
    transaction, or back to a savepoint) runs those undos newest first.
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
    kind: str | None = None


@dataclass(slots=True)
class InMemoryWorkerState:
    """What the in-memory worker stores share: one row and one set of dead letters per job."""

    rows: dict[str, _Row] = field(default_factory=dict)
    letters: dict[str, dict[int, DeadLetter]] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def row(self, name: str) -> _Row:
        """Return the row of job ``name`` (a fresh one at first)."""
        return self.rows.setdefault(name, _Row())

    def lock(self, name: str) -> asyncio.Lock:
        """Return the lock that runs the transactions of job ``name`` one at a time."""
        return self.locks.setdefault(name, asyncio.Lock())


def _holds(row: _Row, lease: Lease) -> bool:
    return row.owner == lease.owner and row.epoch == lease.epoch


def _fences(row: _Row, lease: Lease) -> bool:
    """Whether work under ``lease`` may commit: still the holder's, and the job not halted."""
    return _holds(row, lease) and not row.halted


class _Transaction:
    def __init__(self, name: str, checkpoint: int) -> None:
        self.undo_log = InMemoryProjectionTransaction()
        self._name = name
        self._checkpoint = checkpoint
        self.position: int | None = None
        self.halted: str | None = None
        self.committing: list[Callable[[], None]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def connection(self) -> InMemoryProjectionTransaction:
        return self.undo_log

    @property
    def checkpoint(self) -> int:
        return self._checkpoint

    @property
    def broken(self) -> bool:
        return False

    @property
    def held_writes_failed(self) -> bool:
        return False  # in-memory read models write at once: nothing is held back

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        mark, changes = self.undo_log.mark(), len(self.committing)
        try:
            yield
        except BaseException:
            self.undo_log.rollback_to(mark)
            del self.committing[changes:]  # dead letters written in the block, too
            raise

    async def flush(self) -> None:
        return None  # nothing is held back

    def advance(self, position: int) -> None:
        if position < self._checkpoint:
            raise CheckpointRegressionError(
                self._name, checkpoint=self._checkpoint, requested=position
            )
        self._checkpoint = self.position = position

    def halt(self, reason: str) -> None:
        self.halted = reason

    def on_commit(self, change: Callable[[], None]) -> None:
        """Apply ``change`` if, and when, the transaction commits."""
        self.committing.append(change)


class InMemoryLeaseStore:
    """Leases in memory; the time is the process's monotonic clock."""

    def __init__(self, state: InMemoryWorkerState) -> None:
        self.state = state

    async def acquire(
        self, name: str, owner: str, ttl: float, *, kind: str | None = None
    ) -> Lease | None:
        """Take the lease when it is free, expired or already ``owner``'s; else None."""
        row = self.state.row(name)
        now = time.monotonic()
        free = row.owner is None or row.owner == owner or (row.expires_at or 0) < now
        if row.halted or not free:
            return None
        row.owner, row.epoch, row.expires_at = owner, row.epoch + 1, now + ttl
        row.kind = kind or row.kind
        return Lease(name, owner, row.epoch, row.position)

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend ``lease``; False when it was lost."""
        row = self.state.row(lease.name)
        if not _holds(row, lease):
            return False
        row.expires_at = time.monotonic() + ttl
        return True

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up (no-op when it was lost)."""
        row = self.state.row(lease.name)
        if _holds(row, lease):
            row.owner, row.expires_at = None, None


class InMemoryCheckpointStore:
    """Checkpoints in memory, changed in transactions fenced by the lease."""

    def __init__(self, state: InMemoryWorkerState) -> None:
        self.state = state

    @asynccontextmanager
    async def transaction(self, lease: Lease, ttl: float) -> AsyncIterator[_Transaction]:
        """Open a fenced transaction; see the ``CheckpointStore`` port."""
        async with self.state.lock(lease.name):
            row = self.state.row(lease.name)
            if not _fences(row, lease):
                raise LeaseLostError(lease.name, lease.owner, lease.epoch)
            transaction = _Transaction(lease.name, row.position)
            try:
                yield transaction
            except BaseException:
                transaction.undo_log.rollback_to()
                raise
            if not _fences(row, lease):
                transaction.undo_log.rollback_to()
                raise LeaseLostError(lease.name, lease.owner, lease.epoch)
            _commit(transaction, row)
            row.expires_at = time.monotonic() + ttl

    async def record(self, name: str) -> WorkerRecord:
        """Return the job's state."""
        row = self.state.row(name)
        return WorkerRecord(
            name=name,
            position=row.position,
            owner=row.owner,
            epoch=row.epoch,
            lease_expires_at=row.expires_at,
            halted=row.halted,
            last_error=row.last_error,
            kind=row.kind,
        )

    async def reset(self, name: str, reset: Callable[[WorkTransaction], Awaitable[None]]) -> None:
        """Start the job over: the callback in a transaction, checkpoint 0, a new epoch."""
        async with self.state.lock(name):
            row = self.state.row(name)
            transaction = _Transaction(name, row.position)
            try:
                await reset(transaction)
            except BaseException:
                transaction.undo_log.rollback_to()
                raise
            _commit(transaction, row)
            row.position, row.epoch, row.owner, row.expires_at = 0, row.epoch + 1, None, None
            row.halted, row.last_error = False, None

    async def resume(self, name: str, resume: Callable[[WorkTransaction], Awaitable[None]]) -> None:
        """Clear the job's halt and run the callback in a transaction."""
        async with self.state.lock(name):
            row = self.state.row(name)
            transaction = _Transaction(name, row.position)
            try:
                await resume(transaction)
            except BaseException:
                transaction.undo_log.rollback_to()
                raise
            _commit(transaction, row)
            row.halted, row.last_error = False, None


def _commit(transaction: _Transaction, row: _Row) -> None:
    for change in transaction.committing:
        change()
    if transaction.position is not None:
        row.position = transaction.position
    if transaction.halted is not None:
        row.halted, row.last_error = True, transaction.halted


class InMemoryDeadLetterStore:
    """Dead letters in memory, written with the transaction that passes them."""

    def __init__(self, state: InMemoryWorkerState) -> None:
        self.state = state

    async def quarantine(self, transaction: _Transaction, letter: DeadLetter) -> None:
        """Record ``letter`` when ``transaction`` commits.

        A letter already held for its position keeps when it was first seen
        (and the event it names); its attempts, error and last time are updated.
        """
        letters = self.state.letters.setdefault(letter.projection, {})

        def keep() -> None:
            held = letters.get(letter.position)
            letters[letter.position] = letter if held is None else _updated(held, letter)

        transaction.on_commit(keep)

    async def resolve(self, transaction: _Transaction, name: str, position: int) -> None:
        """Delete the letter at ``position`` when ``transaction`` commits."""
        letters = self.state.letters.setdefault(name, {})

        def drop() -> None:
            letters.pop(position, None)

        transaction.on_commit(drop)

    async def discard(self, transaction: _Transaction, name: str, *, after: int = 0) -> None:
        """Delete the job's letters above ``after`` when ``transaction`` commits."""
        letters = self.state.letters.setdefault(name, {})

        def drop() -> None:
            for position in [p for p in letters if p > after]:
                del letters[position]

        transaction.on_commit(drop)

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        """Return the job's dead letters in position order."""
        letters = self.state.letters.get(name, {})
        return [letters[position] for position in sorted(letters)]

    async def count(self, name: str) -> int:
        """Return how many dead letters the job holds."""
        return len(self.state.letters.get(name, {}))


def _updated(held: DeadLetter, again: DeadLetter) -> DeadLetter:
    return dataclasses.replace(
        held,
        error_class=again.error_class,
        error_message=again.error_message,
        attempts=again.attempts,
        last_seen_at=again.last_seen_at,
    )


class InMemoryWakeupFeed:
    """Wake-ups of one process only: the wake-up its stores notify, as it is."""

    def __init__(self, wakeup: Wakeup) -> None:
        self.wakeup = wakeup

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[Wakeup]:
        """Yield the wake-up (nothing outside the process feeds it)."""
        yield self.wakeup


class InMemoryWorkerStorage(WorkerStorage):
    """The four in-memory worker stores, sharing one state.

    ``wakeup`` is the one the event store notifies (``InMemoryEventStore.wakeup``).
    """

    def __init__(self, wakeup: Wakeup | None = None) -> None:
        self.state = InMemoryWorkerState()
        super().__init__(
            leases=InMemoryLeaseStore(self.state),
            checkpoints=InMemoryCheckpointStore(self.state),
            letters=InMemoryDeadLetterStore(self.state),
            wakeups=InMemoryWakeupFeed(wakeup or Wakeup()),
        )
