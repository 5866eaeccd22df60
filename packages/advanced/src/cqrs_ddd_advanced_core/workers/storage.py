"""``WorkerStorage``: the stores a background worker keeps its state in, bundled.

Each store has one job (see :mod:`cqrs_ddd_advanced_core.workers`); a worker
needs all four, from the same database so that its transactions span them. An
adapter package builds the bundle (``InMemoryWorkerStorage``,
``SQLAlchemyWorkerStorage``), and an event store that knows where workers of its
events keep their state offers it through :class:`WorkerStorageProvider`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

from cqrs_ddd_advanced_core.workers.dead_letters import DeadLetter, DeadLetterStore
from cqrs_ddd_advanced_core.workers.lease import Lease, LeaseStore
from cqrs_ddd_advanced_core.workers.progress import CheckpointStore, WorkerRecord, WorkTransaction
from cqrs_ddd_advanced_core.workers.wakeup import WakeupFeed


class WorkerStorage:
    """The four stores of a worker's state, on one database.

    Adapters subclass it to build their four stores from one connection
    source (``InMemoryWorkerStorage``, ``SQLAlchemyWorkerStorage``). Besides
    the stores, it offers the operations a caller (a tool, a test) most often
    wants in one place, each delegating to its store.
    """

    def __init__(
        self,
        *,
        leases: LeaseStore,
        checkpoints: CheckpointStore,
        letters: DeadLetterStore,
        wakeups: WakeupFeed,
    ) -> None:
        self.leases = leases
        self.checkpoints = checkpoints
        self.letters = letters
        self.wakeups = wakeups

    async def acquire(
        self, name: str, owner: str, ttl: float, *, kind: str | None = None
    ) -> Lease | None:
        """Take the lease of ``name`` (see :meth:`LeaseStore.acquire`)."""
        return await self.leases.acquire(name, owner, ttl, kind=kind)

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend ``lease`` (see :meth:`LeaseStore.renew`)."""
        return await self.leases.renew(lease, ttl)

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up (see :meth:`LeaseStore.release`)."""
        await self.leases.release(lease)

    def batch(self, lease: Lease, ttl: float) -> AbstractAsyncContextManager[WorkTransaction]:
        """Open a transaction fenced by ``lease`` (see :meth:`CheckpointStore.transaction`).

        Workers open their transactions through here, so that a storage
        wrapping this one (to trace or instrument batches) sees them all.
        """
        return self.checkpoints.transaction(lease, ttl)

    async def keep_letter(self, lease: Lease, ttl: float, letter: DeadLetter) -> None:
        """Record ``letter`` (or update the one at its place), fenced by ``lease``."""
        async with self.batch(lease, ttl) as transaction:
            await self.letters.quarantine(transaction, letter)

    async def drop_letter(self, lease: Lease, ttl: float, position: int) -> None:
        """Delete the dead letter of ``lease``'s job at ``position``, fenced by ``lease``."""
        async with self.batch(lease, ttl) as transaction:
            await self.letters.resolve(transaction, lease.name, position)

    async def record(self, name: str) -> WorkerRecord:
        """Return the job's stored state (see :meth:`CheckpointStore.record`)."""
        return await self.checkpoints.record(name)

    async def reset(self, name: str, reset: Callable[[Any], Awaitable[None]]) -> None:
        """Start ``name`` over: the callback on the connection, checkpoint 0, no dead letters."""

        async def start_over(transaction: WorkTransaction) -> None:
            await reset(transaction.connection)
            await self.letters.discard(transaction, name)

        await self.checkpoints.reset(name, start_over)

    async def resume(self, name: str) -> None:
        """Clear the halt of ``name`` and drop its dead letters past the checkpoint."""

        async def go_on(transaction: WorkTransaction) -> None:
            await self.letters.discard(transaction, name, after=transaction.checkpoint)

        await self.checkpoints.resume(name, go_on)

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        """Return the job's dead letters in position order."""
        return await self.letters.dead_letters(name)


@runtime_checkable
class WorkerStorageProvider(Protocol):
    """An event store that knows where background workers of its events keep their state."""

    def worker_storage(self) -> WorkerStorage:
        """Return the worker storage beside this store's events (one per store)."""
        ...
