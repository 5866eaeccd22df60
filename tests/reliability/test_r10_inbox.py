"""R10: the inbox makes redelivery produce one effect, on RabbitMQ, JetStream and Redis.

1,000 messages (CI size) are published; two consumer processes handle them
through the inbox (``SQLAlchemyInbox``, the effect and the claim in one
transaction). Consumers crash at the failpoint between handling and
acknowledging (``consumer.after_handle_before_ack``: the effect is committed,
the broker never hears of it), 4 times at CI size, and 3 more are SIGKILLed
at random moments; each is replaced by a fresh process. RabbitMQ requeues
what a dead consumer held, JetStream redelivers after its ack wait, Redis's
pending entries are reclaimed with ``XAUTOCLAIM``.

Pass: exactly one business effect per message, the inbox holds one claim per
message, and every crash at the failpoint came back as a delivery the inbox
recognised as a duplicate. Then the retention window is shown to be real:
with claims older than 1 s purged, the same message delivered again is
handled again (a second effect), which is why the window must outlast the
broker's redelivery horizon.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness.history import read_history
from harness.workers import WorkerProcess
from relay_support import (
    Broker,
    RelayScenario,
    effect_counts,
    outbox_rows,
    until,
    write_deposits,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_infrastructure_messaging import MessageEnvelope, OutboxTableRelay, OutboxWorker
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyInbox,
    SQLAlchemyOutboxStore,
    SQLAlchemyWorkerStorage,
)
from cqrs_ddd_persistence_sqlalchemy.schema import inbox as inbox_table
from cqrs_ddd_persistence_sqlalchemy.schema import outbox

HERE = Path(__file__).parent
CONSUMERS = 2
REDELIVERY = 2.0


class Consumers:
    """The consumer processes of one run, replaced when they die."""

    def __init__(
        self, broker: Broker, database_url: str, tmp_path: Path, seed: int, hits: tuple[int, int]
    ) -> None:
        self.broker = broker
        self.hits = hits
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.history = tmp_path / "history.jsonl"
        self.chooser = random.Random(seed)
        self.slots: list[WorkerProcess | None] = [None] * CONSUMERS
        self.armed = [False] * CONSUMERS
        self.started = 0
        self.crashes = 0  # died at the failpoint
        self.armed_left = 0  # crashes still to arm

    async def start(self, slot: int, *, wait: bool = False) -> None:
        """Start a consumer in ``slot``; with ``wait``, wait until it consumes."""
        self.started += 1
        owner = f"consumer-{self.started}"
        armed = self.armed_left > 0
        if armed:
            self.armed_left -= 1
        self.armed[slot] = armed
        hit = self.chooser.randint(*self.hits)
        process = WorkerProcess.python(
            HERE / "workers_relay.py",
            "consumer", "--url", self.database_url, "--broker", self.broker.kind,
            "--space", self.broker.space, "--broker-url", self.broker.url, "--owner", owner,
            "--history", str(self.history), "--redelivery", str(REDELIVERY),
            env={"CQRS_DDD_FAILPOINTS": f"consumer.after_handle_before_ack:crash@{hit}"}
            if armed else {},
            log_dir=self.tmp_path, name=owner,
        )  # fmt: skip
        process.start()
        self.slots[slot] = process
        if wait:
            await process.wait_for_output("started", within=30)

    async def replace_the_dead(self) -> None:
        for slot, process in enumerate(self.slots):
            if process is not None and process.returncode is not None:
                self.crashes += process.returncode == -signal.SIGKILL
                self.armed[slot] = False
                await self.start(slot)

    @property
    def settled(self) -> bool:
        """Every crash armed has happened, and every slot runs."""
        running = all(p is not None and p.is_running for p in self.slots)
        return running and self.armed_left == 0 and not any(self.armed)

    async def kill_one(self) -> None:
        slot = self.chooser.randrange(CONSUMERS)
        process = self.slots[slot]
        if process is not None and process.is_running:
            process._signal(signal.SIGKILL)
            await process.wait(within=10)
            self.armed_left += self.armed[slot]  # its crash is still owed
            await self.start(slot)

    async def stop_all(self) -> None:
        for process in self.slots:
            if process is not None:
                await process.stop()


async def publish_all(broker: Broker, engine: AsyncEngine) -> None:
    """Publish the whole outbox once, in this process."""
    publisher = broker.publisher()
    async with publisher:
        relay = OutboxTableRelay(
            name="relay",
            outbox=SQLAlchemyOutboxStore(engine),
            storage=SQLAlchemyWorkerStorage(engine),
            publisher=publisher,
            topic=broker.topic,
            batch_size=100,
        )
        await OutboxWorker(relay, owner="publisher").drain()


async def run_redeliveries(
    scenario: RelayScenario,
    *,
    accounts: int,
    per_account: int,
    failpoint_crashes: int,
    hits: tuple[int, int],
    random_kills: int = 3,
) -> None:
    broker, engine, seed = scenario.broker, scenario.engine, scenario.seed
    database_url, tmp_path = scenario.database_url, scenario.tmp_path
    total = accounts * per_account
    await broker.prepare()
    await write_deposits(engine, accounts=accounts, per_account=per_account, rate=2000, seed=seed)
    consumers = Consumers(broker, database_url, tmp_path, seed, hits)
    consumers.armed_left = failpoint_crashes
    try:
        for slot in range(CONSUMERS):
            await consumers.start(slot, wait=True)
        await publish_all(broker, engine)
        kill_at = sorted(consumers.chooser.uniform(0.1, 0.9) * total for _ in range(random_kills))

        async def done() -> bool:
            await consumers.replace_the_dead()
            handled = sum((await effect_counts(engine)).values())
            while kill_at and handled >= kill_at[0]:
                kill_at.pop(0)
                await consumers.kill_one()
            return handled >= total and consumers.settled

        await until(done, within=240 + 3 * failpoint_crashes, every=0.2)  # ~1 s a restart
        await asyncio.sleep(REDELIVERY + 1.5)  # every redelivery due has come
        effects = await effect_counts(engine)
        async with engine.connect() as connection:
            claims = await connection.scalar(select(func.count()).select_from(inbox_table))
        records = read_history(consumers.history)
        outcomes = Counter(r.phase for r in records if r.op == "receive")
        print(  # noqa: T201 - shown when the test fails
            f"R10 {broker.kind}: effects {sum(effects.values())} of {total},"
            f" deliveries {dict(outcomes)}, crashes at the failpoint {consumers.crashes},"
            f" consumers started {consumers.started}"
        )
        assert len(await outbox_rows(engine)) == total
        assert len(effects) == total
        assert set(effects.values()) == {1}
        assert claims == total
        assert consumers.crashes >= failpoint_crashes
        assert outcomes["duplicate"] >= failpoint_crashes  # each came back, recognised

        # the retention window is real: a claim purged, the message is handled again
        await asyncio.sleep(1.1)
        assert await SQLAlchemyInbox(engine).purge(older_than=1.0) == total
        await republish_first(broker, engine)
        first = await first_message(engine)

        async def handled_again() -> bool:
            return (await effect_counts(engine))[first] == 2

        await until(handled_again, within=30)
    finally:
        await consumers.stop_all()


async def first_message(engine: AsyncEngine) -> object:
    async with engine.connect() as connection:
        return await connection.scalar(select(outbox.c.message_id).order_by(outbox.c.id).limit(1))


async def republish_first(broker: Broker, engine: AsyncEngine) -> None:
    """Deliver the outbox's first message again (as a broker redelivering late would)."""
    async with engine.connect() as connection:
        document = await connection.scalar(select(outbox.c.payload).order_by(outbox.c.id).limit(1))
    envelope = MessageEnvelope.of_document(document)
    publisher = broker.publisher()
    async with publisher:
        if broker.kind == "nats":  # past JetStream's own duplicate window: another id header
            await publisher._send(
                broker.topic(envelope), envelope.to_bytes(), f"late-{envelope.message_id}", {}
            )
        else:
            await publisher.publish_envelope(envelope, topic=broker.topic(envelope))


SIZES = [
    pytest.param(
        {
            "accounts": 20,
            "per_account": 50,
            "failpoint_crashes": 4,
            "hits": (20, 80),
            "random_kills": 3,
        },
        id="ci",
    ),
    pytest.param(
        {
            "accounts": 100,
            "per_account": 100,
            "failpoint_crashes": 1000,
            "hits": (1, 9),
            "random_kills": 3,
        },
        id="soak",
        marks=pytest.mark.soak,
    ),
]


@pytest.mark.parametrize("size", SIZES)
async def test_r10_redelivery_produces_one_effect(
    relay_scenario: RelayScenario, size: dict[str, Any]
) -> None:
    await run_redeliveries(relay_scenario, **size)
