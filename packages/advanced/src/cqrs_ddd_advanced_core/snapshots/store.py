"""``SnapshotStore``: takes snapshots when the strategy says so, and restores them."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TypeVar

import pydantic

from cqrs_ddd_advanced_core.domain.exceptions import EventSourcingConfigurationError
from cqrs_ddd_advanced_core.snapshots.memory import InMemorySnapshotRepository
from cqrs_ddd_advanced_core.snapshots.repository import (
    SnapshotAndEventsReader,
    SnapshotRepository,
    repository_for_session,
)
from cqrs_ddd_advanced_core.snapshots.snapshot import Snapshot
from cqrs_ddd_advanced_core.snapshots.strategy import EveryNEventsStrategy, SnapshotStrategy
from cqrs_ddd_core.domain.aggregate import AggregateRoot
from cqrs_ddd_core.exceptions import FieldIssue, ValidationError
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent
from cqrs_ddd_core.serialization import UnreadableJSON, portable_dump

TAggregate = TypeVar("TAggregate", bound=AggregateRoot)

_logger = logging.getLogger("cqrs_ddd_advanced_core.snapshots")


class SnapshotStore:
    """Snapshots of event-sourced aggregates, taken as the strategy says.

    ``repository`` is where snapshots live: any :class:`SnapshotRepository`,
    e.g. ``SnapshotStore(strategy=..., repository=SQLAlchemySnapshotRepository(engine))``.
    That is the way to pass storage. With neither ``repository`` nor
    ``session`` they live in memory (:class:`InMemorySnapshotRepository`).

    ``session`` exists for the spec's ``SnapshotStore(session, strategy)``: a
    SQLAlchemy ``AsyncSession``, ``async_sessionmaker`` or ``AsyncEngine``, for
    which the installed SQLAlchemy package builds the repository (found
    through the ``cqrs_ddd.snapshot_repository`` entry point, as this package
    imports no driver). A ``session`` that already is a ``SnapshotRepository``
    is used as it is. Giving both, or something neither form understands,
    raises ``EventSourcingConfigurationError``.

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
        repository: SnapshotRepository | None = None,
    ) -> None:
        self.repository: SnapshotRepository = _chosen_repository(session, repository)
        self.strategy: SnapshotStrategy = strategy or EveryNEventsStrategy(frequency=100)
        self.keep = keep
        self.unusable: Counter[str] = Counter()
        """Snapshots not used, by reason. Found at a load and ignored:
        ``aggregate_type``, ``schema_version`` (expected after a release), and
        the kinds of damage ``not_an_object``, ``invalid_state`` and
        ``past_stream_end``; each costs a full replay. Not taken when due:
        ``not_portable``. Damage and skips are also logged as warnings."""
        # The last (repository, event store) pair asked about, and whether the repository
        # reads that store's events itself: asked once, not on every load.
        self._joint: (
            tuple[SnapshotRepository, EventStore, SnapshotAndEventsReader | None] | None
        ) = None

    async def snapshot_if_due(self, aggregate: AggregateRoot, *, previous_version: int) -> bool:
        """Snapshot ``aggregate`` if saving it from ``previous_version`` crosses the threshold.

        A state that would not read back as it is (see :meth:`save`) is not
        snapshotted: the command goes on without it, and the skip is logged
        and counted in :attr:`unusable` as ``not_portable``.
        """
        if not self.strategy.should_snapshot(
            previous_version=previous_version, new_version=aggregate.version
        ):
            return False
        try:
            await self.save(aggregate)
        except ValidationError as error:
            self.unusable["not_portable"] += 1
            _logger.warning("not snapshotting %s: %s", aggregate.aggregate_type_name, error)
            return False
        return True

    async def save(self, aggregate: AggregateRoot) -> Snapshot:
        """Snapshot ``aggregate`` at its current version, whatever the strategy says.

        Raises ``ValidationError`` naming each field whose JSON form would not
        read back as it is (a key that is not a string, NaN ...): such a
        snapshot would restore a different aggregate than a replay.
        """
        state, issues = portable_dump(aggregate, by_alias=True)
        if issues:
            raise ValidationError(
                f"snapshot of {aggregate.aggregate_type_name} {aggregate.id!r}",
                [FieldIssue(path, reason) for path, reason in issues],
            )
        snapshot = Snapshot(
            stream_id=aggregate.id,
            aggregate_type=aggregate.aggregate_type_name,
            version=aggregate.version,
            schema_version=_schema_version(type(aggregate)),
            state=state,
        )
        await self.repository.save(snapshot, keep=self.keep)
        return snapshot

    async def restore(self, aggregate_type: type[TAggregate], stream_id: str) -> TAggregate | None:
        """Return the aggregate as of its newest usable snapshot, or None.

        A snapshot of another aggregate type or schema version, or whose state
        is not a JSON object that validates against the class, is not used
        (see :attr:`unusable`). This reads no event, so it cannot tell a
        snapshot taken past the stream's end: loads use :meth:`restore_with_events`.
        """
        snapshot = await self.repository.latest(stream_id)
        return None if snapshot is None else self._usable(aggregate_type, snapshot)

    async def restore_with_events(
        self, aggregate_type: type[TAggregate], stream_id: str, event_store: EventStore
    ) -> tuple[TAggregate | None, list[StoredEvent]]:
        """Return the aggregate as of its newest usable snapshot (or None) and the events after it.

        The events are ``event_store``'s, from the snapshot's version + 1 on, or
        the whole stream when no snapshot is usable. The read starts at the
        snapshot's own version, so that a snapshot the stream has no event for
        (taken past its end: a damaged row) is caught and not used. When the
        repository is a :class:`SnapshotAndEventsReader` of ``event_store`` (the
        SQLAlchemy repository with the SQLAlchemy event store on the same
        database), the snapshot and the events come in one read, one round
        trip; only an unusable snapshot costs a second read, of the whole stream.
        """
        reader = self._reader_of(event_store)
        if reader is None:
            snapshot = await self.repository.latest(stream_id)
            restored = None if snapshot is None else self._usable(aggregate_type, snapshot)
            if snapshot is None or restored is None:
                return None, await event_store.load_stream(stream_id)
            stored = await event_store.load_stream(stream_id, from_version=snapshot.version)
        else:
            snapshot, stored = await reader.load_snapshot_and_events(stream_id)
            if snapshot is None:
                return None, stored
            restored = self._usable(aggregate_type, snapshot)
        if restored is None or not self._within_stream(snapshot, stored):
            return None, await event_store.load_stream(stream_id)
        return restored, stored[1:]

    def _reader_of(self, event_store: EventStore) -> SnapshotAndEventsReader | None:
        repository = self.repository
        joint = self._joint
        if joint is not None and joint[0] is repository and joint[1] is event_store:
            return joint[2]
        reader = (
            repository
            if isinstance(repository, SnapshotAndEventsReader)
            and repository.reads_events_of(event_store)
            else None
        )
        self._joint = (repository, event_store, reader)
        return reader

    def _usable(self, aggregate_type: type[TAggregate], snapshot: Snapshot) -> TAggregate | None:
        """Return the aggregate the snapshot holds, or None (counted, logged) when unusable."""
        if snapshot.aggregate_type != aggregate_type.aggregate_type_name:
            self.unusable["aggregate_type"] += 1
            return None
        expected = _schema_version(aggregate_type)
        if snapshot.schema_version != expected:
            # expected after a release that changed the class: not damage
            self.unusable["schema_version"] += 1
            _logger.info(
                "ignoring snapshot of %s %r at version %d: schema version %d, class is at %d",
                snapshot.aggregate_type,
                snapshot.stream_id,
                snapshot.version,
                snapshot.schema_version,
                expected,
            )
            return None
        state: object = snapshot.state
        if not isinstance(state, dict):
            why = (
                f"its state is not valid JSON ({state.reason})"
                if isinstance(state, UnreadableJSON)
                else f"its state is a {type(state).__name__}, not a JSON object"
            )
            self._damaged(snapshot, "not_an_object", why)
            return None
        try:
            return aggregate_type.model_validate({**state, "version": snapshot.version})
        except pydantic.ValidationError as error:
            self._damaged(snapshot, "invalid_state", f"its state no longer fits: {error}")
            return None

    def _within_stream(self, snapshot: Snapshot, stored: list[StoredEvent]) -> bool:
        """Return whether ``stored`` (read from the snapshot's version) starts at its event."""
        if stored and stored[0].version == snapshot.version:
            return True
        self._damaged(snapshot, "past_stream_end", "the stream has no event at its version")
        return False

    def _damaged(self, snapshot: Snapshot, kind: str, why: str) -> None:
        self.unusable[kind] += 1
        _logger.warning(
            "ignoring snapshot of %s %r at version %d, replaying the stream instead: %s",
            snapshot.aggregate_type,
            snapshot.stream_id,
            snapshot.version,
            why,
        )


def _chosen_repository(session: object, repository: object) -> SnapshotRepository:
    """Return the repository ``SnapshotStore(session, ..., repository=...)`` names."""
    if hasattr(session, "should_snapshot"):
        raise EventSourcingConfigurationError(
            f"a {type(session).__qualname__} was passed as the snapshot store's session: "
            "pass the strategy by keyword, SnapshotStore(strategy=..., repository=...)"
        )
    if repository is not None:
        if session is not None:
            raise EventSourcingConfigurationError(
                "a snapshot store takes a session or a repository=, not both"
            )
        if not isinstance(repository, SnapshotRepository):
            raise EventSourcingConfigurationError(
                f"a {type(repository).__qualname__} is not a SnapshotRepository (latest, save): "
                "pass a database session as the store's session, or its package's repository "
                "as repository="
            )
        return repository
    if session is None:
        return InMemorySnapshotRepository()
    if isinstance(session, SnapshotRepository):
        return session
    return repository_for_session(session)


def _schema_version(aggregate_type: type[AggregateRoot]) -> int:
    version = getattr(aggregate_type, "schema_version", 1)
    return version if isinstance(version, int) else 1
