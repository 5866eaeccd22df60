"""``ConflictResolved``: the event that records a merged state after a concurrency conflict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from cqrs_ddd_core.domain.events import DomainEvent

IDENTITY_FIELDS = frozenset({"id", "version"})
"""The fields a resolved state never carries: the aggregate's identity and its version."""


class ConflictResolved(DomainEvent):
    """An aggregate took the state that resolving a concurrency conflict produced.

    A conflict-resolving handler (``ConflictCommandHandler``) merges a command's
    ``changes`` into the freshly loaded aggregate; the merged aggregate carries
    no events of its own, so the handler records this one on the fresh
    aggregate and saves it against the current version. ``state`` holds every
    field but ``id`` and ``version``, as JSON values; applying the event sets
    those fields (:func:`apply_resolved_state`), so replaying a stream rebuilds
    the merged state. Event-sourced aggregates apply it through a handler the
    ``EventSourcedAggregateMixin`` provides; register the class in your
    ``EventTypeRegistry`` so that it can be loaded.
    """

    state: dict[str, Any]
    changes: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, resolved: BaseModel, changes: Mapping[str, Any]) -> ConflictResolved:
        """Return the event recording ``resolved``'s state and the ``changes`` merged in."""
        return cls(
            state=resolved.model_dump(mode="json", exclude=set(IDENTITY_FIELDS)),
            changes=to_jsonable_python(dict(changes)),
        )


def apply_resolved_state(aggregate: BaseModel, state: Mapping[str, Any]) -> None:
    """Set each of the aggregate's fields named in ``state``, validated as on assignment.

    JSON values become the fields' types again (a string becomes a ``Decimal``
    or a ``datetime``). ``id`` and ``version``, and names that are not fields
    of the aggregate's class (any more), are left alone.
    """
    fields = type(aggregate).model_fields
    validator = type(aggregate).__pydantic_validator__
    for name, value in state.items():
        if name in fields and name not in IDENTITY_FIELDS:
            # validate like an assignment even where the model does not validate assignments
            validator.validate_assignment(aggregate, name, value)
