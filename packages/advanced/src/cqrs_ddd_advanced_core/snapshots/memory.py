"""In-memory snapshot repository, transactional with ``InMemoryUnitOfWork``.

Also importable from :mod:`cqrs_ddd_advanced_core.adapters.memory`.
"""

from __future__ import annotations

from cqrs_ddd_advanced_core.snapshots.snapshot import Snapshot
from cqrs_ddd_core.adapters.memory import InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import current_scope_or_none
from cqrs_ddd_core.exceptions import UnitOfWorkError


class InMemorySnapshotRepository:
    """Keeps each stream's newest snapshots in a dict.

    Inside a command on an :class:`InMemoryUnitOfWork` a save is staged and
    lands on commit (a rollback drops it, as it drops the events); outside a
    command it lands at once. Inside a command on another kind of unit of
    work a save raises ``UnitOfWorkError``: it would land apart from the command.
    """

    def __init__(self) -> None:
        self._snapshots: dict[str, list[Snapshot]] = {}

    async def latest(self, stream_id: str) -> Snapshot | None:
        """Return the stream's newest snapshot, or None."""
        kept = self._snapshots.get(stream_id)
        return kept[-1] if kept else None

    async def save(self, snapshot: Snapshot, *, keep: int) -> None:
        """Store ``snapshot``, keeping the stream's ``keep`` newest."""
        scope = current_scope_or_none()
        if scope is None:
            self._store(snapshot, keep)
            return
        uow = scope.uow
        if not isinstance(uow, InMemoryUnitOfWork):
            raise UnitOfWorkError(
                f"save a snapshot of {snapshot.stream_id!r} cannot join the command's unit of "
                f"work ({type(uow).__qualname__}): in-memory snapshots join an InMemoryUnitOfWork"
            )
        uow.stage(
            ("snapshot", id(self), snapshot.stream_id, snapshot.version),
            check=lambda: None,
            apply=lambda: self._store(snapshot, keep),
        )

    def _store(self, snapshot: Snapshot, keep: int) -> None:
        kept = [
            s for s in self._snapshots.get(snapshot.stream_id, []) if s.version != snapshot.version
        ]
        kept.append(snapshot)
        kept.sort(key=lambda s: s.version)
        self._snapshots[snapshot.stream_id] = kept[-max(keep, 1) :]
