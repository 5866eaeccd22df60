"""A command scheduler worker process for R11: a `CommandSchedulerWorker` on SQL.

Run it by path::

    python tests/reliability/workers_scheduler.py --url URL --worker-id ID \
        --history FILE [--lease-ttl S] [--batch-size N] [--clock-skew S]

It runs ``RunOnce`` commands (`scheduler_support`) as they fall due, recording
each handler call, completion and commit in the history log (process
``<worker id>/<pid>``). ``--clock-skew`` makes this process's clock (``time.time``)
run that many seconds fast: due time is the database's business, so nothing may
run early because of it. It prints ``started`` once the worker runs and
``stopped`` after a SIGTERM made it stop gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.history import HistoryLog
from scheduler_support import build_service

from cqrs_ddd_advanced_core.scheduling import CommandSchedulerWorker
from cqrs_ddd_persistence_sqlalchemy import create_engine


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--lease-ttl", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--clock-skew", type=float, default=0.0)
    return parser.parse_args(argv)


def skew_clock(seconds: float) -> None:
    """Make ``time.time`` (and ``time.time_ns``) of this process run ``seconds`` fast."""
    if not seconds:
        return
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() + seconds  # type: ignore[assignment]
    time.time_ns = lambda: real_time_ns() + int(seconds * 1e9)  # type: ignore[assignment]


async def run(args: argparse.Namespace) -> int:
    skew_clock(args.clock_skew)
    engine = create_engine(args.url, pool_size=args.batch_size + 4)
    history = HistoryLog(args.history, proc=f"{args.worker_id}/{os.getpid()}")
    service = build_service(engine, history, lease_ttl=args.lease_ttl)
    worker = CommandSchedulerWorker(
        service, poll_interval=1.0, batch_size=args.batch_size, owner=args.worker_id
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await worker.start()
        print("started", flush=True)  # noqa: T201 - the test waits for it
        await stop.wait()
        await worker.stop()
        print("stopped", flush=True)  # noqa: T201
    finally:
        await engine.dispose()
        history.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
