"""RetryBehavior: transient errors retried in fresh units of work, with backoff; others not."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from resilience_test_model import (
    Order,
    PermanentError,
    TransientError,
    UpdateOrder,
    VirtualTime,
    in_memory_mediator,
    stored_order,
)

from cqrs_ddd_advanced_core.cqrs import RetryBehavior, attempts_of
from cqrs_ddd_core import (
    Command,
    ConcurrencyError,
    DomainEvent,
    EventDeserializationError,
    EventDispatcher,
    HandlerRegistry,
    InMemoryRepository,
    InMemoryUnitOfWork,
    Query,
    ValidationError,
    current_uow,
)
from cqrs_ddd_core.cqrs import CommandPhase, phase_of
from cqrs_ddd_core.exceptions import EventDispatchError, FieldIssue


class Flaky(Command):
    failures: int = 0
    error: str = "transient"


def flaky_registry(calls: list[int]) -> HandlerRegistry:
    """A handler of ``Flaky`` that fails ``failures`` times with the named error, then succeeds."""
    registry = HandlerRegistry()
    errors: dict[str, type[Exception]] = {"transient": TransientError, "permanent": PermanentError}

    @registry.command_handler(Flaky)
    async def flaky(command: Flaky) -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= command.failures:
            raise errors[command.error](f"failure #{len(calls)}")
        return "done"

    return registry


def retrying(time: VirtualTime, **settings: Any) -> RetryBehavior:
    settings.setdefault("retry_on", (TransientError,))
    settings.setdefault("jitter", 0.0)
    return RetryBehavior(sleep=time.sleep, clock=time.clock, **settings)


# ---------------------------------------------------------------- the schedule


def test_nominal_delays_double_per_retry_up_to_the_cap() -> None:
    behavior = RetryBehavior(max_retries=6, retry_delay=0.5, max_delay=5.0)
    assert behavior.delays() == (0.5, 1.0, 2.0, 4.0, 5.0, 5.0)


def test_without_exponential_backoff_every_delay_is_the_retry_delay() -> None:
    behavior = RetryBehavior(max_retries=3, retry_delay=2.0, exponential_backoff=False)
    assert behavior.delays() == (2.0, 2.0, 2.0)


def test_a_very_late_retry_is_capped_not_overflowed() -> None:
    assert RetryBehavior(max_delay=30.0).nominal_delay(5000) == 30.0


def test_jittered_delays_stay_within_their_band_and_spread_evenly_across_it() -> None:
    # given: retry 3 has a nominal delay of 4 s; 10 % jitter allows 3.6 to 4.4 s
    behavior = RetryBehavior(retry_delay=1.0, jitter=0.1, rng=random.Random(20240611))
    # when
    samples = [behavior.compute_delay(3) for _ in range(10_000)]
    # then: inside the band, centred, and each quarter of the band about equally used
    assert min(samples) >= 3.6
    assert max(samples) <= 4.4
    assert abs(sum(samples) / len(samples) - 4.0) < 0.02
    quarters = [0, 0, 0, 0]
    for sample in samples:
        quarters[min(int((sample - 3.6) / 0.2), 3)] += 1
    assert all(2_200 < count < 2_800 for count in quarters), quarters


def test_jitter_never_takes_a_delay_above_the_cap() -> None:
    behavior = RetryBehavior(retry_delay=1.0, max_delay=5.0, jitter=0.5, rng=random.Random(7))
    samples = [behavior.compute_delay(10) for _ in range(2_000)]
    assert max(samples) <= 5.0
    assert min(samples) >= 2.5


def test_invalid_settings_are_refused_naming_each_field() -> None:
    with pytest.raises(ValidationError) as raised:
        RetryBehavior(max_retries=-1, jitter=1.5, total_timeout=0)
    assert raised.value.fields == ("max_retries", "jitter", "total_timeout")


# ---------------------------------------------------------------- retrying


async def test_a_transient_error_is_retried_after_the_computed_delays_without_sleeping() -> None:
    # given
    time, calls = VirtualTime(), list[int]()
    mediator = in_memory_mediator(flaky_registry(calls), behaviors=[retrying(time)])
    # when
    response = await mediator.send(Flaky(failures=3))
    # then
    assert response.result == "done"
    assert calls == [1, 2, 3, 4]
    assert time.delays == [1.0, 2.0, 4.0]


async def test_the_recorded_pauses_are_the_jittered_computed_delays() -> None:
    # given: two behaviours drawing jitter from equally seeded generators
    time, calls = VirtualTime(), list[int]()
    behavior = retrying(time, jitter=0.25, rng=random.Random(99))
    twin = RetryBehavior(retry_delay=1.0, jitter=0.25, rng=random.Random(99))
    mediator = in_memory_mediator(flaky_registry(calls), behaviors=[behavior])
    # when
    await mediator.send(Flaky(failures=3))
    # then
    assert time.delays == [twin.compute_delay(retry) for retry in (1, 2, 3)]
    assert time.delays != [1.0, 2.0, 4.0]


async def test_max_retries_three_means_four_attempts_at_most() -> None:
    # given
    time, calls = VirtualTime(), list[int]()
    mediator = in_memory_mediator(flaky_registry(calls), behaviors=[retrying(time)])
    # when
    with pytest.raises(TransientError):
        await mediator.send(Flaky(failures=100))
    # then
    assert calls == [1, 2, 3, 4]
    assert time.delays == [1.0, 2.0, 4.0]


async def test_giving_up_raises_the_original_error_with_the_attempts_attached() -> None:
    # given
    time, calls = VirtualTime(), list[int]()
    mediator = in_memory_mediator(flaky_registry(calls), behaviors=[retrying(time)])
    # when
    with pytest.raises(TransientError, match="failure #4") as raised:
        await mediator.send(Flaky(failures=100))
    # then
    attempts = attempts_of(raised.value)
    assert [(a.attempt, a.error_type, a.message, a.delay) for a in attempts] == [
        (1, "TransientError", "failure #1", 1.0),
        (2, "TransientError", "failure #2", 2.0),
        (3, "TransientError", "failure #3", 4.0),
        (4, "TransientError", "failure #4", None),
    ]
    assert {a.kind for a in attempts} == {"retry"}
    assert any("gave up after 4 attempts" in note for note in raised.value.__notes__)


async def test_an_error_not_listed_as_transient_fails_at_once() -> None:
    # given
    time, calls = VirtualTime(), list[int]()
    mediator = in_memory_mediator(flaky_registry(calls), behaviors=[retrying(time)])
    # when
    with pytest.raises(PermanentError) as raised:
        await mediator.send(Flaky(failures=1, error="permanent"))
    # then
    assert calls == [1]
    assert time.delays == []
    assert [a.attempt for a in attempts_of(raised.value)] == [1]


@pytest.mark.parametrize(
    "error",
    [
        EventDeserializationError("OrderUpdated", [FieldIssue("changes", "missing")]),
        ValidationError("UpdateOrder", [FieldIssue("changes", "must not be empty")]),
    ],
    ids=["deserialization", "validation"],
)
async def test_deserialization_and_validation_errors_are_never_retried(error: Exception) -> None:
    # given: a behaviour told to retry everything
    time, calls = VirtualTime(), list[int]()
    registry = HandlerRegistry()

    @registry.command_handler(Flaky)
    async def broken(command: Flaky) -> None:
        calls.append(1)
        raise error

    mediator = in_memory_mediator(registry, behaviors=[retrying(time, retry_on=(Exception,))])
    # when
    with pytest.raises(type(error)):
        await mediator.send(Flaky())
    # then
    assert calls == [1]
    assert time.delays == []


async def test_a_malformed_payload_rejected_by_pydantic_is_never_retried() -> None:
    time, calls = VirtualTime(), list[int]()
    registry = HandlerRegistry()

    @registry.command_handler(Flaky)
    async def parse(command: Flaky) -> None:
        calls.append(1)
        UpdateOrder.model_validate({"order_id": 7})

    mediator = in_memory_mediator(registry, behaviors=[retrying(time, retry_on=(Exception,))])
    with pytest.raises(Exception, match="validation error"):
        await mediator.send(Flaky())
    assert calls == [1]


async def test_a_command_that_committed_then_failed_in_dispatch_is_not_retried() -> None:
    # given: an event handler that fails after the command committed, and a retry of everything
    time = VirtualTime()
    orders = InMemoryRepository(Order)
    dispatcher = EventDispatcher(on_error="raise")

    async def mailer_down(event: DomainEvent) -> None:
        raise TransientError("the mailer is down")

    dispatcher.subscribe(DomainEvent, mailer_down)
    calls: list[str] = []
    registry = HandlerRegistry()

    @registry.command_handler(Flaky)
    async def create(command: Flaky) -> None:
        order = Order()
        order.update({"note": "created"})
        calls.append(order.id)
        await orders.save(order)

    mediator = in_memory_mediator(
        registry,
        behaviors=[retrying(time, retry_on=(Exception,))],
        dispatcher=dispatcher,
    )
    # when
    with pytest.raises(EventDispatchError) as raised:
        await mediator.send(Flaky())
    # then: one attempt, and its effect stored exactly once
    assert phase_of(raised.value) is CommandPhase.AFTER_COMMIT
    assert len(calls) == 1
    assert len(orders) == 1
    assert time.delays == []


async def test_a_commit_with_an_unknown_outcome_is_not_retried() -> None:
    # given: a unit of work whose commit fails with a transient-looking error
    class CommitLost(InMemoryUnitOfWork):
        async def commit(self) -> None:
            raise TransientError("connection lost during COMMIT")

    time, calls = VirtualTime(), list[int]()
    from cqrs_ddd_core import Mediator

    mediator = Mediator(
        registry=flaky_registry(calls),
        uow_factory=CommitLost,
        behaviors=[retrying(time)],
    )
    # when
    with pytest.raises(TransientError) as raised:
        await mediator.send(Flaky())
    # then
    assert phase_of(raised.value) is CommandPhase.COMMIT
    assert calls == [1]


async def test_a_conflict_is_retried_in_a_fresh_unit_of_work_that_loads_the_new_version() -> None:
    # given: while the first attempt holds version 1, another command commits version 2
    time = VirtualTime()
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    other_registry = HandlerRegistry()

    @other_registry.command_handler(UpdateOrder)
    async def other_writer(command: UpdateOrder) -> None:
        order = await orders.get(command.order_id)
        order.update(command.changes)
        await orders.save(order)

    other = in_memory_mediator(other_registry)
    loaded: list[int] = []
    units: list[object] = []
    registry = HandlerRegistry()

    @registry.command_handler(Flaky)
    async def add_note(command: Flaky) -> None:
        order = await orders.get("o-1")
        loaded.append(order.version)
        units.append(current_uow())
        if len(loaded) == 1:
            await other.send(UpdateOrder(order_id="o-1", changes={"status": "paid"}))
        order.update({"note": "gift"})
        await orders.save(order)

    mediator = in_memory_mediator(
        registry, behaviors=[retrying(time, retry_on=(ConcurrencyError,))]
    )
    # when
    await mediator.send(Flaky())
    # then: the second attempt reloaded (expected version 2), never re-sent the stale write
    assert loaded == [1, 2]
    assert units[0] is not units[1]
    stored = await orders.get("o-1")
    assert (stored.version, stored.status, stored.note) == (3, "paid", "gift")
    assert time.delays == [1.0]


async def test_the_time_budget_stops_retries_whose_pause_would_end_past_it() -> None:
    # given: pauses of 1 s then 2 s, and a budget of 2.5 s
    time, calls = VirtualTime(), list[int]()
    behavior = retrying(time, total_timeout=2.5)
    mediator = in_memory_mediator(flaky_registry(calls), behaviors=[behavior])
    # when
    with pytest.raises(TransientError) as raised:
        await mediator.send(Flaky(failures=100))
    # then
    assert calls == [1, 2]
    assert time.delays == [1.0]
    assert [a.delay for a in attempts_of(raised.value)] == [1.0, None]


async def test_each_retry_is_logged_with_the_command_the_attempt_and_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given
    time, calls = VirtualTime(), list[int]()
    mediator = in_memory_mediator(flaky_registry(calls), behaviors=[retrying(time)])
    command = Flaky(failures=2)
    # when
    with caplog.at_level(logging.WARNING, logger="cqrs_ddd_advanced_core.retry"):
        await mediator.send(command)
    # then
    retries = [r for r in caplog.records if r.name == "cqrs_ddd_advanced_core.retry"]
    assert [r.levelno for r in retries] == [logging.WARNING, logging.WARNING]
    assert [r.__dict__["attempt"] for r in retries] == [1, 2]
    first = retries[0].getMessage()
    assert "Flaky" in first
    assert str(command.command_id) in first
    assert "attempt 1 of 4" in first
    assert "TransientError: failure #1" in first


async def test_queries_pass_through_without_retries() -> None:
    # given
    class Ask(Query):
        pass

    time, asked = VirtualTime(), []
    registry = HandlerRegistry()

    @registry.query_handler(Ask)
    async def answer(query: Ask) -> str:
        asked.append(1)
        raise TransientError("read replica down")

    mediator = in_memory_mediator(registry, behaviors=[retrying(time)])
    # when
    with pytest.raises(TransientError):
        await mediator.query(Ask())
    # then
    assert asked == [1]
