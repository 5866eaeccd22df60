"""The undo log: one durable entry per command executed with undo, and the port that keeps them.

An :class:`UndoEntry` records the command (its registered type and fields),
the command that reverses it, the events the command produced, every event
its undos and redos produced since, the version each aggregate reached with
the latest of them, who ran it, its status,
and the ids of the undo and redo operations applied to it. Its ``version``
counts the changes: saves are checked against it, so two clients undoing the
same entry at once cannot both succeed.

Statuses: ``done`` (executed), ``undone``, ``redone``, and ``superseded`` (it
was undone, then a new command on its aggregate emptied the redo stack).

Writes join the command's unit of work: an entry is written in the same
transaction as the command's events, and an undo's change of status in the
same transaction as the inverse command's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

UndoStatus = Literal["done", "undone", "redone", "superseded"]
"""Where an undo log entry is."""


class LoggedCommand(BaseModel):
    """A command kept in the log: its registered type name and its fields as JSON."""

    model_config = ConfigDict(frozen=True)

    command_type: str
    payload: dict[str, Any]


class LoggedEvent(BaseModel):
    """An event as the undo log sees it: produced by an entry, or recorded since one.

    ``aggregate_id`` is its stream, ``version`` its place there, ``payload``
    its fields as JSON.
    """

    model_config = ConfigDict(frozen=True)

    event_id: UUID
    event_type: str
    aggregate_id: str | None
    version: int | None
    payload: dict[str, Any] = Field(default_factory=dict)
    application: int = 0
    """Which application of its entry produced it: 0 the execution, then each undo and redo."""


class UndoEntry(BaseModel):
    """One command executed with undo (see the module docs)."""

    model_config = ConfigDict(frozen=True)

    token: UUID
    command: LoggedCommand
    inverse: LoggedCommand
    events: tuple[LoggedEvent, ...] = ()
    """The events the command produced when it was executed."""
    applied: tuple[LoggedEvent, ...] = ()
    """Every event the entry's execution, undos and redos produced, in order."""
    aggregates: dict[str, int] = Field(default_factory=dict)
    """The version each aggregate (stream) reached with the entry's latest application."""
    user: str | None = None
    status: UndoStatus = "done"
    operations: tuple[UUID, ...] = ()
    """The ids of the undo and redo operations applied, for idempotent retries."""
    created_at: datetime
    version: int = 1

    @property
    def undoable(self) -> bool:
        """Whether undo applies: the command (or its redo) is in effect."""
        return self.status in ("done", "redone")


class UndoLog(Protocol):
    """Keeps undo log entries; writes join the ambient command's unit of work."""

    async def add(self, entry: UndoEntry) -> None:
        """Store a new entry (version 1)."""
        ...

    async def get(self, token: UUID) -> UndoEntry | None:
        """Return the entry ``token``, or None."""
        ...

    async def save(self, entry: UndoEntry) -> None:
        """Store ``entry`` as the next version of its token.

        ``entry.version`` is the version it was read at; ``ConcurrencyError``
        when the stored one moved on (another client changed it first).
        """
        ...

    async def supersede(self, aggregate_ids: Sequence[str]) -> None:
        """Mark the undone entries of these aggregates superseded (their redo stack empties)."""
        ...

    async def history(
        self,
        *,
        aggregate_id: str | None = None,
        user: str | None = None,
        limit: int = 50,
        statuses: Sequence[str] | None = None,
    ) -> list[UndoEntry]:
        """Return entries, newest first, of one aggregate and/or one user (in ``statuses``)."""
        ...
