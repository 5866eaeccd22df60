"""``@aggregate_event_handler``: declare which method applies which event to an aggregate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from cqrs_ddd_core.domain.events import DomainEvent

TMethod = TypeVar("TMethod", bound=Callable[..., Any])

HANDLED_EVENT_ATTRIBUTE = "__cqrs_ddd_handles__"
"""The attribute the decorator sets on a handler method: the event class, or None to infer."""


class _Unset:
    """Marks a handler whose event type is read from its annotation."""


@overload
def aggregate_event_handler(
    event_type: type[DomainEvent] | None = None, /
) -> Callable[[TMethod], TMethod]: ...


@overload
def aggregate_event_handler(event_type: TMethod, /) -> TMethod: ...


def aggregate_event_handler(
    event_type: type[DomainEvent] | Callable[..., Any] | None = None, /
) -> Any:
    """Mark a method as the one that applies events of a type to the aggregate's state.

    Use it with the event class, ``@aggregate_event_handler(OrderCreated)``, or
    bare, ``@aggregate_event_handler``, to take the class from the annotation of
    the method's event parameter. A handler changes state only: it must not
    record events, do I/O or raise for events already stored (they are facts).
    Declarations are checked by :class:`EventValidator` and when the aggregate's
    handlers are first looked up.
    """
    if event_type is not None and not isinstance(event_type, type):
        setattr(event_type, HANDLED_EVENT_ATTRIBUTE, _Unset)
        return event_type

    def mark(method: TMethod) -> TMethod:
        setattr(method, HANDLED_EVENT_ATTRIBUTE, event_type if event_type is not None else _Unset)
        return method

    return mark


def declared_event_type(method: Callable[..., Any]) -> type[DomainEvent] | type[_Unset] | None:
    """Return what ``method`` was declared to handle: a class, the "infer" mark, or None."""
    declared: type[DomainEvent] | type[_Unset] | None = getattr(
        method, HANDLED_EVENT_ATTRIBUTE, None
    )
    return declared


INFER_FROM_ANNOTATION = _Unset
"""The mark of a handler declared without an event class."""
