"""What the storage scenarios (R1-R4, R7, R16) share: events, seeds, readers, lock probes.

- `Appended`, `Incremented` and the `Counter` aggregate are the events and the
  aggregate the scenarios write; `REGISTRY` knows the events.
- `scenario_seed` picks the run's seed (``CQRS_DDD_RELIABILITY_SEED`` repeats one);
  every random choice of a scenario comes from a `random.Random` seeded with it,
  and every assertion message names it.
- `CatchUpReader` follows the global log by position, as a projection worker or the
  outbox relay would, and counts order violations.
- `SlowWriter` appends inside a unit of work and keeps the transaction open (and so
  the append lock) until the test commits or rolls it back.
- `eventually` is the generous liveness deadline; `lock_waiters` asks PostgreSQL
  how many sessions wait for an advisory lock (the event store's append lock).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import asyncpg
from harness.history import HistoryLog
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core import EventSourcedAggregateMixin, aggregate_event_handler
from cqrs_ddd_core import AggregateRoot, DomainEvent, EventTypeRegistry
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore, SQLAlchemyUnitOfWork

SEED_VARIABLE = "CQRS_DDD_RELIABILITY_SEED"
"""Set it to the seed a failed run printed to repeat that run's random choices."""

LIVENESS_SECONDS = 60.0
"""Generous deadline for anything that must eventually happen; never a latency bound."""

POLL_SECONDS = 0.01
"""How often a catch-up reader polls when it has caught up (10 ms, as in R1)."""

MAX_POLLS = 1_000_000
"""Upper bound on any polling loop's iterations (the time deadline comes first)."""


class Appended(DomainEvent):
    """The event the load scenarios append: who wrote it and its number for that writer."""

    writer: str
    number: int


class Incremented(DomainEvent):
    """The counter aggregate's only event."""

    by: int = 1


class Counter(EventSourcedAggregateMixin, AggregateRoot):
    """An event-sourced counter: its value must equal the number of stored increments."""

    value: int = 0

    @aggregate_event_handler
    def _incremented(self, event: Incremented) -> None:
        self.value += event.by


REGISTRY = EventTypeRegistry([Appended, Incremented])
"""The registry of the scenarios' events."""


def scenario_seed() -> int:
    """Return the seed of this run: ``CQRS_DDD_RELIABILITY_SEED`` if set, else a fresh one."""
    configured = os.environ.get(SEED_VARIABLE)
    if configured:
        return int(configured)
    return random.SystemRandom().randrange(2**32)


def failure_note(seed: int) -> str:
    """Return the text every assertion message ends with: how to repeat the run."""
    return f"(seed {seed}; repeat with {SEED_VARIABLE}={seed})"


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]],
    what: str,
    *,
    within: float = LIVENESS_SECONDS,
) -> None:
    """Poll ``predicate`` every 20 ms until it holds; raise `TimeoutError` after ``within`` s."""
    deadline = time.monotonic() + within
    for _ in range(MAX_POLLS):
        outcome = predicate()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{what} did not happen within {within:g} s")


@dataclass
class CatchUpReader:
    """Follows the store's global log after a checkpoint, as a projection worker would.

    Each poll reads ``read_all(after_position=checkpoint, limit=...)`` with a limit
    drawn from ``rng``, records every event it gets (in ``delivered`` and, if given,
    as ``deliver``/``ok`` in ``history``) and moves the checkpoint to the last
    position read. ``order_violations`` counts events whose position was not above
    the checkpoint (a repeat or a step back).
    """

    store: EventStore
    name: str
    rng: random.Random
    max_batch: int = 50
    history: HistoryLog | None = None
    checkpoint: int = 0
    polls: int = 0
    order_violations: int = 0
    delivered: list[StoredEvent] = field(default_factory=list)

    @property
    def delivered_keys(self) -> list[str]:
        """Return the ids of the delivered events, in delivery order."""
        return [str(event.event_id) for event in self.delivered]

    async def poll(self, limit: int | None = None) -> list[StoredEvent]:
        """Read once after the checkpoint; return what was read."""
        batch = await self.store.read_all(
            after_position=self.checkpoint, limit=limit or self.rng.randint(1, self.max_batch)
        )
        self.polls += 1
        for event in batch:
            if event.position <= self.checkpoint:
                self.order_violations += 1
            self.checkpoint = max(self.checkpoint, event.position)
            self.delivered.append(event)
            if self.history is not None:
                self.history.record("deliver", str(event.event_id), "ok", position=event.position)
        return batch

    async def follow(self, writers_done: asyncio.Event, *, within: float) -> None:
        """Poll until the writers are done and the checkpoint reached the store's position.

        Sleeps ``POLL_SECONDS`` whenever a poll comes back empty. Raises `TimeoutError`
        if it has not caught up ``within`` seconds from now.
        """
        deadline = time.monotonic() + within
        for _ in range(MAX_POLLS):
            if await self.poll():
                continue
            if writers_done.is_set() and self.checkpoint == await self.store.current_position():
                return
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        raise TimeoutError(
            f"reader {self.name} stuck at position {self.checkpoint} after {within:g} s"
        )


async def lock_waiters(observer: asyncpg.Connection) -> int:
    """Return how many sessions of the observer's database wait for an advisory lock."""
    waiting: int = await observer.fetchval(
        """
        SELECT count(*) FROM pg_locks
        WHERE locktype = 'advisory' AND NOT granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """
    )
    return waiting


def position_gaps(positions: list[int]) -> int:
    """Return how many positions between 1 and the highest one are missing."""
    return (max(positions) - len(set(positions))) if positions else 0


def keys(events: Sequence[DomainEvent | StoredEvent]) -> list[str]:
    """Return the events' ids as history keys (text)."""
    return [str(event.event_id) for event in events]


Ending = Literal["commit", "rollback"]


class SlowWriter:
    """Appends inside a unit of work, then holds the transaction open until told to end it.

    On PostgreSQL the open transaction holds the event store's append lock, on
    SQLite the write lock. `start` runs it as a task; ``appended`` is set once the
    append returned (the lock is held from then on); `commit` or `roll_back` ends it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int = 0,
    ) -> None:
        self.engine = engine
        self.stream_id = stream_id
        self.events = list(events)
        self.expected_version = expected_version
        self.appended = asyncio.Event()
        self.stored: list[StoredEvent] = []
        self.ended: Ending | None = None
        self._ending: asyncio.Queue[Ending] = asyncio.Queue(maxsize=1)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> SlowWriter:
        """Start appending in a task of its own; return self."""
        self._task = asyncio.create_task(self._run(), name=f"slow writer {self.stream_id}")
        return self

    async def wait_appended(self, within: float = LIVENESS_SECONDS) -> None:
        """Wait until the append returned (the transaction now holds the lock)."""
        await asyncio.wait_for(self._first(self.appended.wait()), within)

    async def commit(self, within: float = LIVENESS_SECONDS) -> None:
        """Commit the held transaction and wait until it is committed."""
        await self._end("commit", within)

    async def roll_back(self, within: float = LIVENESS_SECONDS) -> None:
        """Roll the held transaction back and wait until it is rolled back."""
        await self._end("rollback", within)

    async def cancel(self) -> None:
        """Stop the writer whatever it is doing (test cleanup); its transaction rolls back."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _end(self, ending: Ending, within: float) -> None:
        self._ending.put_nowait(ending)
        assert self._task is not None, "start the writer first"
        await asyncio.wait_for(asyncio.shield(self._task), within)

    async def _first(self, awaitable: Awaitable[object]) -> None:
        """Await ``awaitable``, but raise what the writer raised if it fails first."""
        assert self._task is not None, "start the writer first"
        waiter = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._task.done() and not waiter.done():
            self._task.result()  # raises the writer's error

    async def _run(self) -> None:
        store = SQLAlchemyEventStore(self.engine)
        async with SQLAlchemyUnitOfWork(self.engine) as uow:
            with command_scope(uow):
                self.stored = await store.append(
                    self.stream_id, self.events, expected_version=self.expected_version
                )
            self.appended.set()
            ending = await self._ending.get()
            if ending == "commit":
                await uow.commit()
            else:
                await uow.rollback()
            self.ended = ending
