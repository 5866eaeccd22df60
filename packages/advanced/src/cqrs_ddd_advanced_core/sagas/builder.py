"""``SagaBuilder``: a saga declared step by step, built into a ``Saga`` subclass.

::

    OrderSaga = (
        SagaBuilder("OrderFulfillment")
        .on(OrderCreated, send=lambda e: ReserveItems(order_id=e.order_id), step="reserving",
            compensate=lambda e: CancelReservation(order_id=e.order_id))
        .on(ItemsReserved, send=lambda e: ChargePayment(order_id=e.order_id), step="charging")
        .on(PaymentCharged, send=lambda e: ConfirmOrder(order_id=e.order_id), step="confirming",
            complete=True)
        .build()
    )

Each ``.on`` says what the saga does when an event of that type arrives: the
command to ``send`` (built from the event), the ``step`` it is (its name, the
event type's name by default), the command that undoes it (``compensate``,
built from the same event), whether the process is complete once it is done
(``complete``), and how long the step may take (``timeout``; a saga-wide
``deadline`` is given to the builder itself). The first ``.on`` names the
event that starts an instance; ``.correlate_by(field)`` names the event field
that says which instance an event belongs to (the event's aggregate id by
default). A step is taken once: an event whose step the instance already took
(a starting event delivered for an instance that exists) is ignored, with a
warning. ``build()`` checks the declaration and raises ``SagaDefinitionError``
naming what is wrong: no step, one event type declared twice, a step name used
twice, a ``compensate`` without a ``send``, a ``timeout`` without a ``send``
or not positive, or steps declared after a ``complete=True`` step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cqrs_ddd_advanced_core.sagas.orchestration import Saga, SagaDefinitionError, SagaState
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.domain.events import DomainEvent

logger = logging.getLogger(__name__)

CommandFactory = Callable[[Any], Command]
"""Builds a command from the event that triggers a step."""


@dataclass(frozen=True, slots=True)
class _Rule:
    event_type: type[DomainEvent]
    send: CommandFactory | None
    step: str | None
    compensate: CommandFactory | None
    complete: bool
    timeout: timedelta | None


class SagaBuilder:
    """Declares a saga named ``name``, one event type at a time; :meth:`build` makes the class."""

    def __init__(self, name: str, *, deadline: timedelta | None = None) -> None:
        """Start declaring saga ``name``; ``deadline``: how long an instance may take in all."""
        if not name:
            raise SagaDefinitionError("?", "a saga needs a name")
        if deadline is not None and deadline <= timedelta(0):
            raise SagaDefinitionError(name, f"deadline={deadline}: must be positive")
        self.name = name
        self.deadline = deadline
        self._rules: list[_Rule] = []
        self._correlate_by: str | None = None

    def on(
        self,
        event_type: type[DomainEvent],
        *,
        send: CommandFactory | None = None,
        step: str | None = None,
        compensate: CommandFactory | None = None,
        complete: bool = False,
        timeout: timedelta | None = None,
    ) -> SagaBuilder:
        """Say what the saga does when an ``event_type`` event arrives; return the builder.

        ``timeout``: how long the step may take; when it passes first, the step
        counts as failed (outcome unknown) and the saga compensates.
        """
        self._rules.append(_Rule(event_type, send, step, compensate, complete, timeout))
        return self

    def correlate_by(self, field: str) -> SagaBuilder:
        """Name the event field that says which instance an event belongs to."""
        self._correlate_by = field
        return self

    def build(self) -> type[Saga[SagaState]]:
        """Check the declaration and return the saga class (``SagaDefinitionError`` if wrong)."""
        rules = self._checked()
        by_type = {rule.event_type: rule for rule in rules}

        async def handle(saga: Saga[SagaState], event: DomainEvent) -> None:
            rule = next((rule for kind, rule in by_type.items() if isinstance(event, kind)), None)
            if rule is None:
                return
            step = rule.step or rule.event_type.__name__
            if rule.send is not None and saga.state.step(step) is not None:
                logger.warning(
                    "saga %s (%s): step %r was taken already; %s ignored",
                    saga.name,
                    saga.state.saga_id,
                    step,
                    type(event).__name__,
                )
                return
            if rule.send is not None:
                saga.send(
                    rule.send(event),
                    step=step,
                    compensate=None if rule.compensate is None else rule.compensate(event),
                    timeout=rule.timeout,
                )
            if rule.complete:
                saga.state.awaiting = None  # the last event came: only outcomes are left
                saga.complete()
            else:
                following = rules[rules.index(rule) + 1 :]
                saga.state.awaiting = following[0].event_type.__name__ if following else None

        namespace: dict[str, Any] = {
            "name": self.name,
            "listens_to": tuple(by_type),
            "starts_with": (rules[0].event_type,),
            "correlate_by": self._correlate_by,
            "handle": handle,
            "deadline": self.deadline,
            "step_timeouts": any(rule.timeout is not None for rule in rules),
            "__doc__": f"The saga {self.name!r}, declared with SagaBuilder.",
            "__module__": __name__,
        }
        built: type[Saga[SagaState]] = type(self.name, (Saga,), namespace)
        return built

    def _checked(self) -> list[_Rule]:
        if not self._rules:
            raise SagaDefinitionError(self.name, "no step declared: call .on(...) first")
        seen_types: set[type[DomainEvent]] = set()
        seen_steps: set[str] = set()
        for position, rule in enumerate(self._rules):
            event = rule.event_type.__name__
            if rule.event_type in seen_types:
                raise SagaDefinitionError(
                    self.name, f"{event} is declared twice: one event type, one reaction"
                )
            seen_types.add(rule.event_type)
            if rule.timeout is not None and (rule.send is None or rule.timeout <= timedelta(0)):
                raise SagaDefinitionError(
                    self.name,
                    f"the reaction to {event} has timeout={rule.timeout}: a timeout needs a "
                    "step that sends, and must be positive",
                )
            if rule.compensate is not None and rule.send is None:
                raise SagaDefinitionError(
                    self.name, f"the reaction to {event} compensates but sends nothing to undo"
                )
            if rule.send is not None:
                step = rule.step or event
                if step in seen_steps:
                    raise SagaDefinitionError(self.name, f"step {step!r} is declared twice")
                seen_steps.add(step)
            if rule.complete and position < len(self._rules) - 1:
                later = ", ".join(
                    other.event_type.__name__ for other in self._rules[position + 1 :]
                )
                raise SagaDefinitionError(
                    self.name,
                    f"the reaction to {event} completes the saga, but reactions follow it "
                    f"({later})",
                )
        return self._rules
