"""Sagas end to end in memory: the spec's OrderFulfillment wired by bootstrap_sagas to a mediator.

Every command handler here remembers the command ids it handled and does
nothing for one it saw (the dedupe a saga's deterministic ids are for), and
records each effect, so "once" is counted.
"""

from __future__ import annotations

import asyncio

import pytest

from cqrs_ddd_advanced_core.adapters.memory import InMemorySagaRepository
from cqrs_ddd_advanced_core.sagas import (
    SagaBootstrap,
    SagaBuilder,
    SagaDefinitionError,
    bootstrap_sagas,
)
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


class Shop:
    """The application: handlers that dedupe by command id, a mediator, a dispatcher."""

    def __init__(self) -> None:
        self.effects: list[tuple[str, str]] = []
        self.seen: set[object] = set()
        self.declined: set[str] = set()
        self.cancel_fails = False
        self.crash_on: str | None = None
        self.dispatcher = EventDispatcher(on_error="raise")
        registry = HandlerRegistry()
        self.mediator = Mediator(
            registry=registry, uow_factory=InMemoryUnitOfWork, event_dispatcher=self.dispatcher
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
                events = () if event_type is None else (
                    event_type(order_id=order_id, aggregate_id=order_id),
                )  # fmt: skip
                return CommandResponse(result=None, events=events)

            registry.register_command_handler(command_type, handle)

        handler(CreateOrder, OrderCreated)
        handler(ReserveItems, ItemsReserved)
        handler(ChargePayment, PaymentCharged)
        handler(ConfirmOrder, None)
        handler(CancelReservation, None)

    def sagas(self, **settings: object) -> SagaBootstrap:
        msg_registry = MessageTypeRegistry(
            [ReserveItems, CancelReservation, ChargePayment, ConfirmOrder]
        )
        result = bootstrap_sagas(
            sagas=[OrderSaga],
            repository=InMemorySagaRepository(),
            command_bus=self.mediator,
            message_registry=msg_registry,
            event_dispatcher=self.dispatcher,
            **settings,  # type: ignore[arg-type]
        )
        result.manager.compensation_backoff = 0.001
        return result


async def test_an_order_goes_through_every_step_and_the_saga_completes() -> None:
    shop = Shop()
    sagas = shop.sagas()

    await shop.mediator.send(CreateOrder(order_id="order_123"))

    assert shop.effects == [
        ("CreateOrder", "order_123"),
        ("ReserveItems", "order_123"),
        ("ChargePayment", "order_123"),
        ("ConfirmOrder", "order_123"),
    ]
    state = await sagas.manager.state_of(OrderSaga, "order_123")
    assert state is not None
    assert state.status == "completed"
    assert [(step.step, step.outcome) for step in state.steps] == [
        ("reserving", "done"),
        ("charging", "done"),
        ("confirming", "done"),
    ]


async def test_a_failing_charge_cancels_the_reservation_and_the_saga_is_compensated() -> None:
    shop = Shop()
    shop.declined.add("order_9")
    sagas = shop.sagas()

    await shop.mediator.send(CreateOrder(order_id="order_9"))

    assert shop.effects == [
        ("CreateOrder", "order_9"),
        ("ReserveItems", "order_9"),
        ("CancelReservation", "order_9"),
    ]
    state = await sagas.manager.state_of(OrderSaga, "order_9")
    assert state is not None
    assert (state.status, state.reason) == ("compensated", "PermissionError: card declined")
    assert [(step.step, step.outcome) for step in state.steps] == [
        ("reserving", "compensated"),
        ("charging", "failed"),
    ]


async def test_a_compensation_that_keeps_failing_parks_the_saga() -> None:
    shop = Shop()
    shop.declined.add("order_p")
    shop.cancel_fails = True
    sagas = shop.sagas()

    await shop.mediator.send(CreateOrder(order_id="order_p"))

    state = await sagas.manager.state_of(OrderSaga, "order_p")
    assert state is not None
    assert state.status == "parked"
    assert state.reason == "compensation of 'reserving' failed: TimeoutError: warehouse unreachable"
    assert ("CancelReservation", "order_p") not in shop.effects


async def test_two_starting_events_at_once_make_one_saga() -> None:
    shop = Shop()
    sagas = shop.sagas()
    first = OrderCreated(order_id="order_2", aggregate_id="order_2")
    second = OrderCreated(order_id="order_2", aggregate_id="order_2")

    await asyncio.gather(sagas.manager.handle(first), sagas.manager.handle(second))

    assert [effect for effect in shop.effects if effect[0] == "ReserveItems"] == [
        ("ReserveItems", "order_2")
    ]
    state = await sagas.manager.state_of(OrderSaga, "order_2")
    assert state is not None
    assert state.status == "completed"


async def test_a_crash_before_the_command_is_sent_is_recovered_by_the_worker() -> None:
    shop = Shop()
    sagas = shop.sagas(recovery_interval=0.0)
    shop.crash_on = "ChargePayment"

    with pytest.raises(asyncio.CancelledError):
        await shop.mediator.send(CreateOrder(order_id="order_c"))
    state = await sagas.manager.state_of(OrderSaga, "order_c")
    assert state is not None
    assert [(step.step, step.outcome) for step in state.steps][-1] == ("charging", "sent")

    assert await sagas.worker.run_once() == 1
    state = await sagas.manager.state_of(OrderSaga, "order_c")
    assert state is not None
    assert state.status == "completed"
    assert [effect for effect in shop.effects if effect[0] == "ChargePayment"] == [
        ("ChargePayment", "order_c")
    ]


async def test_the_worker_starts_and_stops() -> None:
    sagas = Shop().sagas(recovery_interval=0.05)
    await sagas.worker.start()
    assert sagas.worker.running
    await asyncio.sleep(0.12)
    await sagas.worker.stop()
    assert not sagas.worker.running


async def test_events_no_saga_listens_to_or_that_start_nothing_are_ignored() -> None:
    shop = Shop()
    sagas = shop.sagas()
    await sagas.manager.handle(OrderShipped(order_id="o", aggregate_id="o"))
    await sagas.manager.handle(ItemsReserved(order_id="o", aggregate_id="o"))  # no instance yet
    assert shop.effects == []
    assert await sagas.manager.state_of(OrderSaga, "o") is None


def test_the_default_registry_is_the_mediator_s_commands_and_names_must_be_unique() -> None:
    shop = Shop()
    result = bootstrap_sagas(
        sagas=[OrderSaga], repository=InMemorySagaRepository(), command_bus=shop.mediator
    )
    assert result.manager.message_registry.is_registered(CancelReservation)
    with pytest.raises(SagaDefinitionError, match="two sagas share this name"):
        bootstrap_sagas(
            sagas=[OrderSaga, OrderSaga],
            repository=InMemorySagaRepository(),
            command_bus=shop.mediator,
        )
