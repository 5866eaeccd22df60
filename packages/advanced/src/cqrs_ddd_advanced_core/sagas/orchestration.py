"""Sagas: what a saga instance knows, and how it decides what to send and what to undo.

A saga (a process manager) reacts to events of one business process, and sends
commands. Its state, :class:`SagaState`, is stored between events. It records
each step the saga took: the command sent and, if the step can be undone, the
command that undoes it.

:class:`Saga` is the base of every saga, declarative (:class:`~.builder.SagaBuilder`
builds a subclass) or written by hand. A subclass says which events it listens
to (``listens_to``), which of them start a new instance (``starts_with``, the
first listened type by default) and how an event names its instance
(``correlate_by``, a field of the event; the event's aggregate id by default,
then its correlation id). Its :meth:`Saga.handle` decides, for one event, what
to send (:meth:`Saga.send`, with the step's name and its compensation) and
whether the process is complete (:meth:`Saga.complete`).

The decisions are pure: a saga object only records what it decided, and the
saga manager stores the state and the commands together, sends them, and
reports back each step's outcome (:meth:`Saga.step_done`,
:meth:`Saga.step_failed`). When a step fails, :meth:`Saga.step_failed` returns
the compensations to run: those of the steps whose effect happened (or may
have: a step whose outcome is unknown is compensated too, so its compensation
must tolerate "nothing to undo"), latest first. Each compensation's outcome is
reported with :meth:`Saga.compensation_done` or
:meth:`Saga.compensation_failed`; when all are done the saga is
``compensated``; when one fails for good it is ``parked`` for an operator.

Every command a saga sends has a deterministic ``command_id``, derived from
the saga's id, the step and the kind (``forward`` or ``compensate``): a step
sent again after a crash is the same command, which its handler can recognise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from cqrs_ddd_core.cqrs.message_registry import MessageTypeRegistry
from cqrs_ddd_core.cqrs.messages import Command
from cqrs_ddd_core.domain.events import DomainEvent
from cqrs_ddd_core.exceptions import CqrsDddError

SagaStatus = Literal["running", "confirming", "compensating", "completed", "compensated", "parked"]
"""Where a saga instance is; ``completed``, ``compensated`` and ``parked`` are final.

``confirming``: every step is done and the confirmations of the steps that
declared one (TCC branches) are being sent."""

StepOutcome = Literal["sent", "done", "failed", "unknown", "confirmed", "compensated"]
"""What became of a step: sent (outcome not yet known), done, failed (no effect),
unknown (the command's commit may or may not have happened), confirmed (its
confirmation took effect), compensated."""

CommandKind = Literal["forward", "confirm", "compensate"]
"""A step's command, the command that confirms it (TCC), or the command that undoes it."""

FINAL_STATUSES: frozenset[str] = frozenset({"completed", "compensated", "parked"})
ACTIVE_STATUSES: tuple[str, ...] = ("running", "confirming", "compensating")
"""The statuses of an instance that has not ended."""


class SagaError(CqrsDddError):
    """A saga is declared or used in a way that cannot work."""


class SagaDefinitionError(SagaError):
    """A saga's declaration is inconsistent; ``saga`` names it, ``reason`` says why."""

    def __init__(self, saga: str, reason: str) -> None:
        self.saga = saga
        self.reason = reason
        super().__init__(f"saga {saga!r}: {reason}")


class SagaStepError(SagaError):
    """A step outcome was reported that the saga's state cannot take (unknown step, wrong order)."""

    def __init__(self, saga: str, saga_id: UUID, reason: str) -> None:
        self.saga = saga
        self.saga_id = saga_id
        self.reason = reason
        super().__init__(f"saga {saga!r} ({saga_id}): {reason}")


class SagaRetryError(SagaError):
    """A saga instance cannot be retried: unknown, not parked, or parked with no phase to resume."""

    def __init__(self, saga_id: UUID, reason: str) -> None:
        self.saga_id = saga_id
        self.reason = reason
        super().__init__(f"saga {saga_id}: {reason}")


def retry_phase(status: str, parked_from: str | None, reason: str | None) -> SagaStatus | None:
    """Return the phase a parked instance goes back to when retried, or None when it has none.

    An instance parked by a failing confirmation goes back to ``confirming``,
    one parked by a failing compensation to ``compensating`` (read from
    ``parked_from``, or from the reason of instances parked before it was
    recorded). One parked because its state did not read back has none.
    """
    if status != "parked":
        return None
    if parked_from in ("confirming", "compensating"):
        return cast("SagaStatus", parked_from)
    if (reason or "").startswith("confirmation of "):
        return "confirming"
    if (reason or "").startswith("compensation of "):
        return "compensating"
    return None


class UnreadableSagaStateError(SagaError):
    """A stored saga state does not read back into its class; names the saga and its id.

    The saga manager parks such an instance (its events are ignored, with an
    error logged) instead of failing every event and every recovery round.
    """

    def __init__(self, saga_type: str, saga_id: UUID, reason: str) -> None:
        self.saga_type = saga_type
        self.saga_id = saga_id
        self.reason = reason
        super().__init__(
            f"saga {saga_type!r} {saga_id!s}: its stored state is unreadable: {reason}"
        )


def command_id_for(saga_id: UUID, step: str, kind: CommandKind) -> UUID:
    """Return the deterministic id of a saga's command: the same for the same step and kind."""
    return uuid5(saga_id, f"{step}:{kind}")


class StoredCommand(BaseModel):
    """A command kept in a saga's state: its registered type name and its fields as JSON."""

    model_config = ConfigDict(frozen=True)

    command_type: str
    payload: dict[str, Any]


class StepRecord(BaseModel):
    """One step a saga took: its command, what became of it, and how to undo it."""

    model_config = ConfigDict(frozen=True)

    step: str
    command: StoredCommand
    command_id: UUID
    outcome: StepOutcome = "sent"
    compensation: StoredCommand | None = None
    confirmation: StoredCommand | None = None
    timeout: float | None = None
    """Seconds the step may take before it counts as failed (a scheduled timeout)."""


class HistoryEntry(BaseModel):
    """One line of a saga's history, for operators: when, what, and about which step."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    what: str
    step: str | None = None


class SagaState(BaseModel):
    """What a saga instance knows between events.

    ``correlation_key`` names the instance within its saga type (an order id);
    ``steps`` are the steps taken, in order; ``handled_events`` the ids of the
    events it already handled (an event delivered twice is handled once);
    ``awaiting`` says what a running instance waits for (operators see it);
    ``data`` is free for the saga's own use (subclass ``SagaState`` for typed
    fields); ``reason`` says why it compensates or is parked; ``version``
    counts the stored changes (the store checks it, so two handlers never
    overwrite each other).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    saga_id: UUID
    saga_type: str
    correlation_key: str
    status: SagaStatus = "running"
    steps: list[StepRecord] = Field(default_factory=list)
    handled_events: list[UUID] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    history: list[HistoryEntry] = Field(default_factory=list)
    reason: str | None = None
    awaiting: str | None = None
    """What the instance waits for while running (the next event of a declared saga)."""
    parked_from: SagaStatus | None = None
    """The phase a parked instance stopped in (``confirming`` or ``compensating``): where a
    retry (``cqrs-ddd sagas retry``) sends it back to."""
    complete_when_done: bool = False
    version: int = 0

    @property
    def is_final(self) -> bool:
        """Whether the saga ended (completed, compensated or parked)."""
        return self.status in FINAL_STATUSES

    @property
    def in_flight(self) -> bool:
        """Whether the instance waits on its own commands, which recovery resumes if it stalls.

        In flight: a step's outcome, a compensation or a confirmation is
        outstanding. An instance waiting for an event is not in flight (its
        deadline, when it declares one, ends the wait).
        """
        return self.status in ("compensating", "confirming") or (
            self.status == "running" and any(record.outcome == "sent" for record in self.steps)
        )

    def step(self, name: str) -> StepRecord | None:
        """Return the record of step ``name``, or None."""
        return next((record for record in self.steps if record.step == name), None)


TState = TypeVar("TState", bound=SagaState)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A command a saga decided to send, for step ``step``."""

    step: str
    command: Command


@dataclass(frozen=True, slots=True)
class Compensation:
    """A compensation to run: the step it undoes and the stored command that undoes it."""

    step: str
    command: StoredCommand


class Saga(Generic[TState]):
    """The base of every saga: subclass it, declare what it listens to, write :meth:`handle`.

    The manager builds one object per event, around the instance's state,
    calls :meth:`handle`, and takes what it decided with :meth:`take_outbox`.
    """

    name: ClassVar[str] = ""
    """The saga type's stable name (stored with each instance); the class name by default."""

    listens_to: ClassVar[Sequence[type[DomainEvent]]] = ()
    """The event types this saga handles; any other event is ignored."""

    starts_with: ClassVar[Sequence[type[DomainEvent]]] = ()
    """The event types that create an instance (the first of ``listens_to`` by default)."""

    correlate_by: ClassVar[str | None] = None
    """The event field that names the instance; the aggregate id, then the correlation id."""

    state_type: ClassVar[type[SagaState]] = SagaState
    """The class of this saga's state."""

    cancel_failed_steps: ClassVar[bool] = False
    """Whether a step that failed is compensated too (TCC: a cancel bars a late duplicate try)."""

    deadline: ClassVar[timedelta | None] = None
    """How long an instance may take in all; when it passes, the saga compensates."""

    step_timeouts: ClassVar[bool] = False
    """Whether the saga's steps declare timeouts (so the manager needs a scheduler)."""

    @classmethod
    def declares_timers(cls) -> bool:
        """Whether instances need the command scheduler (step timeouts or a deadline)."""
        return cls.step_timeouts or cls.deadline is not None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__ or not cls.name:
            cls.name = cls.__name__
        if not cls.starts_with and cls.listens_to:
            cls.starts_with = (cls.listens_to[0],)

    def __init__(self, state: TState, registry: MessageTypeRegistry) -> None:
        """Wrap ``state``; ``registry`` names and encodes the commands the saga sends."""
        self.state = state
        self.registry = registry
        self._outbox: list[Outgoing] = []

    # -- routing --------------------------------------------------------------

    @classmethod
    def handles(cls, event: DomainEvent) -> bool:
        """Whether this saga listens to ``event``'s type."""
        return isinstance(event, tuple(cls.listens_to))

    @classmethod
    def can_start(cls, event: DomainEvent) -> bool:
        """Whether ``event`` may create an instance."""
        return isinstance(event, tuple(cls.starts_with))

    @classmethod
    def correlation_key(cls, event: DomainEvent) -> str | None:
        """Return the key of the instance ``event`` belongs to, or None when it names none."""
        if cls.correlate_by is not None:
            value = getattr(event, cls.correlate_by, None)
            return None if value is None else str(value)
        return event.aggregate_id or event.correlation_id

    @classmethod
    def new_state(cls, saga_id: UUID, key: str) -> SagaState:
        """Return the state of a new instance named ``key``."""
        return cls.state_type(saga_id=saga_id, saga_type=cls.name, correlation_key=key)

    # -- what handle() uses -----------------------------------------------------

    async def handle(self, event: DomainEvent) -> None:
        """Decide what to do about ``event``: send commands, complete. Override this."""
        raise NotImplementedError(f"saga {self.name!r} does not say how to handle events")

    def send(
        self,
        command: Command,
        *,
        step: str,
        compensate: Command | None = None,
        confirm: Command | None = None,
        timeout: timedelta | None = None,
    ) -> None:
        """Send ``command`` as step ``step``; ``compensate`` is the command that undoes it.

        ``confirm`` (a TCC branch's confirmation) is sent once every step of
        the saga is done, before the saga completes. The command gets the
        step's deterministic id, and so do its compensation and confirmation,
        which are stored (through the message registry) with the step. A step
        is taken once: a step name the saga already took is refused with
        ``SagaStepError``. ``timeout``: how long the step may take before
        :meth:`on_timeout` decides (a scheduled command, cancelled when the
        step's outcome is recorded).
        """
        if self.state.step(step) is not None:
            raise SagaStepError(self.name, self.state.saga_id, f"step {step!r} was taken already")
        forward = self._identified(command, step, "forward")
        record = StepRecord(
            step=step,
            command=self._stored(forward),
            command_id=forward.command_id,
            compensation=None
            if compensate is None
            else self._stored(self._identified(compensate, step, "compensate")),
            confirmation=None
            if confirm is None
            else self._stored(self._identified(confirm, step, "confirm")),
            timeout=None if timeout is None else timeout.total_seconds(),
        )
        self._outbox.append(Outgoing(step, forward))
        self.state.steps = [*self.state.steps, record]
        self._note(f"sent {type(command).__name__}", step)

    def complete(self) -> None:
        """Mark the process complete once every step sent is done (at once if they are)."""
        self.state.complete_when_done = True
        self._complete_if_done()

    # -- what the manager uses ----------------------------------------------------

    def take_outbox(self) -> list[Outgoing]:
        """Return the commands decided since the last call, once."""
        outbox, self._outbox = self._outbox, []
        return outbox

    async def receive(self, event: DomainEvent) -> bool:
        """Handle ``event`` unless the instance ended or already handled it; say whether it did.

        Only a running saga decides anything: one compensating or confirming
        takes the event as the outcome of the step that caused it, and sends
        no new step (a late reply must not start forward work while the saga
        undoes or confirms).
        """
        if self.state.is_final or event.event_id in self.state.handled_events:
            return False
        self._acknowledge(event)
        if self.state.status == "running":
            await self.handle(event)
        self.state.handled_events = [*self.state.handled_events, event.event_id]
        self._note(f"handled {type(event).__name__}")
        return True

    def _acknowledge(self, event: DomainEvent) -> None:
        """Take ``event`` as proof that the step whose command caused it took effect.

        The mediator dispatches a command's events after its commit, stamped
        with the command's id as causation id: the step is done, recorded with
        the event instead of in a write of its own.
        """
        if event.causation_id is None:
            return
        for record in self.state.steps:
            if (
                record.outcome in ("sent", "unknown")
                and str(record.command_id) == event.causation_id
            ):
                self.step_done(record.step)

    def step_done(self, step: str) -> bool:
        """Record that ``step``'s command took effect; complete the saga when it was the last.

        A step reported done while the saga compensates (its outcome came late)
        joins the compensations to run. A report about a step done already (its
        event said so first), confirmed or compensated (its late outcome was
        presumed) changes nothing. Returns whether the state changed.
        """
        if self._record(step).outcome in ("done", "confirmed", "compensated"):
            return False
        self._set_outcome(step, "done")
        self._note("step done", step)
        self._complete_if_done()
        return True

    def _complete_if_done(self) -> None:
        if (
            self.state.status == "running"
            and self.state.complete_when_done
            and not self._outbox
            and all(record.outcome == "done" for record in self.state.steps)
        ):
            if self.pending_confirmations():
                self.state.status = "confirming"
                self._note("confirming")
                return
            self.state.status = "completed"
            self._note("completed")

    def pending_confirmations(self) -> list[Compensation]:
        """Return the confirmations still to send, in the order the steps were taken."""
        if self.state.status not in ("running", "confirming"):
            return []
        return [
            Compensation(record.step, record.confirmation)
            for record in self.state.steps
            if record.outcome == "done" and record.confirmation is not None
        ]

    def confirmation_command(self, confirmation: Compensation) -> Command:
        """Return the command of ``confirmation``, rebuilt through the message registry."""
        return self._decoded(confirmation.command, confirmation.step)

    def confirmation_done(self, step: str) -> bool:
        """Record that ``step`` was confirmed; the saga completes when nothing is left.

        Reported again (two runners confirmed it), it changes nothing: False.
        """
        record = self._record(step)
        if record.outcome == "confirmed":
            return False
        if record.outcome != "done" or record.confirmation is None:
            raise SagaStepError(
                self.name, self.state.saga_id, f"step {step!r} is {record.outcome}: not to confirm"
            )
        self._set_outcome(step, "confirmed")
        self._note("confirmed", step)
        if self.state.status == "confirming" and not self.pending_confirmations():
            self.state.status = "completed"
            self._note("completed")
        return True

    def confirmation_failed(self, step: str, reason: str) -> None:
        """Park the saga for an operator: ``step`` could not be confirmed."""
        self._record(step)
        self.state.parked_from = self.state.status
        self.state.status = "parked"
        self.state.reason = f"confirmation of {step!r} failed: {reason}"
        self._note(self.state.reason, step)

    def step_failed(
        self, step: str, reason: str, *, unknown: bool = False, not_sent: Sequence[str] = ()
    ) -> list[Compensation]:
        """Record that ``step`` failed; return the compensations to run, latest first.

        ``unknown``: the command may have taken effect (its commit's outcome is
        not known), so the step is compensated too. A failure reported for a
        step whose effect is known (done, confirmed or compensated: a second
        send of it failed) changes nothing. ``not_sent``: steps decided with it
        that this process did not send; another (a recovery worker) may have,
        so they count as unknown, compensated by commands that tolerate
        "nothing to undo".
        """
        if self._record(step).outcome in ("done", "confirmed", "compensated"):
            self._note(f"a second send failed, the step stands: {reason}", step)
            return []
        self._set_outcome(step, "unknown" if unknown else "failed")
        for name in not_sent:
            if self._record(name).outcome == "sent":
                self._set_outcome(name, "unknown")
                self._note("not sent here: outcome unknown", name)
        self.state.status = "compensating"
        self.state.reason = reason
        self._note(f"step failed: {reason}", step)
        self._settle_compensation()
        return self.pending_compensations()

    def presume_unknown(self) -> None:
        """Take every step whose outcome never came as unknown (compensated too).

        For a compensating saga resumed after a crash: the process that sent
        those steps is gone, so their outcome will never be reported.
        """
        for record in self.state.steps:
            if record.outcome == "sent":
                self._set_outcome(record.step, "unknown")
                self._note("outcome presumed unknown", record.step)
        self._settle_compensation()

    def on_timeout(self, step: str) -> None:
        """Decide what a step whose timeout fired means; override to decide otherwise.

        By default the saga compensates: a step whose outcome never came counts
        as failed with an unknown outcome (it may still take effect), one done
        whose reply never came is undone with the steps before it; earlier
        steps whose outcome never came (sent by a process that died) count as
        unknown too.
        """
        reason = f"step {step!r} timed out"
        if self._record(step).outcome == "sent":
            self.step_failed(step, reason, unknown=True)
        else:
            self.state.status = "compensating"
            self.state.reason = reason
            self._note(reason, step)
        self.presume_unknown()

    def on_deadline(self) -> None:
        """Decide what the saga's passed deadline means; override to decide otherwise.

        By default a running saga compensates what it did; the steps whose
        outcome never came count as unknown. A saga confirming (every step
        done) goes on confirming.
        """
        if self.state.status != "running":
            return
        self.state.status = "compensating"
        self.state.reason = "the deadline passed"
        self._note("deadline passed")
        self.presume_unknown()

    def pending_compensations(self) -> list[Compensation]:
        """Return the compensations still to run, latest step first.

        Steps whose effect happened or may have (outcome unknown) and that
        declared a compensation; a step without one has nothing to undo. The
        list stops at the latest step whose outcome has not come yet: the
        steps before it are undone only after it is (once its outcome comes,
        or is presumed unknown), so that compensations always run latest first.
        """
        pending = []
        for record in reversed(self.state.steps):
            if record.outcome == "sent":
                break
            if record.outcome in self._undoable and record.compensation is not None:
                pending.append(Compensation(record.step, record.compensation))
        return pending

    @property
    def _undoable(self) -> tuple[str, ...]:
        if self.cancel_failed_steps:
            return ("done", "unknown", "failed")
        return ("done", "unknown")

    def unacknowledged(self) -> list[Outgoing]:
        """Return the steps sent whose outcome was never reported (a crash came between).

        Sending them again is safe: each is the same command, with the same id.
        """
        return [
            Outgoing(record.step, self._decoded(record.command, record.step))
            for record in self.state.steps
            if record.outcome == "sent"
        ]

    def compensation_command(self, compensation: Compensation) -> Command:
        """Return the command of ``compensation``, rebuilt through the message registry."""
        return self._decoded(compensation.command, compensation.step)

    def _decoded(self, stored: StoredCommand, step: str) -> Command:
        return self.registry.decode(
            stored.command_type,
            stored.payload,
            where=f"saga {self.state.saga_id} step {step!r}",
        )

    def compensation_done(self, step: str) -> bool:
        """Record that ``step`` was undone; the saga is compensated when nothing is left.

        Reported again (two runners undid it), it changes nothing: False.
        """
        record = self._record(step)
        if record.outcome == "compensated":
            return False
        if record.outcome not in self._undoable:
            raise SagaStepError(
                self.name, self.state.saga_id, f"step {step!r} is {record.outcome}: nothing to undo"
            )
        self._set_outcome(step, "compensated")
        self._note("compensated", step)
        self._settle_compensation()
        return True

    def _settle_compensation(self) -> None:
        """End a compensation with nothing left to undo and no step whose outcome is awaited."""
        if (
            self.state.status == "compensating"
            and not self.pending_compensations()
            and all(record.outcome != "sent" for record in self.state.steps)
        ):
            self.state.status = "compensated"
            self._note("compensation finished")

    def compensation_failed(self, step: str, reason: str) -> None:
        """Park the saga for an operator: ``step`` could not be undone."""
        self._record(step)
        self.state.parked_from = self.state.status
        self.state.status = "parked"
        self.state.reason = f"compensation of {step!r} failed: {reason}"
        self._note(self.state.reason, step)

    # -- inside ----------------------------------------------------------------------

    def _identified(self, command: Command, step: str, kind: CommandKind) -> Command:
        update: dict[str, Any] = {"command_id": command_id_for(self.state.saga_id, step, kind)}
        if isinstance(command, BranchCommand):
            update |= {"saga_id": self.state.saga_id, "branch": step}
        return command.model_copy(update=update)

    def _stored(self, command: Command) -> StoredCommand:
        command_type, fields = self.registry.encode(command)
        return StoredCommand(command_type=command_type, payload=fields)

    def _record(self, step: str) -> StepRecord:
        record = self.state.step(step)
        if record is None:
            raise SagaStepError(self.name, self.state.saga_id, f"no step {step!r} was taken")
        return record

    def _set_outcome(self, step: str, outcome: StepOutcome) -> None:
        record = self._record(step)
        self.state.steps = [
            item.model_copy(update={"outcome": outcome}) if item is record else item
            for item in self.state.steps
        ]

    def _note(self, what: str, step: str | None = None) -> None:
        entry = HistoryEntry(at=datetime.now(UTC), what=what, step=step)
        self.state.history = [*self.state.history, entry]
        if self.state.status != "running" and self.state.awaiting is not None:
            self.state.awaiting = None  # only a running instance waits for an event


# -- TCC ---------------------------------------------------------------------------


class BranchCommand(Command):
    """A command of a TCC branch: its try, its confirm or its cancel.

    The saga fills in ``saga_id`` and ``branch`` when it sends it, so the
    branch's handler can pass the branch barrier
    (:mod:`~cqrs_ddd_advanced_core.sagas.barrier`), which keys each operation
    by (saga id, branch, operation).
    """

    saga_id: UUID | None = None
    branch: str | None = None


@dataclass(frozen=True, slots=True)
class TccBranch:
    """One branch of a TCC saga: the command that tries it, and those that confirm and cancel it.

    The try reserves (holds stock, puts money aside); the confirm makes the
    reservation final; the cancel releases it. Each runs its handler behind
    the branch barrier, so that each takes effect once, a cancel that comes
    before its try undoes nothing, and a try that comes after its cancel does
    nothing.
    """

    name: str
    try_command: BranchCommand
    confirm: BranchCommand
    cancel: BranchCommand


class TccSaga(Saga[TState]):
    """A saga of try-confirm-cancel branches: all tried, then all confirmed or all cancelled.

    Subclass it, declare ``listens_to`` (the event that starts the
    transaction) and write :meth:`branches`. The manager sends each branch's
    try in order; when every try is done it sends every confirm and the saga
    completes; when a try fails, every branch attempted is cancelled, latest
    first, the failed one included (its cancel, a null compensation, bars a
    duplicate of its try that might still arrive), and the saga ends
    ``compensated``. Confirms and cancels that fail are retried with back-off,
    then the saga is parked for an operator.
    """

    cancel_failed_steps = True

    def branches(self, event: DomainEvent) -> Sequence[TccBranch]:
        """Return the branches of the transaction ``event`` starts. Override this."""
        raise NotImplementedError(f"TCC saga {self.name!r} does not say what its branches are")

    async def handle(self, event: DomainEvent) -> None:
        """Try every branch of the transaction ``event`` starts, then complete once confirmed."""
        if not self.can_start(event):
            return
        for branch in self.branches(event):
            self.send(
                branch.try_command,
                step=branch.name,
                compensate=branch.cancel,
                confirm=branch.confirm,
            )
        self.complete()
