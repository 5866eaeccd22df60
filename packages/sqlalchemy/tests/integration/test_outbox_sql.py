"""``SQLAlchemyOutboxStore`` on SQLite and PostgreSQL: what a relay reads, marks and purges."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.domain.exceptions import LeaseLostError
from cqrs_ddd_advanced_core.outbox import Partition
from cqrs_ddd_core import DomainEvent
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyOutboxStore,
    SQLAlchemyWorkerStorage,
    write_outbox,
)

pytest_plugins = ["sqlalchemy_fixtures"]


class Noted(DomainEvent):
    n: int


async def write(engine: AsyncEngine, keys: list[str]) -> None:
    async with engine.begin() as connection:
        events = [Noted(n=n, aggregate_id=key, version=1) for n, key in enumerate(keys)]
        await write_outbox(connection, events, topic="notes")


async def test_a_relay_reads_pages_by_partition_marks_them_and_purges_what_was_sent(
    engine: AsyncEngine,
) -> None:
    # given: twelve rows over six aggregates
    keys = [f"note-{n % 6}" for n in range(12)]
    await write(engine, keys)
    store, storage = SQLAlchemyOutboxStore(engine), SQLAlchemyWorkerStorage(engine)

    # then: pages come oldest first; a partition sees only its keys; a page can be skipped
    everything = await store.pending(limit=100)
    assert [message.partition_key for message in everything] == keys
    first = await store.pending(limit=5)
    after_first = await store.pending(limit=5, excluding=[message.id for message in first])
    assert [m.id for m in first + after_first] == [m.id for m in everything[:10]]
    shares = [await store.pending(limit=100, partition=Partition(i, 3)) for i in range(3)]
    assert sorted(m.id for share in shares for m in share) == [m.id for m in everything]
    for index, share in enumerate(shares):
        assert all(Partition(index, 3).holds(m.partition_key) for m in share)
    backlog = await store.backlog()
    assert (backlog.count, backlog.newest_id) == (12, everything[-1].id)
    assert backlog.oldest_created_at is not None

    # when: the first five are marked published under a lease
    lease = await storage.leases.acquire("relay", "relay-1", 30)
    assert lease is not None
    async with storage.batch(lease, 30) as transaction:
        await store.mark_published(transaction, [message.id for message in first])
    # then: they are no longer pending, and count as published
    assert [m.id for m in await store.pending(limit=100)] == [m.id for m in everything[5:]]
    assert (await store.backlog()).count == 7

    # and: only published rows older than the window are purged
    assert await store.purge_published(older_than=60) == 0
    await asyncio.sleep(0.05)
    assert await store.purge_published(older_than=0.01) == 5
    assert (await store.backlog()).count == 7
    assert len(await store.pending(limit=100)) == 7


async def test_a_mark_from_a_lost_lease_changes_nothing(engine: AsyncEngine) -> None:
    await write(engine, ["note-1", "note-2"])
    store, storage = SQLAlchemyOutboxStore(engine), SQLAlchemyWorkerStorage(engine)
    stale = await storage.leases.acquire("relay", "relay-1", 0.01)
    assert stale is not None
    await asyncio.sleep(0.05)
    assert await storage.leases.acquire("relay", "relay-2", 30) is not None  # taken over
    messages = await store.pending(limit=10)
    with pytest.raises(LeaseLostError):
        async with storage.batch(stale, 30) as transaction:
            await store.mark_published(transaction, [message.id for message in messages])
    assert (await store.backlog()).count == 2
