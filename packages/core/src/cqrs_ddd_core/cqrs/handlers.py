"""Handler base classes for commands and queries."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from cqrs_ddd_core.cqrs.behaviors import PipelineBehavior
from cqrs_ddd_core.cqrs.messages import Command, Query

TCommand = TypeVar("TCommand", bound=Command)
TQuery = TypeVar("TQuery", bound=Query)
TResult = TypeVar("TResult")

CommandHandlerFunction = Callable[[Any], Awaitable[Any]]
"""A command handler as the registry keeps it: an async callable taking the command."""

QueryHandlerFunction = Callable[[Any], Awaitable[Any]]
"""A query handler as the registry keeps it: an async callable taking the query."""


class CommandHandler(ABC, Generic[TCommand]):
    """Handles one command type: loads aggregates, calls their methods, saves them.

    ``handle`` runs inside the unit of work the mediator opened; repositories
    used here join it. It returns the command's result (or a
    :class:`~cqrs_ddd_core.cqrs.CommandResponse` carrying result and events).
    Raising rolls back everything the command did. Repositories and other
    collaborators arrive through the constructor.

    A handler may wrap its own command in pipeline behaviours (a retry, say) by
    overriding :meth:`pipeline_behaviors`; they run around the unit of work, so
    each call of their ``next_step`` handles the command in a fresh one.
    """

    @abstractmethod
    async def handle(self, command: TCommand) -> Any:
        """Carry out ``command``."""

    def pipeline_behaviors(self) -> Sequence[PipelineBehavior]:
        """Return the behaviours to run around this handler's command (none by default).

        The registry asks for them on every send; the mediator runs them inside
        its own behaviours, first outermost. Only the handler registered for the
        command's type contributes.
        """
        return ()


class QueryHandler(ABC, Generic[TQuery, TResult]):
    """Answers one query type from a read model; changes nothing."""

    @abstractmethod
    async def handle(self, query: TQuery) -> TResult:
        """Return the answer to ``query``."""
