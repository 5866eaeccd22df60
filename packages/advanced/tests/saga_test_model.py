"""The spec's OrderFulfillment saga and a shop whose handlers dedupe by command id.

Shared by the in-memory saga tests and the SQL ones: ``Shop.sagas(repository)``
wires the saga to the shop's mediator with ``bootstrap_sagas``.
"""

from __future__ import annotations

import asyncio

from cqrs_ddd_advanced_core.sagas import SagaBootstrap, SagaBuilder, SagaRepository, bootstrap_sagas
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

    def sagas(self, repository: SagaRepository, **settings: object) -> SagaBootstrap:
        msg_registry = MessageTypeRegistry(
            [ReserveItems, CancelReservation, ChargePayment, ConfirmOrder]
        )
        result = bootstrap_sagas(
            sagas=[OrderSaga],
            repository=repository,
            command_bus=self.mediator,
            message_registry=msg_registry,
            event_dispatcher=self.dispatcher,
            **settings,  # type: ignore[arg-type]
        )
        result.manager.compensation_backoff = 0.001
        return result
