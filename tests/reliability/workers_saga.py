"""A saga worker process for R12: the R12 saga, its step handlers and its recovery worker.

Run it by path::

    python tests/reliability/workers_saga.py --url URL --source NAME --keys FILE \
        [--start-at UNIX_SECONDS] [--recovery-interval S] [--work S]

It delivers a ``Begin`` of its own (event id from ``--source``) for every key
in ``--keys`` (one per line), a few at a time, at ``--start-at`` (so two
workers deliver theirs at the same instant), then resumes stalled sagas every
``--recovery-interval`` seconds. Started again after a crash, it delivers its
``Begin`` events again: an at-least-once upstream, which the sagas absorb. It
prints ``started`` once its recovery worker runs and ``stopped`` after a
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from saga_support import Begin, begin_id, build_sagas

from cqrs_ddd_persistence_sqlalchemy import create_engine

BEGIN_CONCURRENCY = 4


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--keys", type=Path, required=True)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--recovery-interval", type=float, default=1.0)
    parser.add_argument("--work", type=float, default=0.0)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    engine = create_engine(args.url, pool_size=24, max_overflow=8)
    sagas = build_sagas(engine, recovery_interval=args.recovery_interval, work=args.work)
    keys = args.keys.read_text().split()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    gate = asyncio.Semaphore(BEGIN_CONCURRENCY)

    async def begin(key: str) -> None:
        async with gate:
            event = Begin(key=key, aggregate_id=key, event_id=begin_id(key, args.source))
            await sagas.manager.handle(event)

    try:
        await sagas.worker.start()
        print("started", flush=True)  # noqa: T201 - the test waits for it
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        await asyncio.gather(*(begin(key) for key in keys))
        print("begun", flush=True)  # noqa: T201
        await stop.wait()
        await sagas.worker.stop()
        print("stopped", flush=True)  # noqa: T201
    finally:
        await engine.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
