"""A projection worker process for R5, R15 and R17: a `ProjectionWorker` on PostgreSQL.

Run it by path::

    python tests/reliability/workers_projection.py --url URL --projection NAME \
        --app-name APP --worker-id ID [--history FILE] [--poll-interval S] [--lease-ttl S]

It projects `Deposited` events into the read-model table named like the projection
(`projection_support.balance_table`, created by the test) and into its commit log
``<name>_log``, through `BalanceProjector`, with `LeaseRecordingStorage` so each
commit-log row names the lease it was written under. Every connection carries
``application_name`` = ``--app-name`` (the test finds the worker's sessions by it).
With ``--history``, each handler call is recorded (op ``apply``, phase ``invoke``,
process ``<worker id>/<pid>``).

With ``--go FILE`` it prints ``ready`` once imported and waits for FILE to exist
before it starts, so a test can have the next process ready while one runs. It
prints ``started`` once the worker runs, then a line whenever the projection's
status changes (``status <state> owner <owner> epoch <epoch>``), and ``stopped``
after a SIGTERM made it stop gracefully. The worker's own log (lease lost,
retries, quarantines) goes to stderr. Failpoints come from ``CQRS_DDD_FAILPOINTS``
in its environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.history import HistoryLog
from projection_support import (
    BalanceProjector,
    LeaseRecordingStorage,
    balance_table,
    commit_log_table,
)

from cqrs_ddd_advanced_core.projections import ProjectionWorker, ProjectorRegistry
from cqrs_ddd_core.failpoints import FAILPOINTS_VARIABLE, parse_failpoints
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyEventStore, create_engine

STOP_GRACE_SECONDS = 10.0
GO_TIMEOUT_SECONDS = 300.0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--projection", required=True)
    parser.add_argument("--app-name", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--history", type=Path)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--lease-ttl", type=float, default=15.0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--status-every", type=float, default=0.25)
    parser.add_argument("--go", type=Path, help="print ready, start once this file exists")
    return parser.parse_args(argv)


async def report(worker: ProjectionWorker, name: str, stop: asyncio.Event, every: float) -> None:
    """Print the projection's status whenever its state, owner or epoch changes."""
    last: tuple[object, ...] | None = None
    while not stop.is_set():
        try:
            (status,) = await worker.status(name)
        except Exception as error:  # noqa: BLE001 - a terminated session; the next one may work
            print(f"status failed {type(error).__name__}", flush=True)  # noqa: T201
        else:
            now = (status.state, status.owner, status.epoch)
            if now != last:
                print(  # noqa: T201 - the test reads it
                    f"status {status.state} owner {status.owner} epoch {status.epoch} "
                    f"checkpoint {status.checkpoint}",
                    flush=True,
                )
                last = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def wait_for_go(go: Path | None) -> None:
    """With ``--go``: say ``ready`` (imports done), then wait for the file to appear."""
    if go is None:
        return
    print("ready", flush=True)  # noqa: T201 - the test waits for it
    deadline = time.monotonic() + GO_TIMEOUT_SECONDS
    while not await asyncio.to_thread(go.exists):  # bounded by the deadline
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go} did not appear within {GO_TIMEOUT_SECONDS:g} s")
        await asyncio.sleep(0.005)


async def run(args: argparse.Namespace) -> int:
    # a malformed CQRS_DDD_FAILPOINTS fails now, not at the first hit
    parse_failpoints(os.environ.get(FAILPOINTS_VARIABLE, ""))
    engine = create_engine(args.url, application_name=args.app_name, pool_size=4)
    history = (
        HistoryLog(args.history, proc=f"{args.worker_id}/{os.getpid()}") if args.history else None
    )
    projector = BalanceProjector(
        args.projection,
        engine,
        table=balance_table(args.projection),
        log_table=commit_log_table(args.projection),
        history=history,
    )
    store = SQLAlchemyEventStore(engine)
    worker = ProjectionWorker(
        ProjectorRegistry([projector]),
        store,
        args.batch_size,
        storage=LeaseRecordingStorage(store.worker_storage()),
        poll_interval=args.poll_interval,
        lease_ttl=args.lease_ttl,
        worker_id=args.worker_id,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await wait_for_go(args.go)
        await worker.start()
        print("started", flush=True)  # noqa: T201 - the test waits for it
        await report(worker, args.projection, stop, args.status_every)
        await worker.stop(grace=STOP_GRACE_SECONDS)
        print("stopped", flush=True)  # noqa: T201
    finally:
        await engine.dispose()
        if history is not None:
            history.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("cqrs_ddd_advanced_core.projections").setLevel(logging.INFO)
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
