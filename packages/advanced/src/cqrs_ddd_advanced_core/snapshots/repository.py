"""The snapshot repository port, and finding the repository for what ``SnapshotStore`` is given."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from cqrs_ddd_advanced_core.domain.exceptions import EventSourcingConfigurationError
from cqrs_ddd_advanced_core.snapshots.snapshot import Snapshot
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent

ENTRY_POINT_GROUP = "cqrs_ddd.snapshot_repository"
"""Persistence packages name here a function ``(session) -> SnapshotRepository | None``."""


@runtime_checkable
class SnapshotRepository(Protocol):
    """Keeps snapshots; writes join the ambient unit of work of the same database."""

    async def latest(self, stream_id: str) -> Snapshot | None:
        """Return the stream's newest snapshot, or None."""
        ...

    async def save(self, snapshot: Snapshot, *, keep: int) -> None:
        """Store ``snapshot`` and keep only the stream's ``keep`` newest ones."""
        ...


@runtime_checkable
class SnapshotAndEventsReader(Protocol):
    """A snapshot repository that also reads the events after the snapshot, in one round trip.

    An optional capability: ``SnapshotStore.restore_with_events`` (and so
    ``EventSourcedLoader``) uses it when the repository says it reads the same
    events as the loader's event store (same database, same table), and
    falls back to ``latest`` then ``EventStore.load_stream`` otherwise.
    """

    def reads_events_of(self, event_store: EventStore) -> bool:
        """Return whether :meth:`load_snapshot_and_events` reads ``event_store``'s events."""
        ...

    async def load_snapshot_and_events(
        self, stream_id: str
    ) -> tuple[Snapshot | None, list[StoredEvent]]:
        """Return the stream's newest snapshot and the stream's events from its version on.

        The events are those ``load_stream(stream_id, from_version=snapshot.version)``
        returns, in version order: the event the snapshot was taken at comes
        first (so the caller can tell a snapshot past the stream's end), then
        the later ones. The whole stream when there is no snapshot. Inside a
        command the read joins the command's transaction, as the event store's
        reads do.
        """
        ...


def repository_for(session: object) -> SnapshotRepository:
    """Return the repository for ``session``: itself if it is one, else an adapter's.

    Persistence packages advertise adapters through the ``cqrs_ddd.snapshot_repository``
    entry point group (the SQLAlchemy package understands engines, sessions and
    session factories), so this package never imports a database driver.
    """
    if isinstance(session, SnapshotRepository):
        return session
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        repository = entry_point.load()(session)
        if repository is not None:
            return repository  # type: ignore[no-any-return]
    raise EventSourcingConfigurationError(
        f"no snapshot repository understands a {type(session).__qualname__}: pass a "
        "SnapshotRepository, None for memory, or a session of an installed persistence package "
        "(e.g. a SQLAlchemy AsyncSession, async_sessionmaker or AsyncEngine)"
    )
