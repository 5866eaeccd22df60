"""Loading through a snapshot repository that also reads the events after the snapshot.

``SnapshotStore.restore_with_events`` (and so ``EventSourcedLoader``) uses a
repository's ``load_snapshot_and_events`` when the repository is a
``SnapshotAndEventsReader`` of the loader's event store: one read instead of
``latest`` then ``load_stream``. An unusable snapshot costs one more read, of the
whole stream; a repository that does not read that event store is used as before.
"""

from __future__ import annotations

import pytest
from snapshot_test_support import (
    AddItems,
    CountingEventStore,
    OrderV2,
    SnapshottingShop,
    StreamRead,
    lines,
    snapshotting_shop,
)

from cqrs_ddd_advanced_core.adapters.memory import InMemoryEventStore, InMemorySnapshotRepository
from cqrs_ddd_advanced_core.snapshots import (
    EveryNEventsStrategy,
    Snapshot,
    SnapshotAndEventsReader,
    SnapshotStore,
)
from cqrs_ddd_core import InMemoryUnitOfWork, StoredEvent
from cqrs_ddd_core.ports.event_store import EventStore


class JointRepository(InMemorySnapshotRepository):
    """In-memory snapshots that read the events of one event store alongside."""

    def __init__(self, events: EventStore) -> None:
        super().__init__()
        self.events = events
        self.joint_reads: list[str] = []
        self.questions = 0

    def reads_events_of(self, event_store: EventStore) -> bool:
        self.questions += 1
        return event_store is self.events

    async def load_snapshot_and_events(
        self, stream_id: str
    ) -> tuple[Snapshot | None, list[StoredEvent]]:
        self.joint_reads.append(stream_id)
        snapshot = await self.latest(stream_id)
        from_version = snapshot.version if snapshot is not None else 1
        return snapshot, await self.events.load_stream(stream_id, from_version=from_version)


def joint_shop(frequency: int) -> tuple[SnapshottingShop, JointRepository, CountingEventStore]:
    """Return the shop with a joint repository reading a counting view of its event store."""
    counting = CountingEventStore(InMemoryEventStore())
    repository = JointRepository(counting)
    snapshots = SnapshotStore(
        strategy=EveryNEventsStrategy(frequency=frequency), repository=repository
    )
    return snapshotting_shop(counting, snapshots, InMemoryUnitOfWork), repository, counting


def test_the_joint_repository_is_a_snapshot_and_events_reader() -> None:
    repository = JointRepository(InMemoryEventStore())
    assert isinstance(repository, SnapshotAndEventsReader)
    assert not isinstance(InMemorySnapshotRepository(), SnapshotAndEventsReader)


async def test_a_load_reads_the_snapshot_and_the_later_events_in_one_joint_read() -> None:
    # given: a snapshot at 7, then two more events
    shop, repository, counting = joint_shop(frequency=5)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(6)))
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(2, sku="sku-2")))
    repository.joint_reads.clear()
    counting.reads.clear()
    # when
    loaded = await shop.snapshot_loader(counting).load("o-1")
    # then: one joint read (which read from 8 on), nothing else
    assert repository.joint_reads == ["o-1"]
    assert counting.reads == [StreamRead("o-1", from_version=7, count=3)]
    assert loaded.model_dump() == (await shop.replaying_loader().load("o-1")).model_dump()
    assert loaded.version == 9


async def test_without_a_snapshot_the_joint_read_is_the_whole_stream() -> None:
    # given
    shop, repository, counting = joint_shop(frequency=50)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(3)))
    repository.joint_reads.clear()
    counting.reads.clear()
    # when
    loaded = await shop.snapshot_loader(counting).load("o-1")
    missing = await shop.snapshot_loader(counting).find("o-2")
    # then
    assert repository.joint_reads == ["o-1", "o-2"]
    assert counting.reads == [StreamRead("o-1", 1, 4), StreamRead("o-2", 1, 0)]
    assert loaded.version == 4
    assert missing is None


async def test_an_unusable_snapshot_costs_a_second_read_of_the_whole_stream() -> None:
    # given: a snapshot taken while Order's schema was version 1
    shop, repository, counting = joint_shop(frequency=5)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(6)))
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(1)))
    repository.joint_reads.clear()
    counting.reads.clear()
    # when: the class now at schema version 2 loads it
    loaded = await shop.snapshot_loader(counting, aggregate_type=OrderV2).load("o-1")
    # then
    assert repository.joint_reads == ["o-1"]
    assert counting.reads == [StreamRead("o-1", 7, 2), StreamRead("o-1", 1, 8)]
    replayed = await shop.replaying_loader(aggregate_type=OrderV2).load("o-1")
    assert loaded.model_dump() == replayed.model_dump()


async def test_a_repository_that_does_not_read_the_loader_s_event_store_is_read_as_before() -> None:
    # given: the loader reads through another view of the events
    shop, repository, counting = joint_shop(frequency=5)
    await shop.create_order("o-1")
    await shop.mediator.send(AddItems(order_id="o-1", lines=lines(6)))
    repository.joint_reads.clear()
    other = CountingEventStore(counting.inner)
    # when
    loaded = await shop.snapshot_loader(other).load("o-1")
    # then: latest, then load_stream after the snapshot
    assert repository.joint_reads == []
    assert other.reads == [StreamRead("o-1", from_version=7, count=1)]
    assert loaded.version == 7


@pytest.mark.parametrize("loads", [1, 3])
async def test_the_repository_is_asked_once_whether_it_reads_an_event_store(loads: int) -> None:
    # given
    shop, repository, counting = joint_shop(frequency=5)
    await shop.create_order("o-1")
    loader = shop.snapshot_loader(counting)
    repository.questions = 0
    # when
    for _ in range(loads):
        await loader.load("o-1")
    # then
    assert repository.questions == 1
