"""ResilientCommandHandler: the spec's handler retries transient errors and resolves conflicts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from resilience_test_model import (
    Order,
    PermanentError,
    RaceGate,
    TransientError,
    UpdateOrder,
    UpdateOrderHandler,
    in_memory_mediator,
    stored_order,
)

import cqrs_ddd_advanced_core
from cqrs_ddd_advanced_core import conflict, cqrs, domain
from cqrs_ddd_advanced_core.cqrs import (
    ConflictBehavior,
    ConflictContext,
    ResilientCommandHandler,
    RetryBehavior,
    attempts_of,
)
from cqrs_ddd_advanced_core.cqrs import resilient_handler as resilient_module
from cqrs_ddd_core import (
    ConcurrencyError,
    DomainEvent,
    EventDispatcher,
    HandlerRegistry,
    InMemoryRepository,
)
from cqrs_ddd_core.exceptions import EventDispatchError


def registry_with(handler: UpdateOrderHandler) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register_command_handler(UpdateOrder, handler)
    return registry


class FlakyUpdateOrderHandler(UpdateOrderHandler):
    """Fails with ``TransientError`` (listed) or ``PermanentError`` the first ``failures`` times."""

    retry_on = (TransientError,)

    def __init__(
        self, repo: InMemoryRepository[Order], failures: int, error: type[Exception]
    ) -> None:
        super().__init__(repo)
        self.failures = failures
        self.error = error

    async def _handle_internal(self, command: UpdateOrder) -> None:
        if self.handled < self.failures:
            self.handled += 1
            raise self.error(f"failure #{self.handled}")
        await super()._handle_internal(command)


# ---------------------------------------------------------------- configuration


def test_the_class_attributes_configure_a_retry_around_a_conflict_behaviour() -> None:
    # given
    handler = UpdateOrderHandler(InMemoryRepository(Order))
    # when
    retry, resolve = handler.pipeline_behaviors()
    # then: retry outermost, for transient errors; conflicts inside
    assert isinstance(retry, RetryBehavior)
    assert isinstance(resolve, ConflictBehavior)
    assert (retry.max_retries, retry.retry_delay, retry.exponential_backoff) == (3, 1.0, True)
    assert retry.retry_on == ()
    assert retry.delays() == (1.0, 2.0, 4.0)
    assert resolve.max_retries == 3


def test_the_handler_is_exported_from_cqrs_and_the_package_root() -> None:
    assert cqrs_ddd_advanced_core.ResilientCommandHandler is cqrs.ResilientCommandHandler
    assert cqrs.ResilientCommandHandler is resilient_module.ResilientCommandHandler
    assert conflict.ConflictResolved is domain.ConflictResolved
    assert cqrs_ddd_advanced_core.ConflictResolved is domain.ConflictResolved


# ---------------------------------------------------------------- the spec's example


async def test_two_concurrent_updates_of_different_fields_both_succeed_through_resolution() -> None:
    # given
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = UpdateOrderHandler(orders, gate=RaceGate())
    mediator = in_memory_mediator(registry_with(handler))
    # when
    outcomes = await asyncio.gather(
        mediator.send(UpdateOrder(order_id="o-1", changes={"status": "paid"})),
        mediator.send(UpdateOrder(order_id="o-1", changes={"items": [{"id": 1, "qty": 2}]})),
        return_exceptions=True,
    )
    # then: both stored, one of them through resolve_conflict, at once (no backoff pause)
    assert not [o for o in outcomes if isinstance(o, BaseException)]
    stored = await orders.get("o-1")
    assert (stored.status, stored.items, stored.version) == ("paid", [{"id": 1, "qty": 2}], 3)
    assert handler.resolved == 1
    assert handler.time.delays == []


# ---------------------------------------------------------------- transient errors


async def test_a_listed_transient_error_is_retried_with_jittered_exponential_backoff() -> None:
    # given
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = FlakyUpdateOrderHandler(orders, failures=2, error=TransientError)
    mediator = in_memory_mediator(registry_with(handler))
    # when
    await mediator.send(UpdateOrder(order_id="o-1", changes={"note": "gift"}))
    # then: pauses of 1 s and 2 s, each within the default 10 % jitter
    first, second = handler.time.delays
    assert 0.9 <= first <= 1.1
    assert 1.8 <= second <= 2.2
    assert (await orders.get("o-1")).note == "gift"


async def test_transient_errors_beyond_max_retries_raise_the_last_with_four_attempts() -> None:
    # given
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = FlakyUpdateOrderHandler(orders, failures=10, error=TransientError)
    mediator = in_memory_mediator(registry_with(handler))
    # when
    with pytest.raises(TransientError, match="failure #4") as raised:
        await mediator.send(UpdateOrder(order_id="o-1", changes={"note": "gift"}))
    # then
    assert handler.handled == 4
    assert [a.attempt for a in attempts_of(raised.value)] == [1, 2, 3, 4]
    assert len(handler.time.delays) == 3


async def test_an_error_the_handler_does_not_list_fails_at_once() -> None:
    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = FlakyUpdateOrderHandler(orders, failures=1, error=PermanentError)
    mediator = in_memory_mediator(registry_with(handler))
    with pytest.raises(PermanentError):
        await mediator.send(UpdateOrder(order_id="o-1", changes={"note": "gift"}))
    assert handler.handled == 1
    assert handler.time.delays == []


async def test_a_command_whose_events_failed_to_dispatch_after_commit_is_not_sent_again() -> None:
    # given: a handler retrying everything, and an event handler failing after the commit
    class RetryEverything(UpdateOrderHandler):
        retry_on = (Exception,)

    orders = InMemoryRepository(Order)
    await stored_order(orders)
    dispatcher = EventDispatcher(on_error="raise")

    async def fail(event: DomainEvent) -> None:
        raise TransientError("the search index is down")

    dispatcher.subscribe(DomainEvent, fail)
    handler = RetryEverything(orders)
    mediator = in_memory_mediator(registry_with(handler), dispatcher=dispatcher)
    # when
    with pytest.raises(EventDispatchError):
        await mediator.send(UpdateOrder(order_id="o-1", changes={"note": "gift"}))
    # then: handled once, stored once
    assert handler.handled == 1
    assert (await orders.get("o-1")).version == 2
    assert handler.time.delays == []


# ---------------------------------------------------------------- conflicts and retries together


class OvertakenUpdateOrderHandler(UpdateOrderHandler):
    """Another writer commits during the first attempt; the resolving attempt may fail once."""

    def __init__(self, repo: InMemoryRepository[Order], *, fail_resolving: bool) -> None:
        super().__init__(repo)
        self.other = in_memory_mediator(registry_with(UpdateOrderHandler(repo)))
        self.fail_resolving = fail_resolving

    async def _handle_internal(self, command: UpdateOrder) -> None:
        self.handled += 1
        order = await self.repo.get(command.order_id)
        await self.other.send(UpdateOrder(order_id=order.id, changes={"note": f"n{self.handled}"}))
        order.update(command.changes)
        await self.repo.save(order)

    async def load_existing(self, command: UpdateOrder, context: ConflictContext) -> Any:
        if self.fail_resolving:
            self.fail_resolving = False
            raise TransientError("connection reset while reloading")
        return await super().load_existing(command, context)


async def test_conflicts_that_never_end_surface_the_conflict_after_max_retries_attempts() -> None:
    # given: a resolution can never win, as another writer commits during every attempt
    class NeverWins(OvertakenUpdateOrderHandler):
        async def save_resolved(self, aggregate: Any) -> None:
            await self.other.send(UpdateOrder(order_id=aggregate.id, changes={"note": "again"}))
            await super().save_resolved(aggregate)

    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = NeverWins(orders, fail_resolving=False)
    mediator = in_memory_mediator(registry_with(handler))
    # when
    with pytest.raises(ConcurrencyError) as raised:
        await mediator.send(UpdateOrder(order_id="o-1", changes={"status": "paid"}))
    # then: 1 + 3 attempts, all conflicts; the retry behaviour does not retry conflicts again
    assert [(a.attempt, a.kind) for a in attempts_of(raised.value)] == [
        (1, "conflict"),
        (2, "conflict"),
        (3, "conflict"),
        (4, "conflict"),
    ]
    assert (handler.handled, handler.resolved) == (1, 3)
    assert (await orders.get("o-1")).status == "pending"
    assert handler.time.delays == []


async def test_a_transient_error_while_resolving_is_retried_from_a_fresh_first_attempt() -> None:
    # given: the first attempt is overtaken, the resolving one loses its connection
    class ListsResets(OvertakenUpdateOrderHandler):
        retry_on = (TransientError,)

    orders = InMemoryRepository(Order)
    await stored_order(orders)
    handler = ListsResets(orders, fail_resolving=True)
    mediator = in_memory_mediator(registry_with(handler))
    # when
    await mediator.send(UpdateOrder(order_id="o-1", changes={"status": "paid"}))
    # then: retried after one pause; the fresh attempt was overtaken again and resolved
    assert len(handler.time.delays) == 1
    assert handler.handled == 2
    assert handler.resolved == 1
    stored = await orders.get("o-1")
    assert (stored.status, stored.note) == ("paid", "n2")


def test_a_subclass_may_change_every_setting() -> None:
    class Patient(ResilientCommandHandler[UpdateOrder]):
        max_retries = 5
        retry_delay = 0.2
        exponential_backoff = False
        max_delay = 0.1

        async def _handle_internal(self, command: UpdateOrder) -> None:
            return None

    retry, resolve = Patient().pipeline_behaviors()
    assert isinstance(retry, RetryBehavior)
    assert isinstance(resolve, ConflictBehavior)
    assert retry.delays() == (0.1,) * 5
    assert resolve.max_retries == 5
