"""Undo executors: for a command type, the command that reverses it, and when that still holds.

An executor is given the executed command and the events it produced, and
returns the command that reverses it (an ``AddItemToOrder`` that produced
``ItemAdded(line_id=...)`` is reversed by ``RemoveOrderLine(line_id=...)``).
Undo sends that command through the mediator: it appends new events, it never
rewrites history.

When the aggregate changed since the entry (another writer's command),
:meth:`UndoExecutor.commutes` says whether the inverse still applies; the
default is no, and undo refuses with ``UndoConflictError`` naming the events.

Executors compose: :func:`executor` builds one from two functions, and
:class:`UndoExecutorRegistry` maps command types to executors (a subclass of a
registered command type uses its parent's executor unless it has its own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from cqrs_ddd_advanced_core.undo.errors import NoUndoExecutorError
from cqrs_ddd_advanced_core.undo.log import LoggedEvent
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.domain.events import DomainEvent

TCommand = TypeVar("TCommand", bound=Command)
TCommand_contra = TypeVar("TCommand_contra", bound=Command, contravariant=True)


class UndoExecutor(Protocol[TCommand_contra]):
    """Knows how to reverse one command type."""

    def inverse(self, command: TCommand_contra, events: Sequence[DomainEvent]) -> Command:
        """Return the command that reverses ``command``, which produced ``events``."""
        ...

    def commutes(self, command: TCommand_contra, intervening: Sequence[LoggedEvent]) -> bool:
        """Say whether the inverse still applies after ``intervening`` (the events since)."""
        ...


@dataclass(frozen=True, slots=True)
class FunctionExecutor(Generic[TCommand]):
    """An executor made of functions (see :func:`executor`)."""

    inverse_of: Callable[[TCommand, Sequence[DomainEvent]], Command]
    commutes_with: Callable[[TCommand, Sequence[LoggedEvent]], bool] | None

    def inverse(self, command: TCommand, events: Sequence[DomainEvent]) -> Command:
        """Return the command that reverses ``command``."""
        return self.inverse_of(command, events)

    def commutes(self, command: TCommand, intervening: Sequence[LoggedEvent]) -> bool:
        """Say whether the inverse still applies after ``intervening`` (no, unless told)."""
        if self.commutes_with is None:
            return False
        return self.commutes_with(command, intervening)


def executor(
    inverse: Callable[[TCommand, Sequence[DomainEvent]], Command],
    *,
    commutes: Callable[[TCommand, Sequence[LoggedEvent]], bool] | None = None,
) -> FunctionExecutor[TCommand]:
    """Build an executor from ``inverse(command, events)`` and, optionally, ``commutes``."""
    return FunctionExecutor(inverse, commutes)


class UndoExecutorRegistry:
    """Maps command types to their undo executors."""

    def __init__(self) -> None:
        self._executors: dict[type[Command], UndoExecutor[Any]] = {}

    def register(self, command_type: type[TCommand], undo: UndoExecutor[TCommand]) -> None:
        """Make ``undo`` the executor of ``command_type`` (and of its subclasses without one)."""
        self._executors[command_type] = undo

    def executor_for(self, command: Command) -> UndoExecutor[Any]:
        """Return the executor of ``command``'s type; ``NoUndoExecutorError`` naming it if none."""
        for kind in type(command).__mro__:
            found = self._executors.get(kind)
            if found is not None:
                return found
        raise NoUndoExecutorError(type(command).__name__)
