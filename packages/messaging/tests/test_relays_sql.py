"""Both relays on SQLite and PostgreSQL, into one JetStream stream: every event exactly once.

An event-sourced ``Ledger`` keeps its events in ``cqrs_events``; a
state-stored ``Profile`` writes its events to ``cqrs_outbox`` with its state.
The event-log relay and the outbox-table relay publish each kind once, never
both, and the outbox rows are marked published only after JetStream's ack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from jetstream_support import jetstream_messages
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core import (
    EventSourcedAggregateMixin,
    EventSourcedLoader,
    EventSourcedMediatorFactory,
    EventSourcedRepository,
    aggregate_event_handler,
)
from cqrs_ddd_advanced_core.outbox import Partition
from cqrs_ddd_advanced_core.workers import WorkerStatus
from cqrs_ddd_core import AggregateRoot, Command, DomainEvent, EventTypeRegistry, HandlerRegistry
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_infrastructure_messaging import (
    EventLogRelay,
    MessageEnvelope,
    NatsJetStreamPublisher,
    OutboxTableRelay,
    OutboxWorker,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStore,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
    SQLAlchemyWorkerStorage,
)
from cqrs_ddd_persistence_sqlalchemy.schema import outbox
from cqrs_ddd_testing import NatsNamespace

pytest_plugins = ["sqlalchemy_fixtures"]


class Touched(DomainEvent):
    pass


class Ledger(EventSourcedAggregateMixin, AggregateRoot):
    touches: int = 0

    def touch(self) -> None:
        self.trigger_event(Touched())

    @aggregate_event_handler
    def _touched(self, event: Touched) -> None:
        self.touches += 1


class Profile(AggregateRoot):
    touches: int = 0

    def touch(self) -> None:
        self.touches += 1
        self.record_event(Touched())


class TouchLedger(Command):
    aggregate_id: str


class TouchProfile(Command):
    aggregate_id: str


async def test_each_event_reaches_the_broker_once_through_one_relay(
    engine: AsyncEngine, nats_namespace: NatsNamespace
) -> None:
    event_store = SQLAlchemyEventStore(engine)
    ledgers = EventSourcedRepository(
        EventSourcedLoader(Ledger, event_store, EventTypeRegistry([Touched]))
    )
    profiles = SQLAlchemyRepository(Profile, engine)
    registry = HandlerRegistry()

    @registry.command_handler(TouchLedger)
    async def touch_ledger(command: TouchLedger) -> None:
        ledger = await ledgers.find(command.aggregate_id) or Ledger(id=command.aggregate_id)
        ledger.touch()
        await ledgers.save(ledger)

    @registry.command_handler(TouchProfile)
    async def touch_profile(command: TouchProfile) -> None:
        profile = await profiles.find(command.aggregate_id) or Profile(id=command.aggregate_id)
        profile.touch()
        await profiles.save(profile)

    mediator = EventSourcedMediatorFactory(
        event_store=event_store,
        uow_factory=lambda: SQLAlchemyUnitOfWork(engine),
        handler_registry=registry,
    ).create()
    for round_number in range(6):
        for number in range(3):
            await mediator.send(TouchLedger(aggregate_id=f"ledger-{number}"))
            if round_number % 2 == 0:
                await mediator.send(TouchProfile(aggregate_id=f"profile-{number}"))

    stream = nats_namespace.stream("events")
    storage = SQLAlchemyWorkerStorage(engine)
    publisher = NatsJetStreamPublisher(
        nats_namespace.url, stream=stream, subjects=[nats_namespace.subject(">")]
    )
    async with publisher:

        def topic(envelope: MessageEnvelope) -> str:
            return nats_namespace.subject(f"{envelope.aggregate_type}.{envelope.aggregate_id}")

        await OutboxWorker(
            EventLogRelay(
                name="log",
                event_store=event_store,
                storage=storage,
                publisher=publisher,
                topic=topic,
                batch_size=7,
            ),
            owner="relay",
        ).drain()
        await OutboxWorker(
            OutboxTableRelay(
                name="outbox", outbox=SQLAlchemyOutboxStore(engine), storage=storage,
                publisher=publisher, topic=topic, batch_size=4,
            ),
            owner="relay",
        ).drain()  # fmt: skip

    received = await jetstream_messages(nats_namespace.url, stream)
    assert publisher.duplicates == 0
    assert len(received) == 18 + 9  # each event once: 18 ledger touches, 9 profile touches
    assert len({envelope.message_id for envelope in received}) == 27
    for kind, touches in (("ledger", 6), ("profile", 3)):
        for number in range(3):
            versions = [e.version for e in received if e.aggregate_id == f"{kind}-{number}"]
            assert versions == list(range(1, touches + 1))
    async with engine.connect() as connection:
        unpublished = (
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
        assert await connection.scalar(unpublished) == 0


async def test_partitions_are_shared_by_workers_and_taken_over_when_a_holder_dies(
    engine: AsyncEngine, nats_namespace: NatsNamespace
) -> None:
    event_store = SQLAlchemyEventStore(engine)
    ledgers = EventSourcedRepository(
        EventSourcedLoader(Ledger, event_store, EventTypeRegistry([Touched]))
    )
    profiles = SQLAlchemyRepository(Profile, engine)
    for touch in range(5):
        for number in range(6):
            async with SQLAlchemyUnitOfWork(engine) as uow:
                with command_scope(uow):
                    ledger = await ledgers.find(f"ledger-{number}") or Ledger(id=f"ledger-{number}")
                    ledger.touch()
                    await ledgers.save(ledger)
                    profile = await profiles.find(f"profile-{number}")
                    profile = profile or Profile(id=f"profile-{number}")
                    profile.touch()
                    await profiles.save(profile)
                await uow.commit()
        assert touch == ledger.version - 1

    stream = nats_namespace.stream("events")
    storage = SQLAlchemyWorkerStorage(engine)
    publisher = NatsJetStreamPublisher(
        nats_namespace.url, stream=stream, subjects=[nats_namespace.subject(">")]
    )

    def topic(envelope: MessageEnvelope) -> str:
        return nats_namespace.subject(f"{envelope.aggregate_type}.{envelope.aggregate_id}")

    def relays(lease_ttl: float) -> list[EventLogRelay | OutboxTableRelay]:
        return [
            EventLogRelay(
                name="log", event_store=event_store, storage=storage, publisher=publisher,
                topic=topic, batch_size=7, lease_ttl=lease_ttl, partitions=3,
            ),
            OutboxTableRelay(
                name="outbox", outbox=SQLAlchemyOutboxStore(engine), storage=storage,
                publisher=publisher, topic=topic, batch_size=4, lease_ttl=lease_ttl, partitions=3,
            ),
        ]  # fmt: skip

    async with publisher:
        # the dead holder's leases last 3 s: time to see the partitions shared first
        dead = [OutboxWorker(relay, owner="dead", poll_interval=0.05) for relay in relays(3.0)]
        for worker in dead:  # holds partitions 0 and 1, publishes nothing, never lets go
            assert await worker.loops[0].take_lease()
            assert await worker.loops[1].take_lease()
        alive = [OutboxWorker(relay, owner="alive", poll_interval=0.05) for relay in relays(1.0)]
        for worker in alive:
            await worker.start()
        try:
            for worker in alive:
                await _wait_for(worker, lambda s: [x.owner for x in s] == ["dead", "dead", "alive"])
            for worker in alive:  # the dead holder's leases run out: all three taken over
                statuses = await _wait_for(
                    worker, lambda s: all(x.owner == "alive" and x.lag_events == 0 for x in s)
                )
                assert [s.name for s in statuses] == [
                    f"{worker.relay.name}:{index}of3" for index in range(3)
                ]
                status = await worker.status()
                assert (status.owner, status.lag_events) == ("alive", 0)
        finally:
            for worker in alive:
                await worker.stop()

    received = await jetstream_messages(nats_namespace.url, stream)
    assert publisher.duplicates == 0
    assert len(received) == 60
    for kind in ("ledger", "profile"):
        for number in range(6):
            versions = [e.version for e in received if e.aggregate_id == f"{kind}-{number}"]
            assert versions == [1, 2, 3, 4, 5]
    holders = {
        partition.index
        for partition in (Partition(index, 3) for index in range(3))
        for kind in ("ledger", "profile")
        for number in range(6)
        if partition.holds(f"{kind}-{number}")
    }
    assert holders == {0, 1, 2}  # the aggregates spread over every partition


async def _wait_for(
    worker: OutboxWorker, condition: Callable[[list[WorkerStatus]], bool]
) -> list[WorkerStatus]:
    for _ in range(200):  # up to 10 s
        statuses = await worker.statuses()
        if condition(statuses):
            return statuses
        await asyncio.sleep(0.05)
    raise AssertionError(statuses)


class Noted(DomainEvent):
    text: str


class Notebook(AggregateRoot):
    def note(self, text: str) -> None:
        self.record_event(Noted(text=text))


async def test_a_message_the_broker_refuses_is_set_aside_and_the_rest_go_on(
    engine: AsyncEngine, nats_namespace: NatsNamespace
) -> None:
    # given three outbox messages, the second larger than NATS accepts (1 MB)
    notebooks = SQLAlchemyRepository(Notebook, engine)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            notebook = Notebook(id="notebook-1")
            for text in ("first", "x" * 1_500_000, "third"):
                notebook.note(text)
            await notebooks.save(notebook)
            await uow.commit()
    stream = nats_namespace.stream("notes")
    store = SQLAlchemyOutboxStore(engine)
    publisher = NatsJetStreamPublisher(
        nats_namespace.url, stream=stream, subjects=[nats_namespace.subject(">")]
    )
    async with publisher:
        worker = OutboxWorker(
            OutboxTableRelay(
                name="notes", outbox=store, storage=SQLAlchemyWorkerStorage(engine),
                publisher=publisher, topic=lambda _: nats_namespace.subject("notes"),
                max_attempts=2,
            ),
            owner="relay",
        )  # fmt: skip
        # when the relay runs: the first failure is retried (after a back-off), the second
        # sets the message aside
        failures = []
        for _ in range(4):
            try:
                await worker.drain()
                break
            except Exception as error:  # noqa: BLE001 - each failure is the refused message's
                failures.append(error)
        status = await worker.status()

    # then the one before it went out; the big one waits for an operator, and the one
    # after it (the same notebook's) waits behind it, to keep the notebook's order
    received = await jetstream_messages(nats_namespace.url, stream)
    assert [envelope.payload["text"] for envelope in received] == ["first"]
    assert [type(error).__name__ for error in failures] == ["PublishNotConfirmedError"]
    (failed,) = await store.failed()
    assert (failed.message_type, failed.attempts) == ("Noted", 2)
    assert "PublishNotConfirmedError" in failed.last_error
    assert "payload" in failed.last_error.lower()
    backlog = await store.backlog()
    assert (backlog.count, backlog.set_aside, backlog.held) == (0, 1, 1)
    assert (status.lag_events, status.dead_letters) == (0, 2)
    # and replaying it puts it back in the queue, ahead of the one behind it
    assert await store.retry_failed([failed.id]) == 1
    assert await store.failed() == []
    assert (await store.backlog()).count == 2
    assert await store.retry_failed() == 0


async def test_an_event_the_relay_cannot_route_becomes_its_dead_letter_and_is_replayed(
    engine: AsyncEngine, nats_namespace: NatsNamespace
) -> None:
    # given three events, the second of which the deployed topic function cannot route
    store = SQLAlchemyEventStore(engine)
    for version, text in enumerate(("first", "unroutable", "third")):
        note = Noted(text=text, aggregate_id="notes-1")
        await store.append("notes-1", [note], expected_version=version)
    stream = nats_namespace.stream("log")

    def routed(envelope: MessageEnvelope) -> str:
        if envelope.payload["text"] == "unroutable":
            raise LookupError("no route for this note")
        return nats_namespace.subject("notes")

    publisher = NatsJetStreamPublisher(
        nats_namespace.url, stream=stream, subjects=[nats_namespace.subject(">")]
    )
    async with publisher:
        relay = EventLogRelay(
            name="notes-log", event_store=store, storage=SQLAlchemyWorkerStorage(engine),
            publisher=publisher, topic=routed, max_attempts=2,
        )  # fmt: skip
        worker = OutboxWorker(relay, owner="relay")
        # when the relay runs: retried once after a back-off, then set aside
        failures = []
        for _ in range(4):
            try:
                await worker.drain()
                break
            except LookupError as error:
                failures.append(error)
        letter, behind = await worker.dead_letters()
        status = await worker.status()
        # then the one before went out; the note after it waits behind it (its stream's
        # order), and the relay is not behind
        texts = [e.payload["text"] for e in await jetstream_messages(nats_namespace.url, stream)]
        assert texts == ["first"]
        assert len(failures) == 1
        assert (letter.event_type, letter.version, letter.attempts) == ("Noted", 2, 2)
        assert letter.error_class == "builtins.LookupError"
        assert (behind.version, behind.attempts) == (3, 0)
        assert behind.error_class.endswith("HeldBehindError")
        assert (status.lag_events, status.dead_letters) == (0, 2)

        # and once the route is mended, a replay publishes both, in order
        relay.topic = lambda envelope: nats_namespace.subject("notes")
        replayed = await worker.replay_dead_letters()
        assert (replayed.published, replayed.failed) == ([letter.position, behind.position], [])
        assert await worker.dead_letters() == []
        assert (await worker.replay_dead_letters()).published == []
    texts = [e.payload["text"] for e in await jetstream_messages(nats_namespace.url, stream)]
    assert texts == ["first", "unroutable", "third"]
