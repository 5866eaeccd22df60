"""What a relay sets aside, and what it does not: on SQLite and PostgreSQL.

A message the broker refuses is set aside after ``max_attempts``; one it did
not answer about (a timeout, a lost connection) counts nothing. An
aggregate's later messages wait behind the one set aside, so that a replay
sends them in the order they were written. The broker here is a scripted
stand-in (the real brokers' refusals are in ``test_relays_sql.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.domain.exceptions import WorkHaltedError
from cqrs_ddd_advanced_core.workers import Lease, WorkerLoop
from cqrs_ddd_core import AggregateRoot, DomainEvent
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_core.wakeup import Wakeup
from cqrs_ddd_infrastructure_messaging import (
    EventLogRelay,
    MessageEnvelope,
    OutboxTableRelay,
    OutboxWorker,
    PublishNotConfirmedError,
)
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyOutboxStore,
    SQLAlchemyRepository,
    SQLAlchemyUnitOfWork,
    SQLAlchemyWorkerStorage,
)

pytest_plugins = ["sqlalchemy_fixtures"]


class Said(DomainEvent):
    text: str


class Speaker(AggregateRoot):
    def say(self, text: str) -> None:
        self.record_event(Said(text=text))


class ScriptedBroker:
    """Publishes by recording; refuses the texts in ``refuse``; times out ``timeouts`` times."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.refuse: set[str] = set()
        self.timeouts = 0

    async def publish_envelope(self, envelope: MessageEnvelope, *, topic: str) -> None:
        message_id = str(envelope.message_id)
        if self.timeouts:
            self.timeouts -= 1
            raise PublishNotConfirmedError(
                "scripted", topic, message_id, "no confirmation in 1 s", refused=False
            )
        text = envelope.payload["text"]
        if text in self.refuse:
            raise PublishNotConfirmedError("scripted", topic, message_id, "message too large")
        self.sent.append(text)


async def say(engine: AsyncEngine, *lines: tuple[str, str]) -> None:
    """Have each (speaker, text) said, in order, each in its own transaction."""
    speakers = SQLAlchemyRepository(Speaker, engine)
    for speaker_id, text in lines:
        async with SQLAlchemyUnitOfWork(engine) as uow:
            with command_scope(uow):
                speaker = await speakers.find(speaker_id) or Speaker(id=speaker_id)
                speaker.say(text)
                await speakers.save(speaker)
                await uow.commit()


async def drain_until_quiet(worker: OutboxWorker, attempts: int = 8) -> list[str]:
    """Drain, again after each failure (the worker's back-off); return the failures."""
    failures = []
    for _ in range(attempts):
        try:
            await worker.drain()
            return failures
        except PublishNotConfirmedError as error:
            failures.append(error.reason)
    raise AssertionError(f"still failing after {attempts} drains: {failures}")


def outbox_relay(engine: AsyncEngine, broker: ScriptedBroker) -> OutboxWorker:
    relay = OutboxTableRelay(
        name="speech", outbox=SQLAlchemyOutboxStore(engine),
        storage=SQLAlchemyWorkerStorage(engine), publisher=broker,
        topic=lambda envelope: "speech", max_attempts=1,
    )  # fmt: skip
    return OutboxWorker(relay, owner="relay")


async def test_a_broker_that_does_not_answer_is_no_fault_of_the_message(
    engine: AsyncEngine,
) -> None:
    # given two messages, and a broker that times out four times
    await say(engine, ("ada", "one"), ("ada", "two"))
    broker = ScriptedBroker()
    broker.timeouts = 4
    # when the relay (which sets aside at the first refusal) runs through it
    failures = await drain_until_quiet(outbox_relay(engine, broker))
    # then nothing was set aside: both went out, in order, once it answered
    assert failures == ["no confirmation in 1 s"] * 4
    assert broker.sent == ["one", "two"]
    store = SQLAlchemyOutboxStore(engine)
    assert await store.failed() == []
    assert (await store.backlog()).count == 0


async def test_an_aggregates_later_messages_wait_behind_the_one_set_aside(
    engine: AsyncEngine,
) -> None:
    # given ada's three messages with bob's between, and a broker refusing ada's first
    await say(engine, ("ada", "a1"), ("bob", "b1"), ("ada", "a2"), ("ada", "a3"))
    broker = ScriptedBroker()
    broker.refuse = {"a1"}
    worker = outbox_relay(engine, broker)
    # when the relay runs
    await drain_until_quiet(worker)
    # then bob's went out; ada's first was set aside and her later ones wait behind it
    store = SQLAlchemyOutboxStore(engine)
    assert broker.sent == ["b1"]
    assert [message.message_type for message in await store.failed()] == ["Said"]
    backlog = await store.backlog()
    assert (backlog.count, backlog.set_aside, backlog.held) == (0, 1, 2)
    status = await worker.status()  # nothing left to send: three for an operator
    assert (status.kind, status.lag_events, status.dead_letters) == ("outbox-relay", 0, 3)
    # and once the refusal is mended and the message put back, ada's go out in order
    broker.refuse.clear()
    assert await store.retry_failed() == 1
    await drain_until_quiet(worker)
    assert broker.sent == ["b1", "a1", "a2", "a3"]
    assert (await worker.status()).dead_letters == 0


async def test_a_streams_later_events_are_set_aside_behind_its_dead_letter(
    engine: AsyncEngine,
) -> None:
    # given ada's events with bob's between, in the log, and a broker refusing ada's first
    log = SQLAlchemyEventStore(engine)
    for stream, version, text in (("ada", 0, "a1"), ("bob", 0, "b1"), ("ada", 1, "a2")):
        await log.append(stream, [Said(text=text, aggregate_id=stream)], expected_version=version)
    broker = ScriptedBroker()
    broker.refuse = {"a1"}
    relay = EventLogRelay(
        name="log", event_store=log, storage=SQLAlchemyWorkerStorage(engine),
        publisher=broker, topic=lambda envelope: "speech", max_attempts=1,
    )  # fmt: skip
    worker = OutboxWorker(relay, owner="relay")
    # when the relay runs
    await drain_until_quiet(worker)
    # then bob's went out, ada's first is a dead letter and her second waits behind it
    assert broker.sent == ["b1"]
    letters = await worker.dead_letters()
    assert [(letter.stream_id, letter.version) for letter in letters] == [("ada", 1), ("ada", 2)]
    assert letters[1].error_class.endswith("HeldBehindError")
    status = await worker.status()
    assert (status.lag_events, status.dead_letters) == (0, 2)
    # and a replay while still refused sends nothing of ada's (her order holds)
    again = await worker.replay_dead_letters()
    assert (again.published, len(again.failed)) == ([], 1)
    assert broker.sent == ["b1"]
    # once mended, it sends both, in order, and a new event of ada's goes out after them
    broker.refuse.clear()
    replayed = await worker.replay_dead_letters()
    assert replayed.published == [letter.position for letter in letters]
    await log.append("ada", [Said(text="a3", aggregate_id="ada")], expected_version=2)
    await drain_until_quiet(worker)
    assert broker.sent == ["b1", "a1", "a2", "a3"]
    assert await worker.dead_letters() == []


class Failing:
    """A job whose every step fails, counting the attempts."""

    name = "failing"
    kind = "test"

    def __init__(self) -> None:
        self.steps = 0

    def leased(self, lease: Lease) -> None:
        return None

    async def step(self, lease: Lease) -> bool:
        self.steps += 1
        raise RuntimeError("this step always fails")

    async def halted(self, error: WorkHaltedError, lease: Lease | None) -> None:
        return None


async def test_a_back_off_is_not_cut_short_by_new_work(engine: AsyncEngine) -> None:
    # given a loop whose step keeps failing, backing off 0.2 s at least
    job, nudge = Failing(), Wakeup()
    loop = WorkerLoop(
        job, SQLAlchemyWorkerStorage(engine).leases, owner="w", nudge=nudge,
        lease_ttl=10.0, poll_interval=0.05, retry_backoff=0.1, max_backoff=0.2,
    )  # fmt: skip
    stopping = asyncio.Event()
    task = asyncio.create_task(loop.run(stopping))
    # when new work is announced all the time for 0.6 s
    for _ in range(60):
        nudge.notify()
        await asyncio.sleep(0.01)
    stopping.set()
    notify: Callable[[], None] = nudge.notify
    notify()
    async with asyncio.timeout(2):  # and stopping still ends the back-off at once
        await task
    # then the step was tried a handful of times, not at every announcement
    assert 1 <= job.steps <= 5


def test_the_publishers_blame_a_message_only_for_what_the_broker_said_of_it() -> None:
    from nats.errors import ConnectionClosedError, MaxPayloadError, NoRespondersError
    from redis.exceptions import (
        ConnectionError as RedisConnectionError,
    )
    from redis.exceptions import (
        OutOfMemoryError,
        ReadOnlyError,
        ResponseError,
    )

    from cqrs_ddd_infrastructure_messaging import nats_jetstream, redis_streams

    # the entry itself refused: counted against it
    assert redis_streams._refused(ResponseError("WRONGTYPE Operation against a key"))
    assert nats_jetstream._refused(MaxPayloadError())
    # the server's state, or no answer: the broker is away, nothing is counted
    for unwell in (
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
        ReadOnlyError("You can't write against a read only replica."),
        ResponseError("MISCONF Redis is configured to save RDB snapshots"),
        RedisConnectionError("Connection reset by peer"),
    ):
        assert not redis_streams._refused(unwell), unwell
    for away in (TimeoutError(), ConnectionClosedError(), NoRespondersError()):
        assert not nats_jetstream._refused(away), away
