from __future__ import annotations

import logging
from typing import Any

import pytest
from core_test_model import GetOrder, Order, PlaceOrder, RecordingDispatcher

from cqrs_ddd_core import (
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    LoggingBehavior,
    Mediator,
    ValidationBehavior,
    ValidationError,
)
from cqrs_ddd_core.cqrs import NextStep
from cqrs_ddd_core.cqrs.behaviors import Message
from cqrs_ddd_core.exceptions import FieldIssue


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


class ShortCircuit:
    """A behaviour that answers without calling the rest of the pipeline."""

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        return "cached"


def traced_registry(trace: list[str], orders: InMemoryRepository[Order]) -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.command_handler(PlaceOrder)
    async def place(command: PlaceOrder) -> str:
        trace.append("handler")
        order = Order.place(command.customer_id, command.order_id)
        await orders.save(order)
        return order.id

    @registry.query_handler(GetOrder)
    async def get(query: GetOrder) -> str:
        trace.append("handler")
        return query.order_id

    return registry


async def test_behaviours_run_in_order_around_the_command_handler(
    orders: InMemoryRepository[Order],
) -> None:
    trace: list[str] = []
    mediator = Mediator(
        registry=traced_registry(trace, orders),
        uow_factory=InMemoryUnitOfWork,
        behaviors=[Tracing("outer", trace), Tracing("inner", trace)],
    )
    await mediator.send(PlaceOrder(customer_id="c-1"))
    assert trace == ["outer:before", "inner:before", "handler", "inner:after", "outer:after"]


async def test_behaviours_run_in_order_around_the_query_handler(
    orders: InMemoryRepository[Order],
) -> None:
    trace: list[str] = []
    mediator = Mediator(
        registry=traced_registry(trace, orders),
        uow_factory=InMemoryUnitOfWork,
        behaviors=[Tracing("outer", trace), Tracing("inner", trace)],
    )
    assert await mediator.query(GetOrder(order_id="o-7")) == "o-7"
    assert trace == ["outer:before", "inner:before", "handler", "inner:after", "outer:after"]


async def test_a_behaviour_can_short_circuit_so_nothing_else_runs(
    orders: InMemoryRepository[Order], dispatcher: RecordingDispatcher
) -> None:
    trace: list[str] = []
    mediator = Mediator(
        registry=traced_registry(trace, orders),
        uow_factory=InMemoryUnitOfWork,
        event_dispatcher=dispatcher,
        behaviors=[Tracing("outer", trace), ShortCircuit(), Tracing("never", trace)],
    )
    answer: object = await mediator.send(PlaceOrder(customer_id="c-1", order_id="o-1"))
    assert answer == "cached"
    assert trace == ["outer:before", "outer:after"]
    assert await orders.find("o-1") is None
    assert dispatcher.received == []


async def test_the_validation_behaviour_rejects_before_the_handler_and_names_the_fields(
    orders: InMemoryRepository[Order],
) -> None:
    # given: a rule across the command's fields
    trace: list[str] = []

    def customer_must_not_be_the_order(command: PlaceOrder) -> list[FieldIssue]:
        if command.order_id == command.customer_id:
            return [FieldIssue("order_id", "must differ from customer_id")]
        return []

    validation = ValidationBehavior({PlaceOrder: [customer_must_not_be_the_order]})
    mediator = Mediator(
        registry=traced_registry(trace, orders),
        uow_factory=InMemoryUnitOfWork,
        behaviors=[validation],
    )
    # when
    with pytest.raises(ValidationError) as raised:
        await mediator.send(PlaceOrder(customer_id="x", order_id="x"))
    # then
    assert raised.value.fields == ("order_id",)
    assert "PlaceOrder" in str(raised.value)
    assert trace == []
    # and a valid command passes through
    await mediator.send(PlaceOrder(customer_id="x", order_id="y"))
    assert trace == ["handler"]


class FailingOrder(PlaceOrder):
    pass


async def test_the_logging_behaviour_logs_success_and_failure_with_the_message_type(
    orders: InMemoryRepository[Order], caplog: pytest.LogCaptureFixture
) -> None:
    # given
    registry = traced_registry([], orders)

    @registry.command_handler(FailingOrder)
    async def fail(command: FailingOrder) -> None:
        raise RuntimeError("boom")

    mediator = Mediator(
        registry=registry, uow_factory=InMemoryUnitOfWork, behaviors=[LoggingBehavior()]
    )
    # when
    with caplog.at_level(logging.DEBUG, logger="cqrs_ddd_core.pipeline"):
        await mediator.send(PlaceOrder(customer_id="c-1"))
        with pytest.raises(RuntimeError):
            await mediator.send(FailingOrder(customer_id="c-2"))
    # then
    messages = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert any(level == logging.DEBUG and "handled PlaceOrder" in m for level, m in messages)
    assert any(
        level == logging.WARNING and "FailingOrder failed" in m and "RuntimeError: boom" in m
        for level, m in messages
    )
