"""``InMemoryUndoLog``: undo log entries in a dict, for fast tests.

Writes are staged in the ambient ``InMemoryUnitOfWork`` (the command's) and
applied when it commits: an entry appears with the command's events, and an
undo's change of status with the inverse command's. A save is checked at
commit against the version it was read at (``ConcurrencyError`` otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from cqrs_ddd_advanced_core.adapters.memory.staging import stage_with_command
from cqrs_ddd_advanced_core.undo.log import UndoEntry
from cqrs_ddd_core.exceptions import ConcurrencyError


class InMemoryUndoLog:
    """Undo log entries in memory, newest last."""

    def __init__(self) -> None:
        self._entries: dict[UUID, UndoEntry] = {}

    async def add(self, entry: UndoEntry) -> None:
        """Stage a new entry."""
        stored = entry.model_copy(update={"version": 1})

        def check() -> None:
            if entry.token in self._entries:
                raise ConcurrencyError(
                    f"undo entry {entry.token}", expected_version=0, actual_version=1
                )

        stage_with_command(
            "undo log",
            ("undo", entry.token),
            check,
            lambda: self._entries.__setitem__(entry.token, stored),
        )

    def _put(self, entry: UndoEntry) -> None:
        self._entries[entry.token] = entry

    async def get(self, token: UUID) -> UndoEntry | None:
        """Return the entry ``token``, or None."""
        return self._entries.get(token)

    async def save(self, entry: UndoEntry) -> None:
        """Stage ``entry`` as the next version; ``ConcurrencyError`` at commit if it moved on."""
        expected = entry.version
        stored = entry.model_copy(update={"version": expected + 1})

        def check() -> None:
            current = self._entries.get(entry.token)
            actual = 0 if current is None else current.version
            if actual != expected:
                raise ConcurrencyError(
                    f"undo entry {entry.token}", expected_version=expected, actual_version=actual
                )

        stage_with_command(
            "undo log",
            ("undo", entry.token),
            check,
            lambda: self._entries.__setitem__(entry.token, stored),
        )

    async def supersede(self, aggregate_ids: Sequence[str]) -> None:
        """Stage: the undone entries of these aggregates become superseded."""
        wanted = set(aggregate_ids)

        def apply() -> None:
            for token, entry in list(self._entries.items()):
                if entry.status == "undone" and wanted & set(entry.aggregates):
                    self._entries[token] = entry.model_copy(
                        update={"status": "superseded", "version": entry.version + 1}
                    )

        stage_with_command("undo log", ("supersede", tuple(sorted(wanted))), lambda: None, apply)

    async def history(
        self,
        *,
        aggregate_id: str | None = None,
        user: str | None = None,
        limit: int = 50,
        statuses: Sequence[str] | None = None,
    ) -> list[UndoEntry]:
        """Return entries, newest first, of one aggregate and/or one user (in ``statuses``)."""
        found = [
            entry
            for entry in reversed(self._entries.values())
            if (aggregate_id is None or aggregate_id in entry.aggregates)
            and (user is None or entry.user == user)
            and (statuses is None or entry.status in statuses)
        ]
        return found[:limit]
