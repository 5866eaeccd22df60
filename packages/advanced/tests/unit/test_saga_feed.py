"""``SagaFeed``: sagas hear every stored event, even one whose in-process dispatch was lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar

import pytest

from cqrs_ddd_advanced_core.adapters.memory import (
    InMemoryEventStore,
    InMemorySagaRepository,
    InMemoryWorkerStorage,
)
from cqrs_ddd_advanced_core.sagas import SagaBuilder, SagaFeed, bootstrap_sagas
from cqrs_ddd_advanced_core.upcasting import EventDecoder
from cqrs_ddd_core import (
    Command,
    DomainEvent,
    EventDispatcher,
    HandlerRegistry,
    InMemoryUnitOfWork,
    Mediator,
    MessageTypeRegistry,
)
from cqrs_ddd_core.exceptions import FieldIssue, TransientError, ValidationError
from cqrs_ddd_core.ports.event_store import StoredEvent


class OrderCreated(DomainEvent):
    order_id: str


class OrderCreatedWithoutId(DomainEvent):  # what an older writer stored: no order_id
    event_type: ClassVar[str] = "OrderCreated"


class ReserveItems(Command):
    order_id: str


Fulfilment = (
    SagaBuilder("Fulfilment")
    .on(OrderCreated, send=lambda e: ReserveItems(order_id=e.order_id), step="reserving",
        complete=True)
    .build()
)  # fmt: skip


class OrderIdFromStream(EventDecoder):
    """Reads an OrderCreated stored without its order id: the stream names the order."""

    def decode(self, stored: StoredEvent) -> DomainEvent:
        if stored.event_type == "OrderCreated" and "order_id" not in stored.payload:
            stored = replace(stored, payload={**stored.payload, "order_id": stored.stream_id})
        return super().decode(stored)


class World:
    """A saga, its store, an event store the dispatcher never hears from, and the feed."""

    def __init__(self) -> None:
        self.reserved: list[str] = []
        handlers = HandlerRegistry()

        @handlers.command_handler(ReserveItems)
        async def reserve(command: ReserveItems) -> None:
            self.reserved.append(command.order_id)

        self.dispatcher = EventDispatcher()
        self.sagas = InMemorySagaRepository()
        self.events = InMemoryEventStore()
        self.storage = InMemoryWorkerStorage()
        self.mediator = mediator = Mediator(
            registry=handlers, uow_factory=InMemoryUnitOfWork, event_dispatcher=self.dispatcher
        )
        self.boot = bootstrap_sagas(
            sagas=[Fulfilment],
            repository=self.sagas,
            command_bus=mediator,
            message_registry=MessageTypeRegistry([ReserveItems]),
            event_dispatcher=self.dispatcher,
        )
        self.feed = SagaFeed(self.boot.manager, self.events, self.storage, owner="test")

    async def store(self, event: DomainEvent) -> DomainEvent:
        """Commit ``event`` to the log, as a command would, without dispatching it."""
        await self.events.append(event.aggregate_id or "", [event], expected_version=0)
        return event


@pytest.fixture
def world() -> World:
    return World()


async def test_a_stored_event_whose_dispatch_was_lost_still_starts_its_saga(world: World) -> None:
    await world.store(OrderCreated(order_id="o1", aggregate_id="o1"))
    assert world.reserved == []  # nobody dispatched it: the process died after the commit

    await world.feed.drain()

    state = await world.sagas.find("Fulfilment", "o1")
    assert state is not None
    assert state.status == "completed"
    assert world.reserved == ["o1"]
    assert (await world.feed.status()).lag_events == 0


async def test_an_event_dispatched_and_fed_is_handled_once(world: World) -> None:
    event = await world.store(OrderCreated(order_id="o2", aggregate_id="o2"))
    await world.dispatcher.dispatch([event])  # the in-process delivery did happen
    await world.feed.drain()
    await world.feed.drain()
    assert world.reserved == ["o2"]


async def test_an_event_that_no_longer_decodes_is_set_aside_and_the_feed_goes_on(
    world: World,
) -> None:
    bad = await world.store(OrderCreatedWithoutId(aggregate_id="old-1"))
    await world.store(OrderCreated(order_id="o3", aggregate_id="o3"))

    await world.feed.drain()

    assert world.reserved == ["o3"]
    (letter,) = await world.storage.dead_letters("sagas")
    assert (letter.event_id, letter.event_type, letter.stream_id) == (
        bad.event_id,
        "OrderCreated",
        "old-1",
    )
    assert letter.error_class == "cqrs_ddd_core.exceptions.EventDeserializationError"
    assert "order_id" in letter.error_message
    status = await world.feed.status()
    assert (status.checkpoint, status.dead_letters, status.kind) == (2, 1, "saga-feed")


async def test_the_feed_runs_in_the_background_until_stopped(world: World) -> None:
    await world.feed.start()
    try:
        await world.store(OrderCreated(order_id="o4", aggregate_id="o4"))
        for _ in range(200):
            if world.reserved:
                break
            await asyncio.sleep(0.01)
    finally:
        await world.feed.stop()
    assert world.reserved == ["o4"]
    assert not world.feed.running


class Explodes(DomainEvent):
    order_id: str


async def test_an_event_a_saga_keeps_failing_on_is_set_aside_after_its_attempts() -> None:
    world = World()

    def refuse(event: Explodes) -> ReserveItems:
        raise RuntimeError(f"cannot reserve for {event.order_id}")

    failing = SagaBuilder("Failing").on(Explodes, send=refuse, step="reserving").build()
    boot = bootstrap_sagas(
        sagas=[Fulfilment, failing],
        repository=world.sagas,
        command_bus=world.mediator,
        message_registry=MessageTypeRegistry([ReserveItems]),
    )
    feed = SagaFeed(
        boot.manager, world.events, world.storage, owner="test", retry_backoff=0.001, max_attempts=3
    )
    await world.store(OrderCreated(order_id="before", aggregate_id="before"))
    poison = await world.store(Explodes(order_id="x", aggregate_id="x"))
    await world.store(OrderCreated(order_id="after", aggregate_id="after"))

    await feed.start()  # the background loop retries a failed step, with back-off
    try:
        for _ in range(500):
            if "after" in world.reserved:
                break
            await asyncio.sleep(0.01)
    finally:
        await feed.stop()

    assert world.reserved == ["before", "after"]  # each once, the poison between them set aside
    (letter,) = await world.storage.dead_letters("sagas")
    assert (letter.event_id, letter.error_class, letter.attempts) == (
        poison.event_id,
        "builtins.RuntimeError",
        3,
    )
    assert "cannot reserve for x" in letter.error_message
    assert (await feed.status()).checkpoint == 3


async def test_a_grace_period_leaves_fresh_events_to_the_in_process_dispatch(world: World) -> None:
    feed = SagaFeed(world.boot.manager, world.events, world.storage, owner="t", grace=60.0)
    await world.store(OrderCreated(order_id="fresh", aggregate_id="fresh"))
    await feed.drain()
    assert world.reserved == []
    assert (await feed.status()).checkpoint == 0


async def test_a_new_feed_can_start_at_the_head_of_an_existing_log(world: World) -> None:
    await world.store(OrderCreated(order_id="old", aggregate_id="old"))
    assert await world.feed.start_at_head() is True
    await world.store(OrderCreated(order_id="new", aggregate_id="new"))
    await world.feed.drain()
    assert world.reserved == ["new"]


async def run_until(feed: SagaFeed, done: Callable[[], bool]) -> None:
    await feed.start()
    try:
        for _ in range(500):
            if done():
                break
            await asyncio.sleep(0.01)
    finally:
        await feed.stop()


async def test_a_validation_error_raised_by_a_saga_is_counted_and_set_aside() -> None:
    world = World()

    def invalid(event: Explodes) -> ReserveItems:
        raise ValidationError("the reservation", [FieldIssue("order_id", "is not allowed")])

    refusing = SagaBuilder("Refusing").on(Explodes, send=invalid, step="reserving").build()
    boot = bootstrap_sagas(
        sagas=[Fulfilment, refusing],
        repository=world.sagas,
        command_bus=world.mediator,
        message_registry=MessageTypeRegistry([ReserveItems]),
    )
    feed = SagaFeed(boot.manager, world.events, world.storage, owner="t", retry_backoff=0.001)
    await world.store(Explodes(order_id="x", aggregate_id="x"))
    await world.store(OrderCreated(order_id="after", aggregate_id="after"))

    await run_until(feed, lambda: "after" in world.reserved)

    (letter,) = await world.storage.dead_letters("sagas")
    assert (letter.error_class, letter.attempts) == ("cqrs_ddd_core.exceptions.ValidationError", 3)
    assert world.reserved == ["after"]


async def test_a_transient_failure_is_retried_until_it_passes_never_set_aside() -> None:
    world = World()
    failures = [0]

    def flaky(event: Explodes) -> ReserveItems:
        failures[0] += 1
        if failures[0] <= 5:  # more than max_attempts
            raise TransientError("the database is restarting")
        return ReserveItems(order_id=event.order_id)

    flaky_saga = SagaBuilder("Flaky").on(Explodes, send=flaky, step="reserving").build()
    boot = bootstrap_sagas(
        sagas=[flaky_saga],
        repository=world.sagas,
        command_bus=world.mediator,
        message_registry=MessageTypeRegistry([ReserveItems]),
    )
    feed = SagaFeed(boot.manager, world.events, world.storage, owner="t", retry_backoff=0.001)
    await world.store(Explodes(order_id="late", aggregate_id="late"))

    await run_until(feed, lambda: "late" in world.reserved)

    assert world.reserved == ["late"]
    assert await world.storage.dead_letters("sagas") == []


async def test_start_at_head_changes_nothing_once_the_feed_has_a_checkpoint(world: World) -> None:
    await world.store(OrderCreated(order_id="o1", aggregate_id="o1"))
    await world.feed.drain()
    await world.store(OrderCreated(order_id="o2", aggregate_id="o2"))
    assert await world.feed.start_at_head() is False
    await world.feed.drain()
    assert world.reserved == ["o1", "o2"]
    await world.feed.start()
    try:
        with pytest.raises(RuntimeError, match="before start"):
            await world.feed.start_at_head()
    finally:
        await world.feed.stop()


async def test_dead_letters_replayed_once_mended_start_their_saga_and_are_deleted(
    world: World,
) -> None:
    # given an event the feed set aside: it did not decode when the feed read it
    bad = await world.store(OrderCreatedWithoutId(aggregate_id="old-2"))
    await world.feed.drain()
    (letter,) = await world.feed.dead_letters()
    assert letter.event_id == bad.event_id

    # when it is replayed unmended, it fails again and stays, its attempts counted
    again = await world.feed.replay_dead_letters()
    assert (again.delivered, [failed.attempts for failed in again.failed]) == ([], [2])
    assert [kept.attempts for kept in await world.feed.dead_letters()] == [2]
    assert world.reserved == []

    # and once the feed can read it (the fix deployed: a decoder that fills the id in) ...
    world.feed.decoder = OrderIdFromStream(world.feed.decoder.event_registry)
    replayed = await world.feed.replay_dead_letters()

    # then the saga starts and the dead letter is gone; a second replay finds nothing
    assert (replayed.delivered, replayed.failed) == ([letter.position], [])
    assert world.reserved == ["old-2"]
    assert await world.feed.dead_letters() == []
    assert (await world.feed.replay_dead_letters()).delivered == []
    assert (await world.feed.status()).dead_letters == 0


async def test_a_stopped_feed_gives_its_lease_back_for_another_process(world: World) -> None:
    await world.feed.start()
    await world.store(OrderCreated(order_id="o9", aggregate_id="o9"))
    for _ in range(500):  # the feed's loop, in the background, delivers it
        if world.reserved == ["o9"]:
            break
        await asyncio.sleep(0.01)
    assert world.reserved == ["o9"]
    assert (await world.storage.record("sagas")).owner is not None

    await world.feed.stop()

    assert (await world.storage.record("sagas")).owner is None
    assert (await world.feed.status()).state == "stopped"
