"""Checking an aggregate's event handlers: well declared, and present where required."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from cqrs_ddd_advanced_core.domain.event_handlers import (
    INFER_FROM_ANNOTATION,
    declared_event_type,
)
from cqrs_ddd_advanced_core.domain.exceptions import (
    InvalidEventHandlerError,
    MissingEventHandlerError,
    StrictValidationViolationError,
)
from cqrs_ddd_core.domain.events import DomainEvent


class EventValidator:
    """Finds and checks the ``@aggregate_event_handler`` methods of aggregate classes.

    Declarations are always checked: a handler must take exactly one event
    argument, its event type must be a ``DomainEvent`` subclass (given or
    annotated), and no two handlers of one class may claim the same event type;
    otherwise :class:`InvalidEventHandlerError` names the handler and the reason.

    Missing handlers depend on the mode. Lenient (the default, as in Axon): an
    event without a handler changes no state. Strict: applying such an event
    raises :class:`MissingEventHandlerError`, and :meth:`validate` raises
    :class:`StrictValidationViolationError` listing every event type an aggregate
    records (``recorded_event_types``) but cannot apply.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict

    def handlers_of(self, aggregate_type: type) -> Mapping[type[DomainEvent], str]:
        """Return the aggregate's handler method names by the event class they apply."""
        return _discover_handlers(aggregate_type)

    def missing_handlers(
        self, aggregate_type: type, event_types: Iterable[type[DomainEvent]]
    ) -> list[str]:
        """Return the names of the ``event_types`` the aggregate has no handler for."""
        handlers = self.handlers_of(aggregate_type)
        return [
            event_type.event_type
            for event_type in event_types
            if find_handler(handlers, event_type) is None
        ]

    def validate(
        self, aggregate_type: type, event_types: Iterable[type[DomainEvent]] | None = None
    ) -> list[str]:
        """Check the aggregate's declarations and its coverage of the events it records.

        ``event_types`` defaults to the class's ``recorded_event_types``. Returns
        the names of event types lacking a handler; in strict mode a non-empty
        result is raised as ``StrictValidationViolationError`` instead.
        """
        if event_types is None:
            event_types = getattr(aggregate_type, "recorded_event_types", ())
        missing = self.missing_handlers(aggregate_type, event_types)
        if missing and self.strict:
            raise StrictValidationViolationError(aggregate_type.__name__, missing)
        return missing

    def handler_for(self, aggregate_type: type, event: DomainEvent) -> str | None:
        """Return the name of the method that applies ``event``, or None when lenient.

        In strict mode a missing handler raises ``MissingEventHandlerError``.
        """
        name = find_handler(self.handlers_of(aggregate_type), type(event))
        if name is None and self.strict:
            raise MissingEventHandlerError(aggregate_type.__name__, event.event_type)
        return name


def find_handler(
    handlers: Mapping[type[DomainEvent], str], event_type: type[DomainEvent]
) -> str | None:
    """Return the handler for ``event_type`` or for its nearest base class that has one."""
    for candidate in event_type.__mro__:
        name = handlers.get(candidate)
        if name is not None:
            return name
    return None


@functools.cache
def _discover_handlers(aggregate_type: type) -> Mapping[type[DomainEvent], str]:
    handlers: dict[type[DomainEvent], str] = {}
    owners: dict[type[DomainEvent], type] = {}
    for owner in reversed(aggregate_type.__mro__):
        for name, member in vars(owner).items():
            declared = declared_event_type(member) if callable(member) else None
            if declared is None:
                continue
            event_type = _resolve_event_type(aggregate_type, name, member, declared)
            if owners.get(event_type) is owner:
                raise InvalidEventHandlerError(
                    aggregate_type.__name__,
                    name,
                    f"{handlers[event_type]} already handles {event_type.__name__}",
                )
            handlers[event_type] = name  # a subclass's handler overrides its base's
            owners[event_type] = owner
    return handlers


def _resolve_event_type(
    aggregate_type: type, name: str, method: Any, declared: object
) -> type[DomainEvent]:
    parameters = [
        parameter
        for parameter in inspect.signature(method).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(parameters) != 2:
        raise InvalidEventHandlerError(
            aggregate_type.__name__, name, "must take exactly one argument besides self: the event"
        )
    if declared is INFER_FROM_ANNOTATION:
        try:
            hints = typing.get_type_hints(method)
        except NameError as error:
            raise InvalidEventHandlerError(
                aggregate_type.__name__, name, f"cannot resolve its event annotation ({error})"
            ) from None
        declared = hints.get(parameters[1].name)
    if not (isinstance(declared, type) and issubclass(declared, DomainEvent)):
        raise InvalidEventHandlerError(
            aggregate_type.__name__,
            name,
            "its event type must be a DomainEvent subclass, given to the decorator "
            "or annotated on the event parameter",
        )
    return declared
