"""``SagaTestKit``: drive sagas with events, a fake clock and simulated crashes; check the outcome.

The kit runs the sagas under test as an application would (a ``SagaManager``
over an in-memory saga repository and command scheduler), with the kit itself
as the command bus: each command a saga sends is recorded (``sent``); its
*effect* is recorded the first time its id reaches the handler (``effects``),
as a handler that remembers the ids it handled would; and the events it
replies with (:meth:`SagaTestKit.reply`) are delivered to the sagas, as the
mediator's event dispatch would, each time the command reaches the handler:
a handler that receives a command again replies again (the same events, with
the same ids), so that a saga resumed after a crash hears what it missed.
Write your own handlers that way: until events are published through an
outbox, a command's events are dispatched in process after its commit, and a
crash in between loses them.

* :meth:`~SagaTestKit.publish` delivers events; :meth:`~SagaTestKit.advance`
  moves the clock and fires the timeouts that fall due.
* :meth:`~SagaTestKit.fail` makes a command fail (its handler raises, nothing
  happens); :meth:`~SagaTestKit.crash` makes the process die at a command,
  before its effect (between the saga's state and the send) or after it
  (between the effect and the saga recording it; on a compensation, in the
  middle of compensating). A crash ends the delivery under way: the events a
  crashed command committed are lost with the process, and the events given
  to :meth:`~SagaTestKit.publish` not yet delivered are delivered again by
  :meth:`~SagaTestKit.recover` (the upstream delivers at least once).
* :meth:`~SagaTestKit.recover` starts a new process: it delivers those
  events, lets the recovery interval pass and runs a recovery round.
* :meth:`~SagaTestKit.verify` checks what must hold after any of that: there
  is a saga, every saga ended, no command took effect twice, every step whose
  effect happened and that declares a compensation was compensated exactly
  once, in reverse order, when the saga compensated, and no forward step took
  effect after its saga began compensating.

::

    kit = SagaTestKit(OrderSaga)
    kit.reply(ReserveItems, lambda c: [ItemsReserved(order_id=c.order_id)])
    kit.crash(ReserveItems, after_effect=True)
    await kit.publish(OrderCreated(order_id="o1"))
    await kit.recover()
    await kit.verify()
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

from cqrs_ddd_advanced_core.adapters.memory import InMemoryCommandScheduler, InMemorySagaRepository
from cqrs_ddd_advanced_core.sagas import (
    Saga,
    SagaBootstrap,
    SagaManager,
    SagaRecoveryWorker,
    SagaState,
)
from cqrs_ddd_advanced_core.sagas.orchestration import command_id_for
from cqrs_ddd_advanced_core.sagas.timeouts import SagaTimedOut, SagaTimeout
from cqrs_ddd_advanced_core.scheduling import CommandSchedulerService
from cqrs_ddd_core import Command, CommandResponse, DomainEvent, InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.message_registry import MessageTypeRegistry
from cqrs_ddd_core.cqrs.scope import command_scope

Reply = Callable[[Any], Sequence[DomainEvent]]
"""Builds the events a command's handler publishes, from the command."""

CrashPoint = Literal["before_effect", "after_effect"]

_IDENTITY_FIELDS = frozenset({"command_id", "correlation_id", "saga_id", "branch"})


class SimulatedCrash(BaseException):
    """The process the kit simulates died here; raised through everything, caught by the kit."""


class FakeClock:
    """Unix seconds that move only when told (:meth:`SagaTestKit.advance`)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """Return the current time."""
        return self.now


class _LearningRegistry(MessageTypeRegistry):
    """A message registry that learns each command type the first time a saga stores one."""

    def encode(self, command: Command) -> tuple[str, dict[str, Any]]:
        self.register(type(command))
        return super().encode(command)


@dataclass
class _Rules:
    """What the kit does with commands of one type."""

    reply: Reply | None = None
    failures: list[BaseException] = field(default_factory=list)
    crashes: list[CrashPoint] = field(default_factory=list)


class SagaTestKit:
    """Runs ``sagas`` in a simulated process the test steers (see the module docs)."""

    def __init__(
        self,
        *sagas: type[Saga[Any]],
        recovery_interval: float = 60.0,
        compensation_attempts: int = 3,
    ) -> None:
        self.sagas = sagas
        self.recovery_interval = recovery_interval
        self.compensation_attempts = compensation_attempts
        self.clock = FakeClock()
        self.repository = InMemorySagaRepository(clock=self.clock)
        self.scheduler = InMemoryCommandScheduler(clock=self.clock)
        self.registry = _LearningRegistry([SagaTimeout])
        self.sent: list[Command] = []
        """Every command the sagas sent, in order, repeats included."""
        self.effects: list[Command] = []
        """The commands that took effect, in order: once per command id."""
        self.attempts: list[Command] = []
        """Every command that reached its handler (each attempt, repeats included)."""
        self.undelivered: list[DomainEvent] = []
        """Events given to :meth:`publish` that a crash kept from the sagas, for :meth:`recover`."""
        self.crashes = 0
        """How many simulated crashes happened."""
        self._rules: dict[type[Command], _Rules] = defaultdict(_Rules)
        self._done: set[UUID] = set()
        self._depth = 0
        self.process = self._start()

    # -- steering ----------------------------------------------------------------

    def reply(self, command_type: type[Command], events: Reply) -> SagaTestKit:
        """Make ``command_type``'s handler publish ``events(command)`` when it takes effect."""
        self._rules[command_type].reply = events
        return self

    def fail(self, command_type: type[Command], error: BaseException, *, times: int = 1) -> None:
        """Make the next ``times`` commands of ``command_type`` fail with ``error``, no effect."""
        self._rules[command_type].failures.extend([error] * times)

    def crash(self, command_type: type[Command], *, after_effect: bool = False) -> None:
        """Make the process die at the next ``command_type``: before its effect, or after it."""
        self._rules[command_type].crashes.append(
            "after_effect" if after_effect else "before_effect"
        )

    async def publish(self, *events: DomainEvent) -> None:
        """Deliver ``events`` to the sagas, in order; a crash keeps the rest for :meth:`recover`."""
        undelivered = await self._deliver(list(events))
        self.undelivered.extend(undelivered)

    async def advance(self, delay: timedelta) -> int:
        """Let ``delay`` pass and fire the timeouts that fell due; return how many fired."""
        self.clock.now += delay.total_seconds()
        service = CommandSchedulerService(
            self.scheduler,
            self.send,
            message_registry=MessageTypeRegistry([SagaTimeout]),
            max_attempts=1,
        )
        fired = 0
        while ran := await self._surviving(service.run_due(owner="saga-test-kit")):
            fired += ran
        return fired

    async def recover(self) -> int:
        """Start a new process: deliver the published events a crash kept, then recover.

        The recovery interval passes first, so every instance a crash left in
        flight is resumed. Returns how many instances the round resumed.
        """
        self.process = self._start()
        undelivered, self.undelivered = self.undelivered, []
        self.undelivered.extend(await self._deliver(undelivered))
        self.clock.now += self.recovery_interval
        return await self._surviving(self.process.worker.run_once())

    # -- looking -------------------------------------------------------------------

    async def state(self, saga: type[Saga[Any]], correlation_key: str) -> SagaState:
        """Return the state of ``saga``'s instance named ``correlation_key`` (it must exist)."""
        state = await self.repository.find(saga.name, correlation_key)
        if state is None:
            raise AssertionError(f"no {saga.name} instance for {correlation_key!r}")
        return state

    def commands(self) -> list[str]:
        """Return the type names of the commands sent, in order."""
        return [type(command).__name__ for command in self.sent]

    def expect_commands(self, *expected: Command) -> None:
        """Assert the sagas sent ``expected``, in order (ids and saga fields are not compared)."""
        _compare("sent", self.sent, expected)

    def expect_effects(self, *expected: Command) -> None:
        """Assert the commands that took effect are ``expected``, in order."""
        _compare("took effect", self.effects, expected)

    async def verify(self, *, ended: bool = True) -> None:
        """Assert what must hold after any events, failures and crashes (see the module docs).

        ``ended``: also require every instance to be completed or compensated.
        """
        states = await self.repository.all()
        if not states:
            raise AssertionError("saga check failed: no saga instance was created")
        effects = [command.command_id for command in self.effects]
        problems = saga_problems(states, effects, ended=ended)
        if problems:
            raise AssertionError("saga check failed:\n  " + "\n  ".join(problems))

    # -- the simulated process ------------------------------------------------------------

    def _start(self) -> SagaBootstrap:
        manager = SagaManager(
            sagas=self.sagas,
            repository=self.repository,
            command_bus=self,
            message_registry=self.registry,
            compensation_attempts=self.compensation_attempts,
            compensation_backoff=0.0,
            scheduler=self.scheduler,
            clock=self.clock,
        )
        return SagaBootstrap(manager, SagaRecoveryWorker(manager, interval=self.recovery_interval))

    async def send(self, command: Command) -> CommandResponse[None]:
        """Take a command a saga sends: record it, apply the test's rules, deliver the reply."""
        if isinstance(command, SagaTimeout):
            return await self._time_out(command)
        self.sent.append(command)
        rules = self._rules[type(command)]
        crash = rules.crashes.pop(0) if rules.crashes else None
        if crash == "before_effect":
            raise SimulatedCrash(f"before {type(command).__name__} took effect")
        if rules.failures:
            raise rules.failures.pop(0)
        self.attempts.append(command)
        if command.command_id not in self._done:  # a handler that remembers ids acts once…
            self._done.add(command.command_id)
            self.effects.append(command)
        events = list(rules.reply(command)) if rules.reply is not None else []
        if crash == "after_effect":  # …and its events die with the process before dispatch
            raise SimulatedCrash(f"after {type(command).__name__} took effect")
        self._depth += 1
        try:
            await self._deliver(events)  # …but replies each time, so a resent step moves on
        finally:
            self._depth -= 1
        return CommandResponse(result=None, events=events)

    async def _time_out(self, command: SagaTimeout) -> CommandResponse[None]:
        uow = InMemoryUnitOfWork()
        async with uow:
            with command_scope(uow, causation_id=str(command.command_id)) as scope:
                response = await self.process.manager.time_out(command)
                await scope.run_before_commit()
            await uow.commit()
        for event in response.events:
            if isinstance(event, SagaTimedOut):
                await self.process.manager.after_time_out(event)
        return response

    async def _deliver(self, events: list[DomainEvent]) -> list[DomainEvent]:
        """Deliver ``events``; return those a crash kept from the sagas.

        At the top (:meth:`publish`, :meth:`recover`) a crash is caught here
        and the events from the one it hit on are returned, for the upstream to
        deliver again. Inside a command (its reply) the crash goes on up: it
        kills the whole simulated process.
        """
        top = self._depth == 0
        self._depth += 1
        try:
            for index, event in enumerate(events):
                try:
                    await self.process.manager.handle(event)
                except SimulatedCrash:
                    if not top:
                        raise
                    self.crashes += 1
                    return events[index:]
            return []
        finally:
            self._depth -= 1

    async def _surviving(self, work: Any) -> int:
        try:
            return int(await work)
        except SimulatedCrash:
            self.crashes += 1
            return 0


def saga_problems(
    states: Iterable[SagaState], effects: Sequence[UUID], *, ended: bool = True
) -> list[str]:
    """Return what is wrong with sagas ``states``, given the ids of the commands that took effect.

    ``effects`` lists the ids of the commands that took effect, in the order
    they did (a handler's record). Wrong: an instance not ended (with
    ``ended``), a step that took effect and declares a compensation left
    uncompensated by a compensated saga, a completed saga with a step
    compensated, compensations not in the reverse order of the steps, a
    forward step that took effect after its saga's first compensation, a
    command that took effect twice.
    """
    problems: list[str] = []
    position: dict[UUID, int] = {}
    for index, command_id in enumerate(effects):
        if command_id in position:
            problems.append(f"command {command_id} took effect twice")
        position.setdefault(command_id, index)
    for state in states:
        name = f"{state.saga_type} {state.correlation_key!r}"
        if ended and state.status not in ("completed", "compensated"):
            problems.append(f"{name} is {state.status} ({state.reason or 'no reason'})")
        undone: list[tuple[int, int]] = []
        undo_positions = [
            position[undo]
            for record in state.steps
            if (undo := command_id_for(state.saga_id, record.step, "compensate")) in position
        ]
        for record in state.steps:
            if record.compensation is None:
                continue
            undo = command_id_for(state.saga_id, record.step, "compensate")
            happened = record.command_id in position
            if happened and state.status == "compensated" and undo not in position:
                problems.append(f"{name}: step {record.step!r} took effect, never compensated")
            if happened and state.status == "completed" and undo in position:
                problems.append(f"{name}: completed, yet step {record.step!r} was compensated")
            if happened and undo in position:
                undone.append((position[undo], position[record.command_id]))
        if undo_positions:
            first_undo = min(undo_positions)
            late = [
                record.step
                for record in state.steps
                if position.get(record.command_id, -1) > first_undo
            ]
            if late:
                problems.append(f"{name}: step {late[0]!r} took effect after compensating began")
        # latest step first: the compensations run opposite to the order the steps took effect
        forwards = [forward for _, forward in sorted(undone)]
        if forwards != sorted(forwards, reverse=True):
            problems.append(f"{name}: compensations not in reverse order of the steps")
    return problems


def _compare(what: str, actual: Sequence[Command], expected: Sequence[Command]) -> None:
    def shown(command: Command) -> tuple[str, dict[str, Any]]:
        fields = command.model_dump(exclude=set(_IDENTITY_FIELDS))
        return type(command).__name__, fields

    got = [shown(command) for command in actual]
    wanted = [shown(command) for command in expected]
    if got != wanted:
        raise AssertionError(f"commands {what}:\n  got:      {got}\n  expected: {wanted}")


__all__ = ["FakeClock", "SagaTestKit", "SimulatedCrash", "saga_problems"]
