"""R8: the outbox survives a broker outage, on RabbitMQ, NATS JetStream and Redis Streams.

Commands deposit into 20 accounts at a steady rate (1,000 outbox messages at
CI size). A relay process publishes the outbox through a fault proxy; once
a fifth of the messages are published the proxy becomes a blackhole for 5 s
(the broker is unreachable: connections hang, nothing answers), then heals.
A consumer in this process handles every message through the inbox.

Pass: at the broker, nothing lost and nothing unexpected (repeats allowed);
each message had exactly one business effect; each account's messages in
order; the outbox drained within 60 s of the broker's return (so no row was
marked sent without the broker's confirmation: such a row would be lost); the
relay retried with growing, capped delays (no hot loop); on JetStream, the
repeats the relay sent were dropped by the server (``Nats-Msg-Id``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness.history import read_history
from harness.proxy import FaultProxy
from harness.workers import WorkerProcess
from relay_support import (
    Broker,
    check_observed,
    drained,
    effect_counts,
    outbox_rows,
    published_count,
    shipping_consumer,
    until,
    write_deposits,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_testing import PostgresDatabase

HERE = Path(__file__).parent
TIMEOUT = 1.0
"""Seconds the relay waits for a broker's confirmation (the outage lasts longer)."""
MAX_BACKOFF = 1.0


def proxied(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return parts._replace(netloc=netloc).geturl()


async def run_outage(
    broker: Broker,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
    *,
    accounts: int,
    per_account: int,
    outage: float,
    seed: int,
) -> None:
    total = accounts * per_account
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
            log_dir=tmp_path, name="relay",
        )  # fmt: skip
        try:
            async with relay:
                await relay.wait_for_output("started", within=30)
                writing = asyncio.create_task(
                    write_deposits(
                        engine, accounts=accounts, per_account=per_account, rate=200, seed=seed
                    )
                )

                async def fifth_published() -> bool:
                    return await published_count(engine) >= total // 5

                await until(fifth_published, within=60)  # then the broker goes away
                proxy.blackhole()
                outage_began = time.monotonic()
                await asyncio.sleep(outage)
                proxy.pass_through()
                returned = time.monotonic()
                await writing
                await until(lambda: drained(engine, total), within=60, every=0.1)
                drained_after = time.monotonic() - returned
                await asyncio.sleep(1.0)  # time for a wrong second effect to show
        finally:
            await subscriber.close()

    written = await outbox_rows(engine)
    delivery = check_observed(written, await broker.observed())
    effects = await effect_counts(engine)
    records = read_history(history_file)
    failures = [r.t for r in records if r.op == "publish" and r.phase == "fail"]
    confirmed = [r for r in records if r.op == "publish" and r.phase == "ok"]
    during = [t for t in failures if outage_began <= t <= returned + TIMEOUT]
    print(  # noqa: T201 - shown when the test fails
        f"R8 {broker.kind}: {delivery}, effects {sum(effects.values())},"
        f" drained {drained_after:.1f}s after the return,"
        f" {len(failures)} failed publishes ({len(during)} during the outage),"
        f" {len(confirmed)} confirmed publishes"
    )
    assert len(written) == total
    assert delivery.ok, delivery
    assert set(effects) == {message_id for message_id, _, _ in written}
    assert set(effects.values()) == {1}  # exactly one business effect each
    assert drained_after <= 60
    # the outage was felt, and retried with back-off: never a hot loop
    assert during, "no publish failed while the broker was away"
    gaps = [later - earlier for earlier, later in itertools.pairwise(during)]
    assert all(gap >= TIMEOUT * 0.9 for gap in gaps), gaps
    assert len(during) <= outage / TIMEOUT + 4, during
    assert max(gaps, default=0.0) <= TIMEOUT + MAX_BACKOFF * 2 + 1.0, gaps
    assert len(confirmed) >= total
    if broker.kind == "nats":  # the relay's repeats were reported, and dropped by the server
        reported = [r.extra["count"] for r in records if r.op == "publisher"]
        assert len(reported) == 1
        assert reported[0] >= 1
        assert delivery.duplicates == 0


async def test_r8_outbox_survives_a_broker_outage(
    broker: Broker,
    relay_engine: AsyncEngine,
    postgres_database: PostgresDatabase,
    tmp_path: Path,
    seed: int,
) -> None:
    await run_outage(
        broker,
        relay_engine,
        postgres_database.sqlalchemy_url,
        tmp_path,
        accounts=20,
        per_account=50,
        outage=5.0,
        seed=seed,
    )


@pytest.mark.soak
async def test_r8_soak(
    broker: Broker,
    relay_engine: AsyncEngine,
    postgres_database: PostgresDatabase,
    tmp_path: Path,
    seed: int,
) -> None:
    await run_outage(
        broker,
        relay_engine,
        postgres_database.sqlalchemy_url,
        tmp_path,
        accounts=100,
        per_account=100,
        outage=30.0,
        seed=seed,
    )
