"""A writer process for the SQLite scenarios (R3, R16): appends to one file, logs every step.

Run it by path::

    python tests/reliability/workers_sqlite_append.py MODE --url URL --history FILE --proc NAME

Modes:

- ``contend`` (R3): ``--count`` times, catch the `Counter` of ``--stream`` up from the
  store, then append one ``Incremented`` at the version just read. Op ``increment``,
  key ``<proc>-<attempt>``.
- ``spread`` (R16): ``--count`` appends of 1 to 3 ``Appended`` events to streams drawn
  at random from ``--streams`` shared streams; a conflict takes the actual version
  from the ``ConcurrencyError`` and retries the same events. Op ``append``, key the
  event id.
- ``hold`` (R16): append three events to ``--stream`` inside a unit of work, print
  ``holding <event ids>``, then commit. The test arms the failpoint
  ``unit_of_work.before_commit`` to sleep and SIGKILLs the process meanwhile.

Each step goes to the history log (`harness.history`): ``invoke`` before an append,
``ok`` after it (with version and position), ``fail`` for a ``ConcurrencyError`` (it
wrote nothing), ``info`` with the error's class and message for anything else (the
outcome is unknown; the scenarios expect none). With ``--go FILE`` the process prints
``ready`` and waits for that file to exist, so that several processes start together.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.history import HistoryLog
from scenario_support import REGISTRY, Appended, Counter, Incremented
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core import ConcurrencyError
from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyEventStore,
    SQLAlchemyUnitOfWork,
    create_engine,
)

GO_TIMEOUT_SECONDS = 60.0
MAX_RETRIES = 1_000
"""How often ``spread`` retries one batch after conflicts before it gives up."""


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["contend", "spread", "hold"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--history", required=True, type=Path)
    parser.add_argument("--proc", required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--stream", default="counter")
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--seed", default="0")
    parser.add_argument("--busy-timeout-ms", type=int, default=5_000)
    parser.add_argument("--go", type=Path)
    return parser.parse_args(argv)


async def contend(store: SQLAlchemyEventStore, log: HistoryLog, args: argparse.Namespace) -> None:
    counter = Counter(id=args.stream)
    for attempt in range(args.count):
        fresh = await store.load_stream(args.stream, from_version=counter.version + 1)
        counter.replay_events(REGISTRY.from_stored(event) for event in fresh)
        expected = counter.version
        candidate = Counter(id=args.stream, version=expected, value=counter.value)
        candidate.trigger_event(Incremented())
        key = f"{args.proc}-{attempt}"
        log.record("increment", key, "invoke", expected=expected)
        try:
            stored = await store.append(
                args.stream, candidate.collect_events(), expected_version=expected
            )
        except ConcurrencyError as error:
            log.record(
                "increment",
                key,
                "fail",
                error=type(error).__name__,
                stream=error.stream_id,
                expected=error.expected_version,
                actual=error.actual_version,
            )
        except Exception as error:  # noqa: BLE001 - every other error is recorded for the checker
            log.record("increment", key, "info", error=type(error).__name__, message=str(error))
        else:
            log.record("increment", key, "ok", version=stored[0].version)


async def spread(store: SQLAlchemyEventStore, log: HistoryLog, args: argparse.Namespace) -> None:
    rng = random.Random(f"{args.seed}-{args.proc}")
    versions = {f"stream-{number}": 0 for number in range(args.streams)}
    conflicts = 0
    for number in range(args.count):
        stream = rng.choice(sorted(versions))
        batch = [
            Appended(writer=args.proc, number=number * 10 + k) for k in range(rng.randint(1, 3))
        ]
        ids = [str(event.event_id) for event in batch]
        for key in ids:
            log.record("append", key, "invoke", stream=stream)
        for _ in range(MAX_RETRIES):
            try:
                stored = await store.append(stream, batch, expected_version=versions[stream])
            except ConcurrencyError as error:
                conflicts += 1
                versions[stream] = error.actual_version
                continue
            except Exception as error:  # noqa: BLE001 - recorded for the checker
                for key in ids:
                    log.record(
                        "append", key, "info", error=type(error).__name__, message=str(error)
                    )
                break
            versions[stream] = stored[-1].version
            for event in stored:
                log.record(
                    "append",
                    str(event.event_id),
                    "ok",
                    stream=stream,
                    version=event.version,
                    position=event.position,
                )
            break
    log.record("conflicts", args.proc, "ok", count=conflicts)


async def hold(
    engine: AsyncEngine, store: SQLAlchemyEventStore, log: HistoryLog, args: argparse.Namespace
) -> None:
    batch = [Appended(writer=args.proc, number=k) for k in range(3)]
    ids = [str(event.event_id) for event in batch]
    for key in ids:
        log.record("append", key, "invoke", stream=args.stream)
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            await store.append(args.stream, batch, expected_version=0)
        print("holding " + " ".join(ids), flush=True)  # noqa: T201 - the test waits for it
        await uow.commit()  # the failpoint unit_of_work.before_commit pauses here
    for key in ids:
        log.record("append", key, "ok", stream=args.stream)
    print("committed", flush=True)  # noqa: T201


async def wait_for_go(go: Path | None) -> None:
    if go is None:
        return
    print("ready", flush=True)  # noqa: T201 - the test waits for every worker to say it
    deadline = time.monotonic() + GO_TIMEOUT_SECONDS
    while not await asyncio.to_thread(go.exists):  # bounded by the deadline
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go} did not appear within {GO_TIMEOUT_SECONDS:g} s")
        await asyncio.sleep(0.01)


async def run(args: argparse.Namespace) -> int:
    engine = create_engine(args.url, busy_timeout_ms=args.busy_timeout_ms)
    store = SQLAlchemyEventStore(engine)
    try:
        with HistoryLog(args.history, proc=args.proc) as log:
            await wait_for_go(args.go)
            if args.mode == "contend":
                await contend(store, log, args)
            elif args.mode == "spread":
                await spread(store, log, args)
            else:
                await hold(engine, store, log, args)
    finally:
        await engine.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
