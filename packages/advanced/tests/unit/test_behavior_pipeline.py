"""BehaviorPipeline: behaviours composed into one, run around any terminal step."""

from __future__ import annotations

from typing import Any

from resilience_test_model import TransientError, VirtualTime, in_memory_mediator

from cqrs_ddd_advanced_core.cqrs import BehaviorPipeline, RetryBehavior
from cqrs_ddd_core import Command, HandlerRegistry
from cqrs_ddd_core.cqrs import NextStep
from cqrs_ddd_core.cqrs.behaviors import Message


class Ping(Command):
    pass


class Tracing:
    def __init__(self, name: str, trace: list[str]) -> None:
        self.name = name
        self.trace = trace

    async def handle(self, message: Message, next_step: NextStep) -> Any:
        self.trace.append(f"{self.name}:before")
        result = await next_step()
        self.trace.append(f"{self.name}:after")
        return result


async def test_a_pipeline_runs_its_behaviours_first_outermost_around_the_terminal() -> None:
    # given
    trace: list[str] = []
    pipeline = BehaviorPipeline([Tracing("a", trace), Tracing("b", trace)])

    async def terminal(message: Message) -> str:
        trace.append("terminal")
        return "done"

    # when
    result = await pipeline.run(Ping(), terminal)
    # then
    assert result == "done"
    assert trace == ["a:before", "b:before", "terminal", "b:after", "a:after"]


def test_then_returns_a_longer_pipeline_and_leaves_the_original_alone() -> None:
    trace: list[str] = []
    base = BehaviorPipeline([Tracing("a", trace)])
    longer = base.then(Tracing("b", trace), Tracing("c", trace))
    assert (len(base), len(longer)) == (1, 3)
    assert repr(longer) == "BehaviorPipeline([Tracing, Tracing, Tracing])"


async def test_a_pipeline_serves_a_mediator_as_one_behaviour() -> None:
    # given: a retry inside a tracing behaviour, handed to the mediator as one
    trace: list[str] = []
    time = VirtualTime()
    calls: list[int] = []
    registry = HandlerRegistry()

    @registry.command_handler(Ping)
    async def ping(command: Ping) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("once")
        return "pong"

    pipeline = BehaviorPipeline([Tracing("outer", trace)]).then(
        RetryBehavior(retry_on=(TransientError,), jitter=0.0, sleep=time.sleep)
    )
    mediator = in_memory_mediator(registry, behaviors=[pipeline])
    # when
    response = await mediator.send(Ping())
    # then
    assert response.result == "pong"
    assert calls == [1, 1]
    assert trace == ["outer:before", "outer:after"]
    assert time.delays == [1.0]
