"""``SnapshotStore``: takes snapshots when the strategy says so, and restores them."""

from __future__ import annotations

import logging
from typing import TypeVar

import pydantic

from cqrs_ddd_advanced_core.snapshots.memory import InMemorySnapshotStorage
from cqrs_ddd_advanced_core.snapshots.snapshot import Snapshot
from cqrs_ddd_advanced_core.snapshots.storage import (
    SnapshotAndEventsReader,
    SnapshotStorage,
    storage_for,
)
from cqrs_ddd_advanced_core.snapshots.strategy import EveryNEventsStrategy, SnapshotStrategy
from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent

TAggregate = TypeVar("TAggregate", bound=AggregateRoot)

_logger = logging.getLogger("cqrs_ddd_advanced_core.snapshots")


class SnapshotStore:
    """Snapshots of event-sourced aggregates, taken as the strategy says.

    ``session`` says where snapshots live: a SQLAlchemy ``AsyncSession``,
    ``async_sessionmaker`` or ``AsyncEngine`` (with the SQLAlchemy persistence
    package installed), any :class:`SnapshotStorage`, or ``None`` for memory.
    ``strategy`` defaults to ``EveryNEventsStrategy(frequency=100)``; ``keep``
    is how many of each stream's newest snapshots are kept.

    ``EventSourcedRepository.save`` calls :meth:`snapshot_if_due` in the
    command's unit of work, so a snapshot commits with the events that crossed
    the threshold, or not at all. ``EventSourcedLoader`` calls
    :meth:`restore_with_events`.
    """

    def __init__(
        self,
        session: object | None = None,
        strategy: SnapshotStrategy | None = None,
        *,
        keep: int = 1,
    ) -> None:
        self.storage: SnapshotStorage = (
            InMemorySnapshotStorage() if session is None else storage_for(session)
        )
        self.strategy: SnapshotStrategy = strategy or EveryNEventsStrategy(frequency=100)
        self.keep = keep
        # The last (storage, event store) pair asked about, and whether the storage
        # reads that store's events itself: asked once, not on every load.
        self._joint: tuple[SnapshotStorage, EventStore, SnapshotAndEventsReader | None] | None = (
            None
        )

    async def snapshot_if_due(self, aggregate: AggregateRoot, *, previous_version: int) -> bool:
        """Snapshot ``aggregate`` if saving it from ``previous_version`` crosses the threshold."""
        if not self.strategy.should_snapshot(
            previous_version=previous_version, new_version=aggregate.version
        ):
            return False
        await self.save(aggregate)
        return True

    async def save(self, aggregate: AggregateRoot) -> Snapshot:
        """Snapshot ``aggregate`` at its current version, whatever the strategy says."""
        snapshot = Snapshot(
            stream_id=aggregate.id,
            aggregate_type=aggregate.aggregate_type_name,
            version=aggregate.version,
            schema_version=_schema_version(type(aggregate)),
            state=aggregate.model_dump(mode="json", by_alias=True),
        )
        await self.storage.save(snapshot, keep=self.keep)
        return snapshot

    async def restore(self, aggregate_type: type[TAggregate], stream_id: str) -> TAggregate | None:
        """Return the aggregate as of its newest usable snapshot, or None.

        A snapshot of another aggregate type, of another schema version, or
        whose state no longer validates against the class is not used: the
        loader then replays the whole stream.
        """
        snapshot = await self.storage.latest(stream_id)
        return None if snapshot is None else self._usable(aggregate_type, snapshot)

    async def restore_with_events(
        self, aggregate_type: type[TAggregate], stream_id: str, event_store: EventStore
    ) -> tuple[TAggregate | None, list[StoredEvent]]:
        """Return the aggregate as of its newest usable snapshot (or None) and the events after it.

        The events are ``event_store``'s, from the snapshot's version + 1 on, or
        the whole stream when no snapshot is usable (see :meth:`restore`). When
        the storage is a :class:`SnapshotAndEventsReader` of ``event_store``
        (the SQLAlchemy storage with the SQLAlchemy event store on the same
        database), the snapshot and the events come in one read, one round trip;
        only an unusable snapshot costs a second read, of the whole stream.
        """
        reader = self._reader_of(event_store)
        if reader is None:
            restored = await self.restore(aggregate_type, stream_id)
            from_version = restored.version + 1 if restored is not None else 1
            return restored, await event_store.load_stream(stream_id, from_version=from_version)
        snapshot, stored = await reader.load_snapshot_and_events(stream_id)
        if snapshot is None:
            return None, stored
        restored = self._usable(aggregate_type, snapshot)
        if restored is None:
            return None, await event_store.load_stream(stream_id)
        return restored, stored

    def _reader_of(self, event_store: EventStore) -> SnapshotAndEventsReader | None:
        storage = self.storage
        joint = self._joint
        if joint is not None and joint[0] is storage and joint[1] is event_store:
            return joint[2]
        reader = (
            storage
            if isinstance(storage, SnapshotAndEventsReader) and storage.reads_events_of(event_store)
            else None
        )
        self._joint = (storage, event_store, reader)
        return reader

    def _usable(self, aggregate_type: type[TAggregate], snapshot: Snapshot) -> TAggregate | None:
        if snapshot.aggregate_type != aggregate_type.aggregate_type_name:
            return None
        expected = _schema_version(aggregate_type)
        if snapshot.schema_version != expected:
            _logger.info(
                "ignoring snapshot of %s %r at version %d: schema version %d, class is at %d",
                snapshot.aggregate_type,
                snapshot.stream_id,
                snapshot.version,
                snapshot.schema_version,
                expected,
            )
            return None
        try:
            return aggregate_type.model_validate({**snapshot.state, "version": snapshot.version})
        except pydantic.ValidationError as error:
            _logger.warning(
                "ignoring snapshot of %s %r at version %d: its state no longer fits: %s",
                snapshot.aggregate_type,
                snapshot.stream_id,
                snapshot.version,
                error,
            )
            return None


def _schema_version(aggregate_type: type[AggregateRoot]) -> int:
    version = getattr(aggregate_type, "schema_version", 1)
    return version if isinstance(version, int) else 1
