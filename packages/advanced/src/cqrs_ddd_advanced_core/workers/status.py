"""``WorkerStatus``: one shape for every worker's progress, readable by any process.

A status is read from the stores (checkpoint, lease, dead letters) and the
event log, so a process that runs no worker (an operator's tool) reads the same
figures as the worker itself; only ``state`` is richer in the worker's own
process, which knows whether its loop is running, standing by or stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from cqrs_ddd_advanced_core.workers.loop import WorkerState
from cqrs_ddd_advanced_core.workers.storage import WorkerStorage
from cqrs_ddd_core.ports.event_store import EventStore

_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """How far a worker's job is: checkpoint, head, lag, lease and dead letters.

    ``lag_events`` counts the events after the checkpoint; ``lag_seconds`` is
    the age of the oldest of them. ``kind`` says what the job is
    (``"projection"``); ``lease_expires_at`` is in the lease store's clock.
    """

    name: str
    state: WorkerState
    checkpoint: int
    head_position: int
    lag_events: int
    lag_seconds: float
    owner: str | None
    epoch: int
    dead_letters: int
    last_error: str | None
    kind: str = "projection"
    lease_expires_at: float | None = None


@runtime_checkable
class EventCounter(Protocol):
    """An event store that counts the events after a position in one query."""

    async def count_after(self, position: int) -> int:
        """Return how many committed events lie after ``position``."""
        ...


async def read_status(
    storage: WorkerStorage,
    event_store: EventStore,
    name: str,
    *,
    kind: str = "projection",
    state: WorkerState | None = None,
) -> WorkerStatus:
    """Return the status of job ``name`` from its stores and the event log.

    ``state`` is the caller's view of the job's loop; without one it is told
    from the stores: ``halted``, ``running`` while some worker holds the
    lease, ``idle`` otherwise.
    """
    record = await storage.checkpoints.record(name)
    head = await event_store.current_position()
    lag_events = await count_after(event_store, record.position)
    lag_seconds = 0.0
    if lag_events:
        oldest = await event_store.read_all(after_position=record.position, limit=1)
        if oldest:
            waited = datetime.now(UTC) - oldest[0].occurred_at
            lag_seconds = max(waited.total_seconds(), 0.0)
    if record.halted:
        state = "halted"
    elif state is None:
        state = "running" if record.owner is not None else "idle"
    return WorkerStatus(
        name=name,
        state=state,
        checkpoint=record.position,
        head_position=head,
        lag_events=lag_events,
        lag_seconds=lag_seconds,
        owner=record.owner,
        epoch=record.epoch,
        dead_letters=await storage.letters.count(name),
        last_error=record.last_error,
        kind=kind,
        lease_expires_at=record.lease_expires_at,
    )


async def count_after(event_store: EventStore, position: int) -> int:
    """Return how many committed events lie after ``position`` (in one query where it can)."""
    if isinstance(event_store, EventCounter):
        return await event_store.count_after(position)
    count = 0
    while True:
        found = await event_store.read_all(after_position=position, limit=_PAGE)
        if not found:
            return count
        count += len(found)
        position = found[-1].position
