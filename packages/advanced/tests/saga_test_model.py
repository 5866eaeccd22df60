"""The spec's OrderFulfillment saga and a shop whose handlers dedupe by command id.

Shared by the in-memory saga tests and the SQL ones: ``Shop.sagas(repository)``
wires the saga to the shop's mediator with ``bootstrap_sagas``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest

from cqrs_ddd_advanced_core.sagas import (
    Saga,
    SagaBootstrap,
    SagaBuilder,
    SagaRepository,
    SagaState,
    bootstrap_sagas,
)
from cqrs_ddd_advanced_core.sagas.timeouts import SagaTimeout, timer_id
from cqrs_ddd_advanced_core.scheduling import CommandScheduler, CommandSchedulerService
from cqrs_ddd_core import (
    Command,
    CommandResponse,
    DomainEvent,
    EventDispatcher,
    HandlerRegistry,
    InMemoryUnitOfWork,
    Mediator,
    MessageTypeRegistry,
)
from cqrs_ddd_core.ports.unit_of_work import UnitOfWork
from cqrs_ddd_testing.sagas import FakeClock


class CreateOrder(Command):
    order_id: str


class ReserveItems(Command):
    order_id: str


class CancelReservation(Command):
    order_id: str


class ChargePayment(Command):
    order_id: str


class ConfirmOrder(Command):
    order_id: str


class OrderCreated(DomainEvent):
    order_id: str


class ItemsReserved(DomainEvent):
    order_id: str


class PaymentCharged(DomainEvent):
    order_id: str


class OrderShipped(DomainEvent):
    order_id: str


OrderSaga = (
    SagaBuilder("OrderFulfillment")
    .on(OrderCreated,
        send=lambda e: ReserveItems(order_id=e.order_id),
        step="reserving",
        compensate=lambda e: CancelReservation(order_id=e.order_id))
    .on(ItemsReserved,
        send=lambda e: ChargePayment(order_id=e.order_id),
        step="charging")
    .on(PaymentCharged,
        send=lambda e: ConfirmOrder(order_id=e.order_id),
        step="confirming",
        complete=True)
    .build()
)  # fmt: skip


class WatchState(SagaState):
    """The typed state of the hand-written saga below."""

    order_id: str = ""
    reservations: int = 0


class ReservationWatch(Saga[WatchState]):
    """A saga written by hand: reserve on OrderCreated, complete on ItemsReserved."""

    listens_to = (OrderCreated, ItemsReserved)
    correlate_by = "order_id"
    state_type = WatchState

    async def handle(self, event: DomainEvent) -> None:
        if isinstance(event, OrderCreated):
            self.state.order_id = event.order_id
            self.state.reservations += 1
            self.send(
                ReserveItems(order_id=event.order_id),
                step="reserving",
                compensate=CancelReservation(order_id=event.order_id),
            )
        elif isinstance(event, ItemsReserved):
            self.complete()


async def check_a_hand_written_saga_keeps_its_typed_state(repository: SagaRepository) -> None:
    shop = Shop()
    sagas = shop.sagas(repository, saga_types=[ReservationWatch])

    await shop.mediator.send(CreateOrder(order_id="w1"))

    state = await sagas.manager.state_of(ReservationWatch, "w1")
    assert isinstance(state, WatchState)
    assert (state.order_id, state.reservations, state.status) == ("w1", 1, "completed")
    assert shop.effects == [("CreateOrder", "w1"), ("ReserveItems", "w1")]


async def ended(sagas: SagaBootstrap, key: str) -> str | None:
    """Return the status of the order saga ``key``, or None when there is none."""
    state = await sagas.manager.state_of(OrderSaga, key)
    return None if state is None else state.status


async def check_the_worker_resumes_a_crashed_saga_in_the_background(
    repository: SagaRepository,
) -> None:
    """``bootstrap_sagas(...).worker`` starts, finishes a saga a crash left mid-step, stops."""
    shop = Shop()
    sagas = shop.sagas(repository, recovery_interval=0.2)
    shop.crash_on = "ChargePayment"
    with pytest.raises(asyncio.CancelledError):
        await shop.mediator.send(CreateOrder(order_id="resumed"))

    await sagas.worker.start()
    assert sagas.worker.running
    try:
        async with asyncio.timeout(10):
            while await ended(sagas, "resumed") != "completed":  # noqa: ASYNC110 - polling
                await asyncio.sleep(0.05)
    finally:
        await sagas.worker.stop()
    assert not sagas.worker.running
    assert sagas.worker.resumed >= 1
    assert [e for e in shop.effects if e[0] == "ChargePayment"] == [("ChargePayment", "resumed")]


async def check_recovery_claims_only_sagas_in_flight_once(
    repository: SagaRepository, age: Callable[[float], Awaitable[None]]
) -> None:
    """``age`` makes every stored instance that many seconds older."""
    shop = Shop()
    shop.sagas(repository)
    shop.crash_on = "ChargePayment"  # in flight: the charge's outcome never came
    with pytest.raises(asyncio.CancelledError):
        await shop.mediator.send(CreateOrder(order_id="stuck"))
    shop.quiet.add("ReserveItems")  # waiting for ItemsReserved: not in flight
    await shop.mediator.send(CreateOrder(order_id="waiting"))

    await age(60.0)

    first, second = await asyncio.gather(repository.stalled(30.0), repository.stalled(30.0))

    assert sorted(state.correlation_key for state in [*first, *second]) == ["stuck"]
    assert await repository.stalled(30.0) == []  # claimed just now
    await age(60.0)
    assert [state.correlation_key for state in await repository.stalled(30.0)] == ["stuck"]


class Shop:
    """The application: handlers that dedupe by command id, a mediator, a dispatcher."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork] = InMemoryUnitOfWork) -> None:
        self.effects: list[tuple[str, str]] = []
        self.seen: set[object] = set()
        self.declined: set[str] = set()
        self.cancel_fails = False
        self.crash_on: str | None = None
        self.quiet: set[str] = set()  # command types whose handler publishes no event
        self.dispatcher = EventDispatcher(on_error="raise")
        registry = HandlerRegistry()
        self.mediator = Mediator(
            registry=registry, uow_factory=uow_factory, event_dispatcher=self.dispatcher
        )
        self.registry = registry

        def handler(command_type: type[Command], event_type: type[DomainEvent] | None) -> None:
            async def handle(command: Command) -> CommandResponse[None]:
                order_id = getattr(command, "order_id")  # noqa: B009 - every command here has it
                if command_type.__name__ == self.crash_on:
                    self.crash_on = None
                    raise asyncio.CancelledError  # the process dies while sending it
                if command.command_id in self.seen:
                    return CommandResponse(result=None)
                if command_type is ChargePayment and order_id in self.declined:
                    raise PermissionError("card declined")
                if command_type is CancelReservation and self.cancel_fails:
                    raise TimeoutError("warehouse unreachable")
                self.seen.add(command.command_id)
                self.effects.append((command_type.__name__, order_id))
                silent = event_type is None or command_type.__name__ in self.quiet
                events = () if silent else (
                    event_type(order_id=order_id, aggregate_id=order_id),
                )  # fmt: skip
                return CommandResponse(result=None, events=events)

            registry.register_command_handler(command_type, handle)

        handler(CreateOrder, OrderCreated)
        handler(ReserveItems, ItemsReserved)
        handler(ChargePayment, PaymentCharged)
        handler(ConfirmOrder, None)
        handler(CancelReservation, None)

    def sagas(
        self,
        repository: SagaRepository,
        *,
        saga_types: Sequence[type[Saga[Any]]] = (OrderSaga,),
        **settings: object,
    ) -> SagaBootstrap:
        msg_registry = MessageTypeRegistry(
            [ReserveItems, CancelReservation, ChargePayment, ConfirmOrder]
        )
        result = bootstrap_sagas(
            sagas=saga_types,
            repository=repository,
            command_bus=self.mediator,
            message_registry=msg_registry,
            event_dispatcher=self.dispatcher,
            **settings,  # type: ignore[arg-type]
        )
        result.manager.compensation_backoff = 0.001
        return result


TimedFulfillment = (
    SagaBuilder("TimedFulfillment", deadline=timedelta(hours=1))
    .on(OrderCreated,
        send=lambda e: ReserveItems(order_id=e.order_id),
        step="reserving",
        compensate=lambda e: CancelReservation(order_id=e.order_id))
    .on(ItemsReserved,
        send=lambda e: ChargePayment(order_id=e.order_id),
        step="charging",
        timeout=timedelta(minutes=5))
    .on(PaymentCharged,
        send=lambda e: ConfirmOrder(order_id=e.order_id),
        step="confirming",
        complete=True)
    .build()
)  # fmt: skip


Clock = FakeClock
"""A clock the test moves by hand (the saga test kit's)."""


class TimedShop:
    """The shop with the timed saga, a scheduler and its service, on one clock.

    ``advance`` lets time pass for the scheduler: by default it moves
    ``clock``; a store that judges time by its database's clock moves its
    schedules earlier instead.
    """

    def __init__(
        self,
        repository: SagaRepository,
        scheduler: CommandScheduler,
        clock: Clock,
        uow_factory: Callable[[], UnitOfWork] = InMemoryUnitOfWork,
        advance: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.clock = clock
        self.advance = advance or self._move_clock
        self.shop = Shop(uow_factory)
        self.scheduler = scheduler
        self.sagas = self.shop.sagas(
            repository, saga_types=[TimedFulfillment], scheduler=scheduler, clock=clock
        )
        self.service = CommandSchedulerService(scheduler, self.shop.mediator.send)

    async def state(self, order_id: str) -> SagaState:
        state = await self.sagas.manager.state_of(TimedFulfillment, order_id)
        assert state is not None
        return state

    async def after(self, delay: timedelta) -> int:
        """Let ``delay`` pass and run what fell due."""
        await self.advance(delay.total_seconds())
        return await self.service.run_due(owner="test")

    async def _move_clock(self, seconds: float) -> None:
        self.clock.now += seconds


# -- timeout scenarios, run in memory and on both databases ----------------------------


async def check_a_step_done_in_time_cancels_its_timeout_and_the_end_its_deadline(
    timed: TimedShop,
) -> None:
    await timed.shop.mediator.send(CreateOrder(order_id="o1"))

    state = await timed.state("o1")
    assert (state.status, state.awaiting) == ("completed", None)
    charging = await timed.scheduler.state(timer_id(state.saga_id, "charging"))
    deadline = await timed.scheduler.state(timer_id(state.saga_id, None))
    assert charging is not None
    assert deadline is not None
    assert (charging.status, deadline.status) == ("cancelled", "cancelled")
    assert await timed.after(timedelta(hours=2)) == 0


async def check_a_step_whose_outcome_never_comes_times_out_and_compensates(
    timed: TimedShop,
) -> None:
    timed.shop.crash_on = "ChargePayment"  # the process dies while sending it
    with pytest.raises(asyncio.CancelledError):
        await timed.shop.mediator.send(CreateOrder(order_id="o2"))
    charging = (await timed.state("o2")).step("charging")
    assert charging is not None
    assert charging.outcome == "sent"

    assert await timed.after(timedelta(minutes=4)) == 0
    assert await timed.after(timedelta(minutes=2)) == 1

    state = await timed.state("o2")
    assert state.status == "compensated"
    assert state.reason == "step 'charging' timed out"
    assert [(record.step, record.outcome) for record in state.steps] == [
        ("reserving", "compensated"),
        ("charging", "unknown"),
    ]
    assert timed.shop.effects[-1] == ("CancelReservation", "o2")
    deadline = await timed.scheduler.state(timer_id(state.saga_id, None))
    assert deadline is not None
    assert deadline.status == "cancelled"


async def check_a_saga_waiting_past_its_deadline_compensates(timed: TimedShop) -> None:
    timed.shop.quiet.add("ReserveItems")  # ItemsReserved never comes

    await timed.shop.mediator.send(CreateOrder(order_id="o3"))
    waiting = await timed.state("o3")
    assert (waiting.status, waiting.awaiting) == ("running", "ItemsReserved")
    assert await timed.after(timedelta(minutes=59)) == 0
    assert await timed.after(timedelta(minutes=2)) == 1

    state = await timed.state("o3")
    assert (state.status, state.awaiting) == ("compensated", None)  # waits for nothing now
    assert state.reason == "the deadline passed"
    assert ("CancelReservation", "o3") in timed.shop.effects


async def check_a_timeout_firing_after_its_step_completed_changes_nothing(
    timed: TimedShop,
) -> None:
    await timed.shop.mediator.send(CreateOrder(order_id="o4"))
    state = await timed.state("o4")

    late = SagaTimeout(saga_type="TimedFulfillment", saga_id=state.saga_id, step="charging")
    await timed.shop.mediator.send(late)

    assert await timed.state("o4") == state
