"""Saga timeouts and deadlines, as scheduled commands.

A step may declare a timeout (``Saga.send(..., timeout=...)``, or
``SagaBuilder.on(..., timeout=...)``), and a saga type a deadline for the
whole process (``Saga.deadline``, or ``SagaBuilder(name, deadline=...)``).
Each is a :class:`SagaTimeout` command stored in the command scheduler in the
same transaction as the saga state that sent the step (or created the
instance), with a deterministic schedule id, and cancelled, in the
transaction that records the step's outcome (or the saga's end), when it is no
longer needed.

When one fires, the scheduler worker sends the :class:`SagaTimeout` through
the mediator; its handler (registered by ``bootstrap_sagas``) records on the
saga, in the command's transaction, what the saga decides
(:meth:`~.orchestration.Saga.on_timeout`: by default, the step failed with an
unknown outcome, and the saga compensates; :meth:`~.orchestration.Saga.on_deadline`:
the saga compensates what it did). The handler's :class:`SagaTimedOut` event,
dispatched after the commit, makes the manager run the compensations; a
crash before that leaves a compensating saga, which recovery finishes. A
timeout that fires for a step that completed meanwhile changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID, uuid5

from cqrs_ddd_advanced_core.domain.exceptions import (
    ScheduleNotCancellableError,
    ScheduleNotFoundError,
)
from cqrs_ddd_advanced_core.sagas.orchestration import SagaDefinitionError, SagaState
from cqrs_ddd_advanced_core.scheduling.ports import CommandScheduler, NewSchedule
from cqrs_ddd_core.cqrs.message_registry import MessageTypeRegistry
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.domain.events import DomainEvent


class SagaTimeout(Command):
    """Fires a saga's step timeout (``step`` set) or its deadline (``step`` None)."""

    saga_type: str
    saga_id: UUID
    step: str | None = None


class SagaTimedOut(DomainEvent):
    """A saga's timeout or deadline fired and the saga recorded what it decided."""

    saga_type: str
    saga_id: UUID
    step: str | None = None


def timer_id(saga_id: UUID, step: str | None) -> UUID:
    """Return the schedule id of a saga's step timeout (or, for ``step`` None, its deadline)."""
    return uuid5(saga_id, "deadline" if step is None else f"{step}:timeout")


def running_timers(state: SagaState) -> frozenset[str]:
    """Return the steps whose timeout runs in ``state``.

    A step's timeout runs, while the saga runs, from the moment it is sent
    until a later step is taken (the saga reacted to what followed it) or the
    saga ends: it bounds the step's command and the wait for the reply that
    moves the saga on.
    """
    if state.status != "running":
        return frozenset()
    last = len(state.steps) - 1
    return frozenset(
        record.step
        for index, record in enumerate(state.steps)
        if record.timeout is not None
        and (record.outcome == "sent" or (record.outcome == "done" and index == last))
    )


@dataclass(frozen=True, slots=True)
class TimerSnapshot:
    """Which step timeouts ran and whether the saga had ended, before a change."""

    running: frozenset[str]
    final: bool


class SagaTimers:
    """Keeps a saga's scheduled timeouts in step with its state, in the saga's transaction.

    ``scheduler`` is the command scheduler's store (``InMemoryCommandScheduler``,
    ``SQLAlchemyCommandScheduler`` on the saga repository's database); ``clock``
    gives Unix seconds (a test's fake clock).
    """

    def __init__(self, scheduler: CommandScheduler | None, clock: Callable[[], float]) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self._registry = MessageTypeRegistry([SagaTimeout])

    @staticmethod
    def snapshot(state: SagaState) -> TimerSnapshot:
        """Return what :meth:`sync` compares against: the timeouts running, and the end."""
        return TimerSnapshot(running_timers(state), state.is_final)

    async def sync(
        self, before: TimerSnapshot | None, after: SagaState, deadline: float | None
    ) -> None:
        """Schedule the timeouts ``after`` runs and ``before`` did not; cancel the ones stopped."""
        was_running = frozenset() if before is None else before.running
        now_running = running_timers(after)
        for record in after.steps:
            starts = record.step in now_running and record.step not in was_running
            if starts and record.timeout is not None:
                await self._schedule(after, record.step, record.timeout)
            elif record.step in was_running and record.step not in now_running:
                await self._cancel(timer_id(after.saga_id, record.step))
        if deadline is None:
            return
        if before is None and not after.is_final:
            await self._schedule(after, None, deadline)
        elif after.is_final and (before is None or not before.final):
            await self._cancel(timer_id(after.saga_id, None))

    async def _schedule(self, state: SagaState, step: str | None, seconds: float) -> None:
        scheduler = self._required(state, step)
        identifier = timer_id(state.saga_id, step)
        command = SagaTimeout(
            command_id=identifier, saga_type=state.saga_type, saga_id=state.saga_id, step=step
        )
        command_type, payload = self._registry.encode(command)
        due_at = self.clock() + seconds
        await scheduler.add(NewSchedule(identifier, command_type, payload, due_at))

    async def _cancel(self, schedule_id: UUID) -> None:
        if self.scheduler is None:
            return
        # it may have fired, or be firing: its handler then finds the step settled
        with contextlib.suppress(ScheduleNotCancellableError, ScheduleNotFoundError):
            await self.scheduler.cancel(schedule_id)

    def _required(self, state: SagaState, step: str | None) -> CommandScheduler:
        if self.scheduler is None:
            what = "a deadline" if step is None else f"a timeout on step {step!r}"
            raise SagaDefinitionError(
                state.saga_type,
                f"it declares {what}, but the saga manager has no scheduler: "
                "pass scheduler= to bootstrap_sagas",
            )
        return self.scheduler
