"""What a command produced: its result and its events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from cqrs_ddd_core.domain.events import DomainEvent

TResult = TypeVar("TResult")


@dataclass(frozen=True, slots=True)
class CommandResponse(Generic[TResult]):
    """The result of a command and the events it produced, in the order recorded.

    A handler may return one to hand over events it collected itself; the
    mediator returns one for every command, with every event stamped with the
    command's ``correlation_id`` and ``causation_id`` (the command id).
    """

    result: TResult
    events: Sequence[DomainEvent] = ()
    correlation_id: str | None = None
    causation_id: str | None = None
