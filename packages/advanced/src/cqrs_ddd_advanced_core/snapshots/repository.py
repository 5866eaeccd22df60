"""The snapshot repository port, and the repository a persistence package builds for a session."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from cqrs_ddd_advanced_core.domain.exceptions import EventSourcingConfigurationError
from cqrs_ddd_advanced_core.snapshots.snapshot import Snapshot
from cqrs_ddd_core.ports.event_store import EventStore, StoredEvent

ENTRY_POINT_GROUP = "cqrs_ddd.snapshot_repository"
"""Persistence packages name here a function ``(session) -> SnapshotRepository | None``.

Consulted only for the spec's ``SnapshotStore(session, strategy)``; a store given
``repository=`` never looks here.
"""


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


def repository_for_session(session: object) -> SnapshotRepository:
    """Return the repository an installed persistence package builds for ``session``.

    This serves the spec's ``SnapshotStore(session, strategy)``, whose session
    is a database driver's object (the SQLAlchemy package understands engines,
    sessions and session factories). This package imports no driver, so it
    asks the functions persistence packages name in the
    ``cqrs_ddd.snapshot_repository`` entry point group. Passing a repository
    (``SnapshotStore(repository=...)``) needs none of this.
    """
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        repository = entry_point.load()(session)
        if repository is not None:
            return repository  # type: ignore[no-any-return]
    raise EventSourcingConfigurationError(
        f"no installed persistence package builds a snapshot repository for a "
        f"{type(session).__qualname__}: pass a SnapshotRepository as repository=, nothing "
        "for memory, or a session of an installed persistence package (e.g. a SQLAlchemy "
        "AsyncSession, async_sessionmaker or AsyncEngine)"
    )
