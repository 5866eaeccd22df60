"""Handlers that bring pipeline behaviours of their own, around their own command."""

from __future__ import annotations

from typing import Any

from core_test_model import Order, PlaceOrder, PlaceOrderHandler

from cqrs_ddd_core import (
    Command,
    CommandHandler,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    Mediator,
    current_uow,
)
from cqrs_ddd_core.cqrs import NextStep, PipelineBehavior
from cqrs_ddd_core.cqrs.behaviors import Message


class Tracing:
    """A behaviour that writes its name into a shared trace before and after the rest."""

    def __init__(self, name: str, trace: list[str]) -> None:
        self.name = name
        self.trace = trace

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        self.trace.append(f"{self.name}:before")
        result = await next_step()
        self.trace.append(f"{self.name}:after")
        return result


class TracedPlaceOrderHandler(PlaceOrderHandler):
    def __init__(self, orders: InMemoryRepository[Order], trace: list[str]) -> None:
        super().__init__(orders)
        self.trace = trace
        self.asked = 0

    async def handle(self, command: PlaceOrder) -> str:
        self.trace.append("handler")
        return await super().handle(command)

    def pipeline_behaviors(self) -> list[PipelineBehavior]:
        self.asked += 1
        return [Tracing("own-1", self.trace), Tracing("own-2", self.trace)]


class Ping(Command):
    pass


class PingHandler(CommandHandler[Ping]):
    async def handle(self, command: Ping) -> str:
        return "pong"


def test_a_handler_contributes_no_behaviours_unless_it_says_so() -> None:
    # given
    registry = HandlerRegistry()
    registry.register_command_handler(Ping, PingHandler())

    @registry.command_handler(PlaceOrder)
    async def place(command: PlaceOrder) -> None:
        return None

    # then
    assert PingHandler().pipeline_behaviors() == ()
    assert registry.command_behaviors_for(Ping) == ()
    assert registry.command_behaviors_for(PlaceOrder) == ()


def test_an_unhandled_command_type_contributes_no_behaviours() -> None:
    assert HandlerRegistry().command_behaviors_for(Ping) == ()


async def test_a_handler_s_behaviours_run_inside_the_mediator_s_own_around_its_command() -> None:
    # given
    trace: list[str] = []
    orders = InMemoryRepository(Order)
    registry = HandlerRegistry()
    registry.register_command_handler(PlaceOrder, TracedPlaceOrderHandler(orders, trace))
    mediator = Mediator(
        registry=registry,
        uow_factory=InMemoryUnitOfWork,
        behaviors=[Tracing("global", trace)],
    )
    # when
    response = await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    # then
    assert response.result == "o-1"
    assert trace == [
        "global:before",
        "own-1:before",
        "own-2:before",
        "handler",
        "own-2:after",
        "own-1:after",
        "global:after",
    ]


async def test_a_handler_s_behaviours_do_not_run_around_other_commands() -> None:
    # given
    trace: list[str] = []
    registry = HandlerRegistry()
    registry.register_command_handler(
        PlaceOrder, TracedPlaceOrderHandler(InMemoryRepository(Order), trace)
    )
    registry.register_command_handler(Ping, PingHandler())
    mediator = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork)
    # when
    response = await mediator.send(Ping())
    # then
    assert response.result == "pong"
    assert trace == []


async def test_a_handler_s_behaviours_are_asked_for_on_every_send() -> None:
    # given
    trace: list[str] = []
    handler = TracedPlaceOrderHandler(InMemoryRepository(Order), trace)
    registry = HandlerRegistry()
    registry.register_command_handler(PlaceOrder, handler)
    mediator = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork)
    # when
    await mediator.send(PlaceOrder(customer_id="c-1"))
    await mediator.send(PlaceOrder(customer_id="c-2"))
    # then
    assert handler.asked == 2


def test_a_subclass_of_a_handled_command_runs_its_handler_s_behaviours() -> None:
    # given
    class PlaceRushOrder(PlaceOrder):
        pass

    trace: list[str] = []
    registry = HandlerRegistry()
    registry.register_command_handler(
        PlaceOrder, TracedPlaceOrderHandler(InMemoryRepository(Order), trace)
    )
    # when
    behaviors = registry.command_behaviors_for(PlaceRushOrder)
    # then
    assert [behavior.name for behavior in behaviors] == ["own-1", "own-2"]  # type: ignore[attr-defined]


async def test_a_handler_s_behaviour_may_run_the_command_again_in_a_fresh_unit_of_work() -> None:
    # given: a behaviour that runs the rest twice, and a handler counting its units of work
    units: list[object] = []

    class Twice:
        async def handle(self, message: Message, next_step: NextStep) -> Any:
            await next_step()
            return await next_step()

    class CountingHandler(CommandHandler[Ping]):
        async def handle(self, command: Ping) -> None:
            units.append(current_uow())

        def pipeline_behaviors(self) -> list[PipelineBehavior]:
            return [Twice()]

    registry = HandlerRegistry()
    registry.register_command_handler(Ping, CountingHandler())
    mediator = Mediator(registry=registry, uow_factory=InMemoryUnitOfWork)
    # when
    await mediator.send(Ping())
    # then
    assert len(units) == 2
    assert units[0] is not units[1]
