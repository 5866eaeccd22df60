"""``SagaManager``: routes events to saga instances, stores their decisions, sends their commands.

For an event, for each saga type that listens to it:

1. the event's correlation key names the instance (``Saga.correlation_key``);
   none is found and the event starts the saga: a new instance is added (one
   per key: when two starting events race, the second finds the first's);
2. the saga decides (``Saga.receive``), and its new state, with the commands
   it decided recorded as steps, is saved in one transaction of the saga
   repository, checked against the version it was loaded at (on a conflict
   the event is applied again on the fresh state: an event is handled once);
3. the commands are sent through the command bus (the mediator), one at a
   time, and each step's outcome is saved: done; failed (the command's
   transaction rolled back: nothing happened); or unknown (it failed while
   committing, so it may have happened, and is compensated too);
4. when a step failed, the compensations of the steps whose effect happened
   run latest first, each retried with exponential back-off up to
   ``compensation_attempts`` times; one that keeps failing parks the saga, with
   its history, for an operator.

An instance whose stored state no longer reads back is parked as well
(``SagaRepository.park``): its events are ignored, with an error logged.

A crash between 2 and 3 leaves steps whose outcome was never saved:
:meth:`SagaManager.recover` (the saga worker calls it every
``recovery_interval``) sends them again, and finishes compensations that were
under way. Each command keeps its deterministic id, so a handler that
remembers the ids it handled gives each step one effect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from operator import methodcaller
from typing import Any, Protocol
from uuid import UUID, uuid4

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from cqrs_ddd_advanced_core.sagas.orchestration import (
    Compensation,
    Outgoing,
    Saga,
    SagaState,
    UnreadableSagaStateError,
)
from cqrs_ddd_advanced_core.sagas.repository import SagaRepository
from cqrs_ddd_advanced_core.sagas.timeouts import (
    SagaTimedOut,
    SagaTimeout,
    SagaTimers,
    running_timers,
)
from cqrs_ddd_advanced_core.scheduling.ports import CommandScheduler
from cqrs_ddd_core.cqrs.message_registry import MessageTypeRegistry
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.cqrs.outcome import CommandPhase, phase_of
from cqrs_ddd_core.cqrs.response import CommandResponse
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import ConcurrencyError
from cqrs_ddd_core.failpoints import async_failpoint

logger = logging.getLogger(__name__)


def _shape(state: SagaState) -> tuple[str, tuple[str, ...]]:
    """Return the status and the step outcomes: what a decision changes."""
    return state.status, tuple(record.outcome for record in state.steps)


def _seconds(saga_type: SagaType) -> float | None:
    return None if saga_type.deadline is None else saga_type.deadline.total_seconds()


SagaType = type[Saga[Any]]
SendCommand = Callable[[Command], Awaitable[Any]]

_CONFLICT_RETRIES = 20


@dataclass(frozen=True, slots=True)
class _Phase:
    """How a saga ends: compensating (undo latest first) or confirming (TCC, in order)."""

    status: str
    pending: Callable[[Saga[Any]], list[Compensation]]
    command: Callable[[Saga[Any], Compensation], Command]
    done: str
    failed: str
    failpoint: str


_COMPENSATING = _Phase(
    "compensating",
    methodcaller("pending_compensations"),
    Saga.compensation_command,
    "compensation_done",
    "compensation_failed",
    "saga.mid_compensation",
)
_CONFIRMING = _Phase(
    "confirming",
    methodcaller("pending_confirmations"),
    Saga.confirmation_command,
    "confirmation_done",
    "confirmation_failed",
    "saga.mid_confirmation",
)


class CommandBus(Protocol):
    """What a saga manager sends commands through: anything with ``send`` (a mediator)."""

    async def send(self, command: Command) -> Any:
        """Handle ``command`` in its own transaction."""
        ...


class SagaManager:
    """Runs ``sagas`` against ``repository``, sending their commands through ``command_bus``.

    ``message_registry`` must name every command the sagas send and every
    compensation they declare (stored with the saga's state).
    ``compensation_attempts`` and ``compensation_backoff`` (seconds) shape the
    retries of a failing compensation. ``scheduler`` (the command scheduler's
    store, on the saga repository's database) keeps the step timeouts and
    deadlines the sagas declare; ``clock`` gives Unix seconds for their due times.
    """

    def __init__(
        self,
        *,
        sagas: Sequence[SagaType],
        repository: SagaRepository,
        command_bus: CommandBus,
        message_registry: MessageTypeRegistry,
        compensation_attempts: int = 5,
        compensation_backoff: float = 0.5,
        scheduler: CommandScheduler | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sagas = tuple(sagas)
        self.timers = SagaTimers(scheduler, clock)
        self.repository = repository
        self.send: SendCommand = command_bus.send
        self.message_registry = message_registry
        self.compensation_attempts = compensation_attempts
        self.compensation_backoff = compensation_backoff
        self._types = {saga.name: saga for saga in self.sagas}
        for saga in self.sagas:
            repository.register_state_type(saga.name, saga.state_type)

    @property
    def event_types(self) -> tuple[type[DomainEvent], ...]:
        """Every event type one of the sagas listens to."""
        seen: dict[type[DomainEvent], None] = {}
        for saga in self.sagas:
            seen.update(dict.fromkeys(saga.listens_to))
        return tuple(seen)

    async def handle(self, event: DomainEvent) -> None:
        """Deliver ``event`` to every saga instance it belongs to, and run what they decide."""
        for saga_type in self.sagas:
            if not saga_type.handles(event):
                continue
            if event.causation_id is not None:  # a command's effect, the saga has not recorded it
                await async_failpoint("saga.after_step_effect_before_state")
            key = saga_type.correlation_key(event)
            if key is None:
                logger.warning(
                    "%s names no %s instance (no correlation key); ignored",
                    type(event).__name__,
                    saga_type.name,
                )
                continue
            try:
                decided = await self._decide(saga_type, key, event)
            except UnreadableSagaStateError as error:
                logger.error("%s; parked, and %s ignored", error, type(event).__name__)
                await self.repository.park(error.saga_id, error.reason)
                continue
            if decided is not None:
                saga_id, outgoing = decided
                await async_failpoint("saga.after_command_outbox_before_ack")
                await self._run(saga_type, saga_id, outgoing)

    async def recover(self, *, older_than: float) -> int:
        """Resume the instances left unchanged for ``older_than`` seconds; return how many.

        Steps whose outcome was never saved are sent again; compensations
        under way are finished.
        """
        resumed = 0
        for state in await self.repository.stalled(older_than):
            saga_type = self._types.get(state.saga_type)
            if saga_type is None:
                logger.error(
                    "saga %s of unknown type %r left alone", state.saga_id, state.saga_type
                )
                continue
            resumed += 1
            try:
                await self._resume(saga_type, state)
            except Exception:
                logger.exception("resuming saga %s (%s) failed", state.saga_id, state.saga_type)
        return resumed

    async def _resume(self, saga_type: SagaType, state: SagaState) -> None:
        if state.status == "compensating":
            await self._update(saga_type, state.saga_id, methodcaller("presume_unknown"))
            await self._compensate(saga_type, state.saga_id)
        elif state.status == "confirming":
            await self._confirm(saga_type, state.saga_id)
        else:
            saga = saga_type(state, self.message_registry)
            await self._run(saga_type, state.saga_id, saga.unacknowledged())

    # -- deciding ------------------------------------------------------------

    async def _decide(
        self, saga_type: SagaType, key: str, event: DomainEvent
    ) -> tuple[UUID, list[Outgoing]] | None:
        """Apply ``event`` to its instance and save; return the instance and its new commands."""
        for _ in range(_CONFLICT_RETRIES):
            uow = self.repository.unit_of_work()
            try:
                async with uow:
                    with command_scope(uow):
                        state = await self.repository.find(saga_type.name, key)
                        created = state is None
                        if state is None:
                            if not saga_type.can_start(event):
                                return None  # not started, and this event does not start it
                            state = saga_type.new_state(uuid4(), key)
                        before = None if created else SagaTimers.snapshot(state)
                        saga = saga_type(state, self.message_registry)
                        if not await saga.receive(event):
                            return None  # handled already, or the saga ended
                        if created:
                            if not await self.repository.add(saga.state):
                                continue  # another starting event won the race: apply to it
                        else:
                            await self.repository.save(saga.state)
                        await self.timers.sync(before, saga.state, _seconds(saga_type))
                    await uow.commit()
                return saga.state.saga_id, saga.take_outbox()
            except ConcurrencyError:
                continue  # another event changed the instance: apply this one again
        raise ConcurrencyError(f"saga {saga_type.name}:{key}", expected_version=0, actual_version=0)

    async def _update(
        self, saga_type: SagaType, saga_id: UUID, change: Callable[[Saga[Any]], Any]
    ) -> Saga[Any]:
        """Load the instance, apply ``change``, save; again on a version conflict.

        A ``change`` that returns False changed nothing: nothing is written.
        """
        for _ in range(_CONFLICT_RETRIES):
            uow = self.repository.unit_of_work()
            try:
                async with uow:
                    with command_scope(uow):
                        state = await self.repository.get(saga_id)
                        if state is None:
                            raise LookupError(f"saga {saga_id} is gone")
                        before = SagaTimers.snapshot(state)
                        saga = saga_type(state, self.message_registry)
                        if change(saga) is False:
                            return saga  # nothing to store
                        await self.repository.save(saga.state)
                        await self.timers.sync(before, saga.state, _seconds(saga_type))
                    await uow.commit()
                return saga
            except ConcurrencyError:
                continue
        raise ConcurrencyError(f"saga {saga_id}", expected_version=0, actual_version=0)

    # -- sending -------------------------------------------------------------------

    async def _run(self, saga_type: SagaType, saga_id: UUID, outgoing: list[Outgoing]) -> None:
        """Send each step's command and save its outcome; compensate when one fails."""
        for index, step in enumerate(outgoing):
            try:
                await self.send(step.command)
            except Exception as error:  # noqa: BLE001 - the outcome is recorded, never lost
                phase = phase_of(error)
                if phase is CommandPhase.AFTER_COMMIT:  # it took effect; what followed failed
                    logger.warning("after %s: %r", step.step, error)
                    saga = await self._update(
                        saga_type, saga_id, methodcaller("step_done", step.step)
                    )
                    if saga.state.status == "compensating":
                        await self._compensate(saga_type, saga_id)
                        return
                    continue
                reason = f"{type(error).__qualname__}: {error}"
                unknown = phase is CommandPhase.COMMIT
                unsent = [later.step for later in outgoing[index + 1 :]]
                failed = methodcaller(
                    "step_failed", step.step, reason, unknown=unknown, not_sent=unsent
                )
                await self._update(saga_type, saga_id, failed)
                await self._compensate(saga_type, saga_id)
                return
            await async_failpoint("saga.after_step_effect_before_state")
            saga = await self._update(saga_type, saga_id, methodcaller("step_done", step.step))
            if saga.state.status == "compensating":  # a later step failed while this one ran
                await self._compensate(saga_type, saga_id)
                return
            if saga.state.status == "confirming":
                await self._confirm(saga_type, saga_id)
                return

    async def _compensate(self, saga_type: SagaType, saga_id: UUID) -> None:
        """Run the pending compensations, latest step first, each until done or given up."""
        await self._finish(saga_type, saga_id, _COMPENSATING)

    async def _confirm(self, saga_type: SagaType, saga_id: UUID) -> None:
        """Send the pending confirmations, in step order, each until done or given up."""
        await self._finish(saga_type, saga_id, _CONFIRMING)

    async def _finish(self, saga_type: SagaType, saga_id: UUID, phase: _Phase) -> None:
        """Send ``phase``'s pending commands one by one, each retried with back-off.

        One that keeps failing parks the saga for an operator, with its history.
        """
        while True:
            state = await self.repository.get(saga_id)
            if state is None or state.status != phase.status:
                return
            saga = saga_type(state, self.message_registry)
            pending = phase.pending(saga)
            if not pending:
                return
            item = pending[0]
            try:
                command = phase.command(saga, item)
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(Exception),
                    stop=stop_after_attempt(self.compensation_attempts),
                    wait=wait_exponential(multiplier=self.compensation_backoff, max=30.0),
                    reraise=True,
                ):
                    with attempt:
                        await self.send(command)
            except Exception as error:  # noqa: BLE001 - parked for an operator, never dropped
                reason = f"{type(error).__qualname__}: {error}"
                logger.error(
                    "saga %s parked: %s %r failed: %s", saga_id, phase.status, item.step, reason
                )
                await self._update(
                    saga_type, saga_id, methodcaller(phase.failed, item.step, reason)
                )
                return
            await async_failpoint(phase.failpoint)
            await self._update(saga_type, saga_id, methodcaller(phase.done, item.step))

    async def time_out(self, command: SagaTimeout) -> CommandResponse[None]:
        """Handle a fired timeout or deadline: record what the saga decides.

        The decision is saved in the command's transaction; its
        ``SagaTimedOut`` event makes :meth:`after_time_out` act on it.
        """
        saga_type = self._types.get(command.saga_type)
        state = await self.repository.get(command.saga_id)
        if saga_type is None or state is None or state.is_final:
            return CommandResponse(result=None)  # gone, or ended in time
        before = SagaTimers.snapshot(state)
        unchanged = _shape(state)
        saga = saga_type(state, self.message_registry)
        if command.step is None:
            saga.on_deadline()
        else:
            if command.step not in running_timers(state):
                return CommandResponse(result=None)  # what it waited for came in time
            saga.on_timeout(command.step)
        if _shape(saga.state) == unchanged:
            return CommandResponse(result=None)  # the saga decided nothing (it compensates already)
        await self.repository.save(saga.state)
        await self.timers.sync(before, saga.state, _seconds(saga_type))
        timed_out = SagaTimedOut(
            saga_type=command.saga_type,
            saga_id=command.saga_id,
            step=command.step,
            aggregate_id=str(command.saga_id),
        )
        return CommandResponse(result=None, events=[timed_out])

    async def after_time_out(self, event: SagaTimedOut) -> None:
        """Run what a fired timeout decided: the compensations, or the steps it sent."""
        saga_type = self._types.get(event.saga_type)
        state = await self.repository.get(event.saga_id)
        if saga_type is None or state is None:
            return
        if state.status == "compensating":
            await self._compensate(saga_type, state.saga_id)
        elif state.status == "confirming":
            await self._confirm(saga_type, state.saga_id)
        elif state.status == "running":
            saga = saga_type(state, self.message_registry)
            await self._run(saga_type, state.saga_id, saga.unacknowledged())

    async def state_of(self, saga_type: SagaType, correlation_key: str) -> SagaState | None:
        """Return the state of ``saga_type``'s instance named ``correlation_key``, or None."""
        return await self.repository.find(saga_type.name, correlation_key)
