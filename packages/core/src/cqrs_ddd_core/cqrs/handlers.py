"""Handler base classes for commands and queries."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

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
    """

    @abstractmethod
    async def handle(self, command: TCommand) -> Any:
        """Carry out ``command``."""


class QueryHandler(ABC, Generic[TQuery, TResult]):
    """Answers one query type from a read model; changes nothing."""

    @abstractmethod
    async def handle(self, query: TQuery) -> TResult:
        """Return the answer to ``query``."""
