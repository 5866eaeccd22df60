"""R8: the outbox survives a broker outage, on RabbitMQ, NATS JetStream and Redis Streams.

Commands deposit into 20 accounts at a steady rate (1,000 outbox messages at
CI size). A relay process publishes the outbox through a fault proxy; once
a fifth of the messages are published the proxy becomes a blackhole for 5 s
(the broker is unreachable: connections hang, nothing answers), then heals.
A consumer in this process handles every message through the inbox.

Then the relay's connection is reset (TCP RST) and two more deposits per
account are written: the relay must connect again and publish them.

Pass: at the broker, nothing lost and nothing unexpected (repeats allowed);
each message had exactly one business effect; each account's messages in
order; the outbox drained within 60 s of the broker's return (so no row was
marked sent without the broker's confirmation: such a row would be lost); the
relay's waits between a failed publish and the next attempt (taken from its
history, so the broker's timeout is not counted) were at least the first
back-off step, grew, and stayed under the cap: one attempt per back-off step,
no hot loop; on JetStream, the repeats the relay sent were reported and
dropped by the server (``Nats-Msg-Id``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from harness.history import HistoryRecord, read_history
from harness.proxy import FaultProxy
from harness.workers import WorkerProcess
from relay_support import (
    Delivery,
    RelayScenario,
    check_observed,
    drained,
    effect_counts,
    outbox_rows,
    published_count,
    shipping_consumer,
    until,
    write_deposits,
)

HERE = Path(__file__).parent
TIMEOUT = 1.0
"""Seconds the relay waits for a broker's confirmation (the outage lasts longer)."""
RETRY_BACKOFF = 0.25
"""The relay's first wait after a failure is twice this; each next one doubles."""
MAX_BACKOFF = 2.0


def proxied(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return parts._replace(netloc=netloc).geturl()


async def run_outage(
    scenario: RelayScenario,
    *,
    accounts: int,
    per_account: int,
    outage: float,
) -> None:
    broker, engine, seed = scenario.broker, scenario.engine, scenario.seed
    database_url, tmp_path = scenario.database_url, scenario.tmp_path
    total = accounts * per_account + accounts * 2  # two more each after the reset
    await broker.prepare()
    target = urlsplit(broker.url)
    history_file = tmp_path / "history.jsonl"
    subscriber = broker.subscriber(shipping_consumer(engine))
    await subscriber.start()
    async with FaultProxy(target.hostname or "127.0.0.1", target.port or 0) as proxy:
        relay = WorkerProcess.python(
            HERE / "workers_relay.py",
            "relay", "--url", database_url, "--broker", broker.kind, "--space", broker.space,
            "--broker-url", proxied(broker.url, proxy.port), "--owner", "relay-1",
            "--history", str(history_file), "--timeout", str(TIMEOUT),
            "--retry-backoff", str(RETRY_BACKOFF), "--max-backoff", str(MAX_BACKOFF),
            log_dir=tmp_path, name="relay",
        )  # fmt: skip
        try:
            async with relay:
                await relay.wait_for_output("started", within=30)
                writing = asyncio.create_task(
                    write_deposits(
                        engine, accounts=accounts, per_account=per_account, rate=400, seed=seed
                    )
                )

                async def fifth_published() -> bool:
                    return await published_count(engine) >= accounts * per_account // 5

                await until(fifth_published, within=60)  # then the broker goes away
                proxy.blackhole()
                outage_began = time.monotonic()
                await asyncio.sleep(outage)
                proxy.pass_through()
                returned = time.monotonic()
                await writing
                await until(lambda: drained(engine, accounts * per_account), within=60)
                drained_after = time.monotonic() - returned
                # the relay's connection is reset: it connects again and goes on
                assert proxy.reset_now() >= 1
                await write_deposits(engine, accounts=accounts, per_account=2, rate=200, seed=seed)
                await until(lambda: drained(engine, total), within=60, every=0.1)
                await asyncio.sleep(1.0)  # time for a wrong second effect to show
        finally:
            await subscriber.close()

    written = await outbox_rows(engine)
    delivery = check_observed(written, await broker.observed())
    effects = await effect_counts(engine)
    records = read_history(history_file)
    waits = backoff_waits(records, outage_began, returned)
    confirmed = [r for r in records if r.op == "publish" and r.phase == "ok"]
    print(  # noqa: T201 - shown when the test fails
        f"R8 {broker.kind}: {delivery}, effects {sum(effects.values())},"
        f" drained {drained_after:.1f}s after the return, waits after failed publishes"
        f" during the outage {[round(wait, 2) for wait in waits]},"
        f" {len(confirmed)} confirmed publishes"
    )
    assert len(written) == total
    assert delivery.ok, delivery
    assert set(effects) == {message_id for message_id, _, _ in written}
    assert set(effects.values()) == {1}  # exactly one business effect each
    assert drained_after <= 60
    assert len(confirmed) >= total
    # retried with back-off: each wait at least the first step, growing, capped
    assert len(waits) >= 2, waits
    assert all(wait >= 2 * RETRY_BACKOFF * 0.9 for wait in waits), waits
    assert waits[-1] >= waits[0] + RETRY_BACKOFF, waits
    assert all(wait <= MAX_BACKOFF + 0.5 for wait in waits), waits
    if broker.kind == "nats":
        assert_repeats_dropped(records, delivery)


def assert_repeats_dropped(records: list[HistoryRecord], delivery: Delivery) -> None:
    """JetStream reported the relay's repeats as duplicates, and the stream holds none."""
    reported = [r.extra["count"] for r in records if r.op == "publisher"]
    assert len(reported) == 1
    assert isinstance(reported[0], int)
    assert reported[0] >= 1
    assert delivery.duplicates == 0


def backoff_waits(records: list[HistoryRecord], began: float, returned: float) -> list[float]:
    """How long the relay waited after each publish that failed during the outage.

    From a failure to the next attempt (the page read again, then published):
    the back-off alone, whatever the broker's timeout.
    """
    publishes = [r for r in records if r.op == "publish"]
    waits = []
    for failed, following in itertools.pairwise(publishes):
        if failed.phase == "fail" and began <= failed.t <= returned and following.phase == "invoke":
            waits.append(following.t - failed.t)
    return waits


SIZES = [
    pytest.param({"accounts": 20, "per_account": 50, "outage": 5.0}, id="ci"),
    pytest.param(
        {"accounts": 100, "per_account": 100, "outage": 30.0}, id="soak", marks=pytest.mark.soak
    ),
]


@pytest.mark.parametrize("size", SIZES)
async def test_r8_outbox_survives_a_broker_outage(
    relay_scenario: RelayScenario, size: dict[str, Any]
) -> None:
    await run_outage(relay_scenario, **size)
