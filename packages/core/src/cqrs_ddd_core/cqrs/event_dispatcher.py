"""In-process delivery of committed events to the handlers subscribed to them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import EventDispatchError

TEvent = TypeVar("TEvent", bound=DomainEvent)
EventHandlerFunction = Callable[[Any], Awaitable[None]]
"""An in-process event handler: an async callable taking the event."""

_logger = logging.getLogger("cqrs_ddd_core.events")


class EventDispatcher:
    """Delivers events to async handlers subscribed by event class.

    A handler subscribed to a class receives events of that class and of its
    subclasses (subscribe to ``DomainEvent`` to receive all). Events are
    delivered one at a time, in order, each to its handlers in subscription
    order. The mediator calls :meth:`dispatch` only after a command committed, so
    handlers never see events of a rolled-back command.

    A failing handler does not stop the others. With ``on_error="log"`` (the
    default) its failure is logged with the event's type and id; the command
    already committed, so raising to the sender would invite a duplicate retry.
    With ``on_error="raise"`` the failures are raised together as
    :class:`~cqrs_ddd_core.exceptions.EventDispatchError` once every handler ran.
    """

    def __init__(self, *, on_error: Literal["log", "raise"] = "log") -> None:
        self._subscriptions: list[tuple[type[DomainEvent], EventHandlerFunction]] = []
        self._on_error = on_error

    def subscribe(
        self, event_type: type[TEvent], handler: Callable[[TEvent], Awaitable[None]]
    ) -> None:
        """Deliver every event of ``event_type`` (or a subclass) to ``handler``."""
        self._subscriptions.append((event_type, handler))

    def handles(
        self, event_type: type[TEvent]
    ) -> Callable[[Callable[[TEvent], Awaitable[None]]], Callable[[TEvent], Awaitable[None]]]:
        """Subscribe the decorated async function to ``event_type``."""

        def decorate(
            handler: Callable[[TEvent], Awaitable[None]],
        ) -> Callable[[TEvent], Awaitable[None]]:
            self.subscribe(event_type, handler)
            return handler

        return decorate

    def handlers_for(self, event: DomainEvent) -> list[EventHandlerFunction]:
        """Return the handlers that receive ``event``, in subscription order."""
        return [
            handler for event_type, handler in self._subscriptions if isinstance(event, event_type)
        ]

    async def dispatch(self, events: Sequence[DomainEvent]) -> None:
        """Deliver ``events`` in order; see the class docstring for failures."""
        failures: list[tuple[object, str, BaseException]] = []
        for event in events:
            for handler in self.handlers_for(event):
                try:
                    await handler(event)
                except Exception as error:
                    name = getattr(handler, "__qualname__", repr(handler))
                    _logger.exception(
                        "event handler %s failed on %s %s",
                        name,
                        event.event_type,
                        event.event_id,
                    )
                    failures.append((event, name, error))
        if failures and self._on_error == "raise":
            raise EventDispatchError(failures)
