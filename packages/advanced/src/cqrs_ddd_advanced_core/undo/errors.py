"""The typed errors of undo and redo: each names the token, the command type or the events."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from cqrs_ddd_advanced_core.undo.log import LoggedEvent
from cqrs_ddd_core.exceptions import CqrsDddError


class UndoError(CqrsDddError):
    """Undo or redo cannot be done as asked."""


class UnknownUndoTokenError(UndoError):
    """No undo log entry has this token."""

    def __init__(self, token: UUID) -> None:
        self.token = token
        super().__init__(f"no command was executed with undo token {token}")


class ForeignUndoTokenError(UndoError):
    """The token belongs to another user's undo stack (stacks are per user)."""

    def __init__(self, token: UUID, user: str | None, owner: str | None) -> None:
        self.token = token
        self.user = user
        self.owner = owner
        super().__init__(f"undo token {token} belongs to {owner!r}'s undo stack, not to {user!r}'s")


class NoUndoExecutorError(UndoError):
    """No undo executor is registered for the command's type: it cannot be undone."""

    def __init__(self, command_type: str) -> None:
        self.command_type = command_type
        super().__init__(
            f"{command_type} has no undo executor: register one with "
            f"UndoExecutorRegistry.register({command_type}, ...) to execute it with undo"
        )


class AlreadyUndoneError(UndoError):
    """The entry is undone already (or its redo was superseded): there is nothing to undo."""

    def __init__(self, token: UUID, status: str) -> None:
        self.token = token
        self.status = status
        super().__init__(f"undo token {token}: the command is {status}, there is nothing to undo")


class NotUndoneError(UndoError):
    """Redo of an entry that was not undone, or whose redo a later command superseded."""

    def __init__(self, token: UUID, status: str) -> None:
        self.token = token
        self.status = status
        reason = (
            "a later command on its aggregate emptied the redo stack"
            if status == "superseded"
            else "it was not undone"
        )
        super().__init__(f"undo token {token}: nothing to redo ({status}: {reason})")


class UndoConflictError(UndoError):
    """The aggregate changed since the entry, and its executor says the inverse does not commute.

    ``intervening`` lists the events recorded since, each as (stream, version,
    event type).
    """

    def __init__(self, token: UUID, action: str, intervening: Sequence[LoggedEvent]) -> None:
        self.token = token
        self.action = action
        self.intervening = [
            (event.aggregate_id, event.version, event.event_type) for event in intervening
        ]
        shown = ", ".join(
            f"{stream} v{version} {name}" for stream, version, name in self.intervening[:5]
        )
        more = f" and {len(self.intervening) - 5} more" if len(self.intervening) > 5 else ""
        super().__init__(
            f"cannot {action} {token}: its aggregate changed since ({shown}{more}) "
            "and its undo executor says the change does not commute"
        )


class UndoFailedError(UndoError):
    """The inverse (or the redone) command failed: nothing was applied, the entry is as it was."""

    def __init__(self, token: UUID, action: str, reason: str) -> None:
        self.token = token
        self.action = action
        self.reason = reason
        super().__init__(f"{action} of {token} failed, nothing was applied: {reason}")
