"""The handler registry: which handler answers which command or query type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cqrs_ddd_core.cqrs.behaviors import PipelineBehavior
from cqrs_ddd_core.cqrs.handlers import (
    CommandHandler,
    CommandHandlerFunction,
    QueryHandler,
    QueryHandlerFunction,
)
from cqrs_ddd_core.cqrs.messages import Command, Query
from cqrs_ddd_core.exceptions import HandlerAlreadyRegisteredError, HandlerNotFoundError

THandler = TypeVar("THandler", bound=Callable[[Any], Awaitable[Any]])

CommandHandlerLike = CommandHandler[Any] | CommandHandlerFunction
QueryHandlerLike = QueryHandler[Any, Any] | QueryHandlerFunction


class HandlerRegistry:
    """Maps each command type to exactly one handler, and each query type likewise.

    A handler is a :class:`CommandHandler` / :class:`QueryHandler` instance or a
    plain async function. A type without its own handler falls back to the
    handler of its nearest registered base class. Registering a second handler
    for a type raises ``HandlerAlreadyRegisteredError``; asking for an
    unhandled type raises ``HandlerNotFoundError``.

    A registered command handler object may also contribute pipeline behaviours
    around its own command (a ``pipeline_behaviors()`` method, see
    :meth:`CommandHandler.pipeline_behaviors`); :meth:`command_behaviors_for`
    returns them, and the mediator runs them inside its own behaviours.
    """

    def __init__(self) -> None:
        self._command_handlers: dict[type[Command], CommandHandlerFunction] = {}
        self._command_handler_objects: dict[type[Command], object] = {}
        self._query_handlers: dict[type[Query], QueryHandlerFunction] = {}

    def register_command_handler(
        self, command_type: type[Command], handler: CommandHandlerLike
    ) -> None:
        """Make ``handler`` the handler of ``command_type``."""
        if command_type in self._command_handlers:
            raise HandlerAlreadyRegisteredError(command_type)
        self._command_handlers[command_type] = _as_function(handler)
        self._command_handler_objects[command_type] = handler

    def register_query_handler(self, query_type: type[Query], handler: QueryHandlerLike) -> None:
        """Make ``handler`` the handler of ``query_type``."""
        if query_type in self._query_handlers:
            raise HandlerAlreadyRegisteredError(query_type)
        self._query_handlers[query_type] = _as_function(handler)

    def command_handler(self, command_type: type[Command]) -> Callable[[THandler], THandler]:
        """Register the decorated async function as the handler of ``command_type``."""

        def decorate(function: THandler) -> THandler:
            self.register_command_handler(command_type, function)
            return function

        return decorate

    def query_handler(self, query_type: type[Query]) -> Callable[[THandler], THandler]:
        """Register the decorated async function as the handler of ``query_type``."""

        def decorate(function: THandler) -> THandler:
            self.register_query_handler(query_type, function)
            return function

        return decorate

    def command_handler_for(self, command_type: type[Command]) -> CommandHandlerFunction:
        """Return the handler of ``command_type`` (or of its nearest handled base)."""
        for candidate in command_type.__mro__:
            handler = self._command_handlers.get(candidate)
            if handler is not None:
                return handler
        raise HandlerNotFoundError(command_type)

    def command_behaviors_for(self, command_type: type[Command]) -> tuple[PipelineBehavior, ...]:
        """Return the behaviours the handler of ``command_type`` contributes around its command.

        They come from the handler object's ``pipeline_behaviors()``, asked on
        every call (first outermost); a handler without that method, a plain
        function and an unhandled type contribute none.
        """
        for candidate in command_type.__mro__:
            if candidate in self._command_handler_objects:
                contribute = getattr(
                    self._command_handler_objects[candidate], "pipeline_behaviors", None
                )
                return tuple(contribute()) if callable(contribute) else ()
        return ()

    def query_handler_for(self, query_type: type[Query]) -> QueryHandlerFunction:
        """Return the handler of ``query_type`` (or of its nearest handled base)."""
        for candidate in query_type.__mro__:
            handler = self._query_handlers.get(candidate)
            if handler is not None:
                return handler
        raise HandlerNotFoundError(query_type)

    @property
    def command_types(self) -> frozenset[type[Command]]:
        """Return the command types with a handler of their own."""
        return frozenset(self._command_handlers)

    @property
    def query_types(self) -> frozenset[type[Query]]:
        """Return the query types with a handler of their own."""
        return frozenset(self._query_handlers)


def _as_function(handler: CommandHandlerLike | QueryHandlerLike) -> Callable[[Any], Awaitable[Any]]:
    if isinstance(handler, CommandHandler | QueryHandler):
        return handler.handle
    return handler
