"""A relay or consumer process for R8, R9 and R10, on one broker.

Run it by path::

    python tests/reliability/workers_relay.py relay --url DB --broker KIND \
        --space NAME --broker-url URL --owner NAME --history FILE \
        [--partitions N] [--lease-ttl S] [--timeout S] [--retry-backoff S] [--max-backoff S]
    python tests/reliability/workers_relay.py consumer --url DB --broker KIND \
        --space NAME --owner NAME --history FILE [--redelivery S]

``relay`` runs the outbox-table relay (``OutboxWorker``) with ``--partitions``
partitions, publishing through ``--broker-url`` (a fault proxy, or the
broker). Every publish is recorded in the history (``publish``,
``invoke``/``ok``/``fail``) with its partition and the lease epoch it ran
under; after a SIGTERM, the publisher's count of duplicates the broker
reported (``publisher``, JetStream only). ``consumer`` runs the broker's
subscriber into the shipping consumer (``relay_support.shipping_consumer``),
recording what each delivery became
(``receive``: ``handled``, ``duplicate``). Each prints ``started`` once
running and ``stopped`` after a SIGTERM; failpoints come from
``CQRS_DDD_FAILPOINTS`` (``consumer.after_handle_before_ack``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.history import HistoryLog
from relay_support import Broker, shipping_consumer

from cqrs_ddd_advanced_core.outbox import Partition
from cqrs_ddd_infrastructure_messaging import (
    MessageEnvelope,
    OutboxTableRelay,
    OutboxWorker,
)
from cqrs_ddd_infrastructure_messaging.publishing import BrokerPublisher
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyOutboxStore,
    SQLAlchemyWorkerStorage,
    create_engine,
)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["relay", "consumer"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--space", required=True)
    parser.add_argument("--broker-url", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--lease-ttl", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--retry-backoff", type=float, default=0.1)
    parser.add_argument("--max-backoff", type=float, default=1.0)
    parser.add_argument("--redelivery", type=float, default=2.0)
    return parser.parse_args(argv)


class RecordingPublisher:
    """Publishes through ``publisher`` and records each attempt with its partition and epoch."""

    def __init__(self, publisher: BrokerPublisher, history: HistoryLog, partitions: int) -> None:
        self.publisher = publisher
        self.history = history
        self.partitions = [Partition(index, partitions) for index in range(partitions)]
        self.worker: OutboxWorker | None = None

    async def publish_envelope(self, envelope: MessageEnvelope, *, topic: str) -> None:
        index = next(p.index for p in self.partitions if p.holds(envelope.aggregate_id))
        lease = self.worker.loops[index].lease if self.worker else None
        where: Mapping[str, object] = {
            "partition": index,
            "epoch": lease.epoch if lease else -1,
            "account": envelope.aggregate_id,
            "version": envelope.version,
        }
        key = str(envelope.message_id)
        self.history.record("publish", key, "invoke", **where)
        try:
            await self.publisher.publish_envelope(envelope, topic=topic)
        except Exception as error:
            self.history.record("publish", key, "fail", error=type(error).__name__, **where)
            raise
        self.history.record("publish", key, "ok", **where)


async def relay(args: argparse.Namespace, broker: Broker, history: HistoryLog) -> None:
    engine = create_engine(args.url)
    publisher = broker.publisher(args.broker_url, timeout=args.timeout)
    recording = RecordingPublisher(publisher, history, args.partitions)
    worker = OutboxWorker(
        OutboxTableRelay(
            name="relay",
            outbox=SQLAlchemyOutboxStore(engine),
            storage=SQLAlchemyWorkerStorage(engine),
            publisher=recording,
            topic=broker.topic,
            batch_size=20,
            lease_ttl=args.lease_ttl,
            partitions=args.partitions,
        ),
        owner=args.owner,
        poll_interval=0.05,
        retry_backoff=args.retry_backoff,
        max_backoff=args.max_backoff,
    )
    recording.worker = worker
    await publisher.start()
    try:
        await worker.start()
        await _serve()
        await worker.stop()
        duplicates = getattr(publisher, "duplicates", 0)  # JetStream counts the ones it dropped
        history.record("publisher", "duplicates", "ok", count=duplicates)
    finally:
        await publisher.close()
        await engine.dispose()


async def consume(args: argparse.Namespace, broker: Broker, history: HistoryLog) -> None:
    engine = create_engine(args.url)
    consumer = shipping_consumer(
        engine,
        on_receive=lambda message_id, outcome: history.record("receive", message_id, outcome),
    )
    subscriber = broker.subscriber(consumer, name=args.owner, redelivery=args.redelivery)
    await subscriber.start()
    try:
        await _serve()
    finally:
        await subscriber.close()
        await engine.dispose()


async def _serve() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("started", flush=True)  # noqa: T201 - the test waits for it
    await stop.wait()


async def run(args: argparse.Namespace) -> int:
    broker = Broker(args.broker, args.broker_url, args.space)
    with HistoryLog(args.history, proc=args.owner) as history:
        if args.role == "relay":
            await relay(args, broker, history)
        else:
            await consume(args, broker, history)
    print("stopped", flush=True)  # noqa: T201
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
