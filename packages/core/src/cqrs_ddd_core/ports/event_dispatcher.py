"""The port through which the mediator hands committed events on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cqrs_ddd_core.domain.events import DomainEvent


class EventDispatcherPort(Protocol):
    """Delivers events to in-process handlers after their command committed.

    Named with a ``Port`` suffix because :class:`cqrs_ddd_core.cqrs.EventDispatcher`
    is the framework's implementation of it.
    """

    async def dispatch(self, events: Sequence[DomainEvent]) -> None:
        """Deliver ``events``, in order, to every handler subscribed to each type."""
        ...
