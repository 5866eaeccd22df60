"""Projectors: classes that turn events into read-model changes.

A projector names its projection (``projection_name``, the key of its
checkpoint) and declares which event types it handles, either with the
:func:`projects` decorator on methods or with a ``handles`` mapping from event
type (a class or its ``event_type`` name) to a method name. Each handler is
``async def handler(self, event, context)`` and writes through
``context.connection``: the transaction the worker opened for the batch, which
also stores the checkpoint, so a change and its checkpoint commit together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from cqrs_ddd_advanced_core.domain.exceptions import ProjectorRegistrationError
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.ports.event_store import StoredEvent

EventKey = type[DomainEvent] | str
"""How a projector names an event type: its class, or its ``event_type`` string."""

ProjectionHandler = Callable[[Any, "ProjectionContext"], Awaitable[None]]
"""A bound handler: ``await handler(event, context)``."""

_HANDLES_ATTRIBUTE = "__cqrs_ddd_projects__"

F = TypeVar("F", bound=Callable[..., Awaitable[None]])


@dataclass(frozen=True, slots=True)
class ProjectionContext:
    """What a handler gets beside the event: where to write, and where the event sits.

    ``connection`` is the storage's transaction handle for the batch: a
    SQLAlchemy ``AsyncConnection`` with the SQL storage, an
    :class:`~cqrs_ddd_advanced_core.adapters.memory.InMemoryProjectionTransaction`
    with the in-memory one. Read-model stores take it as their first argument.
    """

    projection: str
    connection: Any
    stored: StoredEvent

    @property
    def position(self) -> int:
        """The event's global position."""
        return self.stored.position

    @property
    def stream_id(self) -> str:
        """The stream the event belongs to."""
        return self.stored.stream_id

    @property
    def version(self) -> int:
        """The event's version in its stream."""
        return self.stored.version

    @property
    def occurred_at(self) -> datetime:
        """When the event happened."""
        return self.stored.occurred_at


def projects(*event_types: EventKey) -> Callable[[F], F]:
    """Mark a projector method as the handler of ``event_types`` (classes or names)."""
    if not event_types:
        raise ProjectorRegistrationError("?", "@projects needs at least one event type")

    def mark(method: F) -> F:
        existing: tuple[EventKey, ...] = getattr(method, _HANDLES_ATTRIBUTE, ())
        setattr(method, _HANDLES_ATTRIBUTE, (*existing, *event_types))
        return method

    return mark


class Projector:
    """Base class of projectors: declares handlers and how to reset the read model.

    ``projection_name`` defaults to the class name. ``reset(connection)`` must
    empty the read model for a rebuild; the default clears ``self.read_model``
    when the projector has one (any store with an async ``clear(connection)``)
    and refuses otherwise.
    """

    projection_name: ClassVar[str] = ""
    handles: ClassVar[Mapping[EventKey, str]] = {}

    @property
    def name(self) -> str:
        """The projection's name: its checkpoint's key."""
        return self.projection_name or type(self).__name__

    async def reset(self, connection: Any) -> None:
        """Empty the read model (inside the rebuild's transaction)."""
        read_model = getattr(self, "read_model", None)
        clear = getattr(read_model, "clear", None)
        if clear is None:
            raise ProjectorRegistrationError(
                self.name,
                "cannot be rebuilt: define reset(connection) or a read_model with clear()",
            )
        await clear(connection)

    def handlers(self) -> dict[EventKey, ProjectionHandler]:
        """Return the declared handlers, bound to this projector, by event key."""
        found: dict[EventKey, ProjectionHandler] = {}
        for attribute in dir(type(self)):
            keys = getattr(getattr(type(self), attribute, None), _HANDLES_ATTRIBUTE, ())
            for key in keys:
                self._add(found, key, getattr(self, attribute))
        for key, method_name in self.handles.items():
            method = getattr(self, method_name, None)
            if not callable(method):
                raise ProjectorRegistrationError(
                    self.name, f"handles maps {key!r} to {method_name!r}, which is not a method"
                )
            self._add(found, key, method)
        if not found:
            raise ProjectorRegistrationError(self.name, "declares no event handlers")
        return found

    def _add(
        self, found: dict[EventKey, ProjectionHandler], key: EventKey, method: ProjectionHandler
    ) -> None:
        if not isinstance(key, str) and not (
            isinstance(key, type) and issubclass(key, DomainEvent)
        ):
            raise ProjectorRegistrationError(
                self.name, f"{key!r} is neither a DomainEvent class nor an event type name"
            )
        name = key if isinstance(key, str) else key.event_type
        if any((k if isinstance(k, str) else k.event_type) == name for k in found):
            raise ProjectorRegistrationError(self.name, f"handles {name!r} twice")
        found[key] = method
