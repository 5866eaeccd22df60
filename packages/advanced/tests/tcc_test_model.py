"""A trip booked with TCC (funds and a seat), and the checks every barrier must pass.

``Travel`` wires the ``TripBooking`` saga to a mediator whose branch handlers
pass a barrier and record their effect in the same unit of work (``record``:
staged in memory, or a row in the SQL tests). The ``check_*`` functions are
the scenarios, run by the memory tests and by the SQL ones on both databases.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

from cqrs_ddd_advanced_core.sagas import (
    BarrierOutcome,
    BranchBarrier,
    BranchCommand,
    BranchOperation,
    SagaBootstrap,
    SagaRepository,
    TccBranch,
    TccSaga,
    as_branch_operation,
    bootstrap_sagas,
)
from cqrs_ddd_core import (
    CommandResponse,
    DomainEvent,
    EventDispatcher,
    HandlerRegistry,
    Mediator,
    MessageTypeRegistry,
)
from cqrs_ddd_core.ports.unit_of_work import UnitOfWork


class HoldFunds(BranchCommand):
    account: str


class CaptureFunds(BranchCommand):
    account: str


class ReleaseFunds(BranchCommand):
    account: str


class HoldSeat(BranchCommand):
    flight: str


class BookSeat(BranchCommand):
    flight: str


class ReleaseSeat(BranchCommand):
    flight: str


class TripRequested(DomainEvent):
    trip_id: str
    account: str
    flight: str


class TripBooking(TccSaga[Any]):
    listens_to = (TripRequested,)
    correlate_by = "trip_id"

    def branches(self, event: DomainEvent) -> Sequence[TccBranch]:
        assert isinstance(event, TripRequested)
        account, flight = event.account, event.flight
        return [
            TccBranch(
                "funds",
                try_command=HoldFunds(account=account),
                confirm=CaptureFunds(account=account),
                cancel=ReleaseFunds(account=account),
            ),
            TccBranch(
                "seat",
                try_command=HoldSeat(flight=flight),
                confirm=BookSeat(flight=flight),
                cancel=ReleaseSeat(flight=flight),
            ),
        ]


BRANCH_COMMANDS = (HoldFunds, CaptureFunds, ReleaseFunds, HoldSeat, BookSeat, ReleaseSeat)

Record = Callable[[str], Awaitable[None]]
"""Record an effect (the command type's name) in the current unit of work."""

Effects = Callable[[], Awaitable[list[str]]]
"""Read the effects committed so far, in order."""


class Travel:
    """Branch handlers behind ``barrier``; a full flight refuses its seat hold."""

    def __init__(
        self,
        barrier: BranchBarrier,
        uow_factory: Callable[[], UnitOfWork],
        record: Record,
    ) -> None:
        self.barrier = barrier
        self.record = record
        self.full_flights: set[str] = set()
        self.fail_after_barrier: set[str] = set()
        self.outcomes: list[tuple[str, BarrierOutcome]] = []
        self.dispatcher = EventDispatcher(on_error="raise")
        registry = HandlerRegistry()
        self.mediator = Mediator(
            registry=registry, uow_factory=uow_factory, event_dispatcher=self.dispatcher
        )
        for command_type in BRANCH_COMMANDS:
            registry.register_command_handler(command_type, self._handle)

    async def _handle(self, command: BranchCommand) -> CommandResponse[None]:
        name = type(command).__name__
        outcome = await self.barrier.enter(command)
        self.outcomes.append((name, outcome))
        if not outcome.proceed:
            return CommandResponse(result=None)
        if isinstance(command, HoldSeat) and command.flight in self.full_flights:
            raise LookupError(f"flight {command.flight} is full")
        await self.record(name)
        if name in self.fail_after_barrier:
            self.fail_after_barrier.discard(name)
            raise ConnectionError(f"{name}: the bank hung up")
        return CommandResponse(result=None)

    def sagas(self, repository: SagaRepository) -> SagaBootstrap:
        result = bootstrap_sagas(
            sagas=[TripBooking],
            repository=repository,
            command_bus=self.mediator,
            message_registry=MessageTypeRegistry(list(BRANCH_COMMANDS)),
            event_dispatcher=self.dispatcher,
        )
        result.manager.compensation_backoff = 0.001
        return result

    async def request(self, trip_id: str, flight: str = "LH123") -> None:
        await self.dispatcher.dispatch(
            [TripRequested(trip_id=trip_id, account="acc-1", flight=flight, aggregate_id=trip_id)]
        )


def operation(command: BranchCommand, saga_id: UUID, branch: str) -> BranchCommand:
    """``command`` as the saga sends it: holds are tries, releases cancels, the rest confirms."""
    name = type(command).__name__
    kind: BranchOperation = (
        "try" if name.startswith("Hold") else "cancel" if name.startswith("Release") else "confirm"
    )
    return as_branch_operation(command, saga_id=saga_id, branch=branch, operation=kind)


# -- the scenarios ---------------------------------------------------------------------


async def check_a_trip_is_tried_then_confirmed(
    travel: Travel, repository: SagaRepository, effects: Effects
) -> None:
    sagas = travel.sagas(repository)
    await travel.request("trip-1")

    assert await effects() == ["HoldFunds", "HoldSeat", "CaptureFunds", "BookSeat"]
    state = await sagas.manager.state_of(TripBooking, "trip-1")
    assert state is not None
    assert state.status == "completed"
    assert [(record.step, record.outcome) for record in state.steps] == [
        ("funds", "confirmed"),
        ("seat", "confirmed"),
    ]


async def check_a_failed_try_cancels_the_branches_tried(
    travel: Travel, repository: SagaRepository, effects: Effects
) -> None:
    travel.full_flights.add("LH999")
    sagas = travel.sagas(repository)
    await travel.request("trip-2", flight="LH999")

    assert await effects() == ["HoldFunds", "ReleaseFunds"]
    state = await sagas.manager.state_of(TripBooking, "trip-2")
    assert state is not None
    assert state.status == "compensated"
    assert [(record.step, record.outcome) for record in state.steps] == [
        ("funds", "compensated"),
        ("seat", "compensated"),  # its failed try is cancelled too: a late duplicate is barred
    ]
    assert ("ReleaseSeat", BarrierOutcome.NULL_COMPENSATION) in travel.outcomes


async def check_each_operation_takes_effect_once(travel: Travel, effects: Effects) -> None:
    saga_id = uuid4()
    for command in (HoldFunds(account="a"), CaptureFunds(account="a")):
        sent = operation(command, saga_id, "funds")
        await travel.mediator.send(sent)
        await travel.mediator.send(sent)
    for command in (HoldSeat(flight="f"), ReleaseSeat(flight="f")):
        sent = operation(command, saga_id, "seat")
        await travel.mediator.send(sent)
        await travel.mediator.send(sent)

    assert await effects() == ["HoldFunds", "CaptureFunds", "HoldSeat", "ReleaseSeat"]
    assert [outcome for _, outcome in travel.outcomes] == [
        BarrierOutcome.PROCEED,
        BarrierOutcome.DUPLICATE,
    ] * 4


async def check_a_cancel_before_its_try_undoes_nothing_and_bars_the_try(
    travel: Travel, effects: Effects
) -> None:
    saga_id = uuid4()
    await travel.mediator.send(operation(ReleaseFunds(account="a"), saga_id, "funds"))
    await travel.mediator.send(operation(HoldFunds(account="a"), saga_id, "funds"))
    await travel.mediator.send(operation(ReleaseFunds(account="a"), saga_id, "funds"))

    assert await effects() == []
    assert travel.outcomes == [
        ("ReleaseFunds", BarrierOutcome.NULL_COMPENSATION),
        ("HoldFunds", BarrierOutcome.HANGING),
        ("ReleaseFunds", BarrierOutcome.DUPLICATE),
    ]


async def check_a_rolled_back_operation_can_run_again(travel: Travel, effects: Effects) -> None:
    saga_id = uuid4()
    hold = operation(HoldFunds(account="a"), saga_id, "funds")
    travel.fail_after_barrier.add("HoldFunds")
    try:
        await travel.mediator.send(hold)
    except ConnectionError:
        pass
    else:  # pragma: no cover - the handler raised
        raise AssertionError("the hold should have failed")
    assert await effects() == []

    await travel.mediator.send(hold)

    assert await effects() == ["HoldFunds"]
    assert [outcome for _, outcome in travel.outcomes] == [BarrierOutcome.PROCEED] * 2
