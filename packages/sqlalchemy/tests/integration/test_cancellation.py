"""A caller cancelled at any await never leaves a transaction (or a lock) behind.

A task cancelled in the middle of a statement has its connection invalidated
by SQLAlchemy. On SQLite the closed connection used to linger, write lock and
all, until the garbage collector freed the cancelled statement's cursor, so
every other writer failed with "database is locked" meanwhile. These tests
cancel appends and whole commands at random points, with the garbage collector
off (so it cannot hide the leak), and check after each cancellation that
another writer gets the database at once.

On SQLite a unit of work runs its statements on the event loop's thread, so
an append or a command that gets the write lock at once has no await left to
be cancelled at: there, each round first has the lock held for a while,
alternately by another unit of work of this process (the append then waits
on the in-process writer lock) and by a connection of its own (the append
then waits in aiosqlite's thread), and the cancellation lands in that wait.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcedMediatorFactory,
    EventSourcedRepository,
    aggregate_event_handler,
)
from cqrs_ddd_core import AggregateRoot, Command, DomainEvent, EventTypeRegistry, HandlerRegistry
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
    create_engine,
)

pytest_plugins = ["sqlalchemy_fixtures"]

ROUNDS = 60
"""Cancellations per test: before the fix about one in ten left the SQLite file locked."""


class Ticked(DomainEvent):
    number: int


class Counter(EventSourcedAggregateMixin, AggregateRoot):
    ticks: int = 0

    @aggregate_event_handler
    def _ticked(self, event: Ticked) -> None:
        self.ticks += 1


class Tick(Command):
    counter_id: str
    number: int


@pytest.fixture
def no_garbage_collection() -> Iterator[None]:
    """Keep the collector from freeing a leaked cursor (and so hiding the leak)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def cancel_at_random(
    start: Callable[[], Awaitable[Any]], rng: random.Random, *, within: float
) -> bool:
    """Run ``start()`` and cancel it after a random delay; True when it was cancelled."""
    task = asyncio.ensure_future(start())
    await asyncio.sleep(rng.uniform(0, within))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return task.cancelled()


def contended_time(engine: AsyncEngine, within: float) -> float:
    """Return how long each round holds the write lock: on SQLite, long enough to wait in."""
    return max(within, 0.005) if engine.dialect.name == "sqlite" else 0.0


async def typical_duration(call: Callable[[int], Awaitable[Any]]) -> float:
    """Return the median time of five uncancelled calls.

    Cancelling at a random moment within it lands about half of the time,
    anywhere in the call, however fast this machine runs it.
    """
    durations = []
    for number in range(5):
        started = time.perf_counter()
        await call(number)
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


@asynccontextmanager
async def write_lock_held(
    engine: AsyncEngine, round_number: int, seconds: float
) -> AsyncIterator[None]:
    """On SQLite, hold the file's write lock for ``seconds`` while the block runs.

    Even rounds hold it in a unit of work of this process, odd rounds on a
    ``sqlite3`` connection of their own. On PostgreSQL nothing is held.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    if round_number % 2 == 0:

        async def hold() -> None:
            async with SQLAlchemyUnitOfWork(engine):
                await asyncio.sleep(seconds)

        holder = asyncio.ensure_future(hold())
        await asyncio.sleep(0)  # it takes the lock
        try:
            yield
        finally:
            await holder
        return
    other = sqlite3.connect(str(engine.url.database), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        release = asyncio.get_running_loop().call_later(seconds, other.rollback)
        try:
            yield
        finally:
            await asyncio.sleep(seconds)
            release.cancel()
            other.rollback()
    finally:
        other.close()


async def another_writer_gets_in(url: str, stream_id: str) -> None:
    """Append through an engine of its own, which waits at most 2 s for the lock."""
    engine = create_engine(url, lock_timeout_ms=2000, busy_timeout_ms=2000)
    try:
        await SQLAlchemyEventStore(engine).append(stream_id, [Ticked(number=0)], expected_version=0)
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("no_garbage_collection")
async def test_a_cancelled_append_leaves_no_lock_behind(
    engine: AsyncEngine, database_url: str
) -> None:
    # given
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    store = SQLAlchemyEventStore(engine)
    within = await typical_duration(
        lambda n: store.append(f"w-{n}", [Ticked(number=i) for i in range(5)], expected_version=0)
    )
    hold = contended_time(engine, within)
    cancelled = 0
    for round_number in range(ROUNDS):
        # when: an append is cancelled somewhere between its first and last await
        async with write_lock_held(engine, round_number, hold):
            cancelled += await cancel_at_random(
                lambda n=round_number: store.append(  # type: ignore[misc]
                    f"c-{n}", [Ticked(number=i) for i in range(5)], expected_version=0
                ),
                rng,
                within=within + hold,
            )
        # then: another writer is not kept waiting
        await another_writer_gets_in(database_url, f"other-{round_number}")
    assert cancelled >= ROUNDS // 4, f"too few cancellations landed (seed {seed})"


@pytest.mark.usefixtures("no_garbage_collection")
async def test_a_cancelled_command_leaves_no_lock_behind(
    engine: AsyncEngine, database_url: str
) -> None:
    # given: a mediator whose commands append through their unit of work
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    store = SQLAlchemyEventStore(engine)
    counters = EventSourcedRepository(
        EventSourcedLoader(Counter, store, EventTypeRegistry([Ticked]))
    )
    registry = HandlerRegistry()

    @registry.command_handler(Tick)
    async def tick(command: Tick) -> None:
        counter = Counter(id=command.counter_id)
        for number in range(command.number):
            counter.trigger_event(Ticked(number=number))
        await counters.save(counter)

    factory = EventSourcedMediatorFactory(
        event_store=store,
        uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
        handler_registry=registry,
    )
    factory.register_event_sourced_type(Counter)
    mediator = factory.create()
    within = await typical_duration(lambda n: mediator.send(Tick(counter_id=f"w-{n}", number=5)))
    hold = contended_time(engine, within)
    cancelled = 0
    for round_number in range(ROUNDS):
        # when: the command is cancelled at a random await
        async with write_lock_held(engine, round_number, hold):
            cancelled += await cancel_at_random(
                lambda n=round_number: mediator.send(Tick(counter_id=f"t-{n}", number=5)),  # type: ignore[misc]
                rng,
                within=within + hold,
            )
        # then
        await another_writer_gets_in(database_url, f"other-{round_number}")
    assert cancelled >= ROUNDS // 4, f"too few cancellations landed (seed {seed})"
