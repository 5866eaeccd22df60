"""A command's append waits for its commit on PostgreSQL, and is still all or nothing.

``EventSourcedRepository.save`` appends through ``append_at_commit``. On
PostgreSQL the unit of work holds that append back while nothing needs its
transaction; a command whose only write it is commits it as one statement
(no ``BEGIN``, no ``COMMIT``). Whatever else the command does, the append
must still commit with the rest of it or not at all, a command must read its
own held-back events, and a conflict must still be a ``ConcurrencyError``
that leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcedRepository,
    aggregate_event_handler,
)
from cqrs_ddd_core import (
    AggregateRoot,
    ConcurrencyError,
    DomainEvent,
    DuplicateEventIdError,
    EventTypeRegistry,
    command_scope,
)
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore, SQLAlchemyUnitOfWork
from cqrs_ddd_persistence_sqlalchemy.schema import events

pytest_plugins = ["sqlalchemy_fixtures"]

on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class Ticked(DomainEvent):
    number: int


class Counter(EventSourcedAggregateMixin, AggregateRoot):
    ticks: int = 0

    @aggregate_event_handler
    def _ticked(self, event: Ticked) -> None:
        self.ticks += 1


def repository(store: SQLAlchemyEventStore) -> EventSourcedRepository[Counter]:
    return EventSourcedRepository(EventSourcedLoader(Counter, store, EventTypeRegistry([Ticked])))


def ticked(counter: Counter, times: int = 1) -> Counter:
    for number in range(times):
        counter.trigger_event(Ticked(number=number))
    return counter


async def count_events(engine: AsyncEngine, stream_id: str) -> int:
    async with engine.connect() as connection:
        query = select(func.count()).select_from(events).where(events.c.stream_id == stream_id)
        return int(await connection.scalar(query) or 0)


def log_statements(uow: SQLAlchemyUnitOfWork) -> list[str]:
    """Record the first word of each statement the unit of work's connection sends from now on.

    asyncpg's own look-ups of types it meets for the first time are left out.
    """
    statements: list[str] = []
    driver = uow.driver_connection
    assert driver is not None

    def record(query: Any) -> None:
        text = query.query
        if "typeinfo_tree" not in text and "'jit'" not in text:
            statements.append(text.split()[0])

    driver.add_query_logger(record)
    return statements


@on_postgresql
async def test_a_command_that_only_appends_commits_in_one_statement(engine: AsyncEngine) -> None:
    counters = repository(SQLAlchemyEventStore(engine))
    async with SQLAlchemyUnitOfWork(engine) as uow:
        sent = log_statements(uow)
        with command_scope(uow):
            await counters.save(ticked(Counter(id="c-1"), times=3))
            await uow.commit()
    await asyncio.sleep(0)  # asyncpg calls its query loggers soon after
    assert sent == ["WITH"]  # the append itself: no BEGIN, no COMMIT
    assert await count_events(engine, "c-1") == 3


@on_postgresql
async def test_load_change_and_save_is_two_statements(engine: AsyncEngine) -> None:
    counters = repository(SQLAlchemyEventStore(engine))
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await counters.save(ticked(Counter(id="c-1")))
            await uow.commit()
    async with SQLAlchemyUnitOfWork(engine) as uow:
        sent = log_statements(uow)
        with command_scope(uow):
            counter = await counters.get("c-1")
            await counters.save(ticked(counter))
            await uow.commit()
    await asyncio.sleep(0)  # asyncpg calls its query loggers soon after
    assert sent == ["SELECT", "WITH"]
    assert (await counters.get("c-1")).ticks == 2


@on_postgresql
async def test_a_stale_save_fails_at_commit_with_a_concurrency_error_and_stores_nothing(
    engine: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(engine)
    counters = repository(store)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await counters.save(ticked(Counter(id="c-1")))
            await uow.commit()
    stale = await counters.get("c-1")
    await store.append("c-1", [Ticked(number=9)], expected_version=1)  # another writer wins

    async def stale_command() -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                await counters.save(ticked(stale, times=2))  # held back: no error yet
                await uow.commit()

    with pytest.raises(ConcurrencyError) as raised:
        await stale_command()
    assert (raised.value.stream_id, raised.value.expected_version) == ("c-1", 1)
    assert raised.value.actual_version == 2
    assert await count_events(engine, "c-1") == 2


@on_postgresql
async def test_a_save_colliding_with_a_concurrent_writer_leaves_none_of_its_events(
    engine: AsyncEngine,
) -> None:
    # given: two commands hold back appends to the same new stream
    counters = repository(SQLAlchemyEventStore(engine))
    both_saved = asyncio.Barrier(2)

    async def command(times: int) -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                await counters.save(ticked(Counter(id="c-1"), times=times))
                await both_saved.wait()
                await uow.commit()

    # when: both commit
    outcomes = await asyncio.gather(command(2), command(3), return_exceptions=True)

    # then: one wins whole, the other gets a ConcurrencyError and stores nothing
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], ConcurrencyError)
    stored = await counters.get("c-1")
    assert stored.ticks in (2, 3)
    assert await count_events(engine, "c-1") == stored.ticks


@on_postgresql
async def test_saving_the_same_events_again_is_a_no_op_and_a_partial_repeat_is_refused(
    engine: AsyncEngine,
) -> None:
    store = SQLAlchemyEventStore(engine)
    first, second = Ticked(number=1), Ticked(number=2)
    await store.append("c-1", [first, second], expected_version=0)

    # the same batch again (a retry after an ambiguous commit): nothing new, no error
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await store.append_at_commit("c-1", [first, second], expected_version=0)
            await uow.commit()
    assert await count_events(engine, "c-1") == 2

    # one stored event beside a new one: refused, naming the stored id
    async def partial_repeat() -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                await store.append_at_commit("c-1", [second, Ticked(number=3)], expected_version=1)
                await uow.commit()

    with pytest.raises(DuplicateEventIdError) as raised:
        await partial_repeat()
    assert second.event_id in raised.value.event_ids
    assert await count_events(engine, "c-1") == 2


WRITES: dict[str, Callable[[SQLAlchemyUnitOfWork], Any]] = {
    "connection": lambda uow: uow.connection.execute(text("INSERT INTO notes VALUES ('n-1')")),
    "session": lambda uow: uow.session.execute(text("INSERT INTO notes VALUES ('n-1')")),
}


@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("fail", [False, True])
async def test_a_held_back_append_and_a_later_sqlalchemy_write_are_one_transaction(
    engine: AsyncEngine, write: str, fail: bool
) -> None:
    # given: a table written through SQLAlchemy beside an event-sourced aggregate
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (id text PRIMARY KEY)"))
    counters = repository(SQLAlchemyEventStore(engine))

    # when: a command saves the aggregate first, writes through SQLAlchemy, then fails or commits
    async def command() -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                await counters.save(ticked(Counter(id="c-1")))
                await WRITES[write](uow)
                if fail:
                    raise RuntimeError("the card was declined")
                await uow.commit()

    if fail:
        with pytest.raises(RuntimeError, match="declined"):
            await command()
    else:
        await command()

    # then: both are stored, or neither
    async with engine.connect() as connection:
        notes = await connection.scalar(text("SELECT count(*) FROM notes"))
    assert (notes, await count_events(engine, "c-1")) == ((0, 0) if fail else (1, 1))


async def test_a_command_reads_its_own_held_back_events(engine: AsyncEngine) -> None:
    store = SQLAlchemyEventStore(engine)
    counters = repository(store)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await counters.save(ticked(Counter(id="c-1"), times=2))
            assert [event.version for event in await store.load_stream("c-1")] == [1, 2]
            assert len(await store.read_all()) == 2
            assert (await counters.get("c-1")).ticks == 2
            await uow.rollback()
    assert await count_events(engine, "c-1") == 0


async def test_a_held_back_append_then_another_stream_commit_together(
    engine: AsyncEngine,
) -> None:
    counters = repository(SQLAlchemyEventStore(engine))

    async def command() -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                await counters.save(ticked(Counter(id="c-1")))
                await counters.save(ticked(Counter(id="c-2")))
                stale = Counter(id="c-1")  # version 0 again: the second append to c-1 conflicts
                await counters.save(ticked(stale))
                await uow.commit()

    with pytest.raises(ConcurrencyError):
        await command()
    assert (await count_events(engine, "c-1"), await count_events(engine, "c-2")) == (0, 0)


@on_postgresql
async def test_a_cancelled_command_with_a_held_back_append_stores_nothing(
    engine: AsyncEngine,
) -> None:
    counters = repository(SQLAlchemyEventStore(engine))
    saved = asyncio.Event()

    async def command() -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                await counters.save(ticked(Counter(id="c-1")))
                saved.set()
                await asyncio.sleep(10)
                await uow.commit()

    task = asyncio.ensure_future(command())
    await saved.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert await count_events(engine, "c-1") == 0
    # the connection went back to the pool outside any transaction
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert raw.driver_connection.is_in_transaction() is False  # type: ignore[union-attr]


@on_postgresql
async def test_a_held_back_append_s_conflict_caught_by_the_handler_still_stops_the_commit(
    engine: AsyncEngine,
) -> None:
    # given: a stale save held back, and a table written through SQLAlchemy
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (id text PRIMARY KEY)"))
    store = SQLAlchemyEventStore(engine)
    counters = repository(store)
    await store.append("c-1", [Ticked(number=0)], expected_version=0)

    async def command() -> None:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                await counters.save(ticked(Counter(id="c-1")))  # version 0: stale
                # the SQLAlchemy write sends BEGIN and the held append, which
                # conflicts; the handler swallows the error and goes on
                with contextlib.suppress(ConcurrencyError):
                    await uow.connection.execute(text("INSERT INTO notes VALUES ('n-1')"))
                await uow.commit()

    # then: the commit refuses with the same conflict, and nothing of the command is stored
    with pytest.raises(ConcurrencyError):
        await command()
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM notes")) == 0
    assert await count_events(engine, "c-1") == 1


@on_postgresql
async def test_a_command_cancelled_while_its_held_back_begin_is_on_the_wire_pools_no_transaction(
    engine: AsyncEngine,
) -> None:
    for _ in range(20):
        async with SQLAlchemyUnitOfWork(engine) as uow:
            task = asyncio.ensure_future(uow.driver_for_write())
            await asyncio.sleep(0)  # BEGIN is sent; its answer has not been read
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.2)  # the server has run every BEGIN it was sent
    async with engine.connect() as connection:
        idle_in_transaction = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%'"
            )
        )
    assert idle_in_transaction == 0
