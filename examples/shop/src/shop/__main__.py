"""The shop's command line: ``python -m shop`` serves the shop over HTTP and shows it working.

It reads the arguments and the environment once, into checked settings,
before anything connects; checks that the database answers; starts the
service (uvicorn, the FastAPI app of :mod:`shop.api`); prints the URLs; runs
the scripted scenario of :mod:`shop.scenario` against it over HTTP (unless
``--no-scenario``); and keeps serving until interrupted (Ctrl-C).

A bad setting, a database that cannot be reached and a port already taken
each end the run with one line on standard error saying what is wrong and
what to do. The exit status is 0 after an interrupt, 1 when the service or the
scenario failed, and 2 for bad usage or a bad setting (nothing was started).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta

from shop.settings import (
    DEFAULT_DATABASE_URL,
    POSTGRES_EXAMPLE,
    Settings,
    SettingsError,
    without_password,
)

PROG = "python -m shop"

EXIT_OK = 0
"""The service ran until it was interrupted."""
EXIT_FAILED = 1
"""The service could not start or serve, or the scenario failed."""
EXIT_USAGE = 2
"""Bad arguments or a bad setting: nothing was started."""

DESCRIPTION = """\
Serve the example shop over HTTP (FastAPI on uvicorn): customers, a catalogue
with stock, event-sourced orders whose payment runs through the
order-fulfilment saga (reserve the stock, charge, confirm; a declined payment
is compensated), orders that expire when unpaid, undo and redo of cart
changes, merged concurrent edits, read models kept by projections, a monthly
report on a schedule and, with a broker configured, every event published
through the relay.

Once the service answers, a short scripted scenario runs against it over HTTP
and prints what happens; then the service keeps serving until Ctrl-C. The
schema is created or upgraded on first use."""

EPILOG = f"""\
environment:
  DATABASE_URL  the database to use (--database-url overrides it); when unset,
                {DEFAULT_DATABASE_URL}, a file in the working directory.
                PostgreSQL: {POSTGRES_EXAMPLE}
  RABBITMQ_URL, NATS_URL or REDIS_URL
                publish every event to that broker (the first one set), for
                other services such as `python -m shop.notifications`
  SHOP_OPS_ACTIONS, SHOP_OPS_TOKEN
                the operations page, /ops, is read-only unless SHOP_OPS_ACTIONS=1;
                its actions then need the token SHOP_OPS_TOKEN (16 characters
                or more), sent as a bearer token or entered in the page

exit status:
  {EXIT_OK}  the service ran until interrupted
  {EXIT_FAILED}  it failed: the database could not be reached, the port was taken,
     or the scenario failed
  {EXIT_USAGE}  bad usage or a bad setting: nothing was started"""

logger = logging.getLogger("shop")


class StartError(Exception):
    """The service cannot start; the message is one line."""


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``--help`` and bad usage exit here (0 and 2)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", metavar="URL", help="the database, over DATABASE_URL")
    parser.add_argument("--host", default="127.0.0.1", help="the address to serve on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="the port to serve on (8000)")
    parser.add_argument(
        "--no-scenario", action="store_true", help="serve without running the scripted scenario"
    )
    parser.add_argument(
        "--order-ttl",
        type=positive,
        default=1800.0,
        metavar="SECONDS",
        help="how long an order may stay unpaid before it expires (1800)",
    )
    parser.add_argument(
        "--payment-timeout",
        type=positive,
        default=30.0,
        metavar="SECONDS",
        help="how long the saga waits for a charge before compensating (30)",
    )
    parser.add_argument(
        "--recovery-interval",
        type=positive,
        default=60.0,
        metavar="SECONDS",
        help="how often sagas a crash left in flight are resumed (60)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off: the scenario's output)"
    )
    return parser.parse_args(argv)


def bind(host: str, port: int) -> socket.socket:
    """Return a socket listening on ``host``:``port``; :class:`StartError` when it cannot."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise StartError(
            f"cannot serve on {host}:{port}: {error.strerror}: choose another port with --port"
        ) from None
    listening.listen(128)
    return listening


def positive(value: str) -> float:
    """Parse a positive number of seconds."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds < 10**9:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def run(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Read the arguments and settings, serve, return the exit status."""
    arguments = parse_arguments(argv)
    try:
        settings = Settings.from_environment(environ, database_url=arguments.database_url)
    except SettingsError as error:
        return fail(str(error), EXIT_USAGE)
    logging.basicConfig(level=logging.WARNING, format="  log: %(message)s", stream=sys.stderr)
    try:
        return asyncio.run(serve(settings, arguments, environ))
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # whoever read our output stopped reading (`| head`): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except StartError as error:
        return fail(str(error), EXIT_FAILED)


async def serve(
    settings: Settings, arguments: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> int:
    """Start the service, run the scenario, serve until interrupted; 0 after an interrupt.

    The service's modules are imported here rather than at the top: they load
    FastAPI, SQLAlchemy and the whole shop, most of the start-up time, which
    ``--help`` and a bad setting do without.
    """
    import uvicorn  # noqa: PLC0415 - deliberately late, see above

    from shop.api import create_app  # noqa: PLC0415
    from shop.broker import Broker  # noqa: PLC0415
    from shop.scenario import ScenarioError, run_scenario  # noqa: PLC0415
    from shop.wiring import ShopOptions  # noqa: PLC0415

    await check_database(settings)
    options = ShopOptions(
        order_ttl=timedelta(seconds=arguments.order_ttl),
        payment_timeout=timedelta(seconds=arguments.payment_timeout),
        recovery_interval=arguments.recovery_interval,
        broker=Broker.from_environment(environ),
    )
    app = create_app(settings, options)
    config = uvicorn.Config(
        app,
        host=arguments.host,
        port=arguments.port,
        log_level="warning",
        access_log=arguments.access_log,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    listening = bind(arguments.host, arguments.port)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    while not server.started:
        if serving.done():
            with contextlib.suppress(SystemExit):
                await serving
            raise StartError(
                "the service did not start: its lifespan failed (the log above says why)"
            )
        await asyncio.sleep(0.05)
    base = f"http://{arguments.host}:{arguments.port}"
    database = without_password(settings.database_url)
    broker = options.broker
    print(f"the shop serves {base} on {database}", flush=True)
    print(f"  API docs: {base}/docs    health: {base}/health", flush=True)
    steering = "actions on, with the token" if settings.ops_actions else "read-only"
    print(f"  operations: {base}/ops ({steering})", flush=True)
    if broker is not None:
        print(f"  events are published to {broker.kind} ({broker.space})", flush=True)
    status = EXIT_OK
    if not arguments.no_scenario:
        try:
            await run_scenario(base, say=lambda line: print(line, flush=True))
        except ScenarioError as error:
            print(f"{PROG}: error: the scenario failed: {error}", file=sys.stderr, flush=True)
            status = EXIT_FAILED
    print(f"serving {base} until Ctrl-C", flush=True)
    await serving
    return status


async def check_database(settings: Settings) -> None:
    """Bring the schema up to date; raise :class:`StartError` saying what is wrong if it fails.

    The persistence package translates every driver error, connecting
    included, into its typed errors: ``DatabaseUnavailableError`` for a
    database that cannot be reached, another ``PersistenceError`` otherwise.
    """
    from cqrs_ddd_persistence_sqlalchemy import create_engine, upgrade_schema  # noqa: PLC0415
    from cqrs_ddd_persistence_sqlalchemy.exceptions import (  # noqa: PLC0415
        DatabaseUnavailableError,
        PersistenceError,
    )

    engine = create_engine(settings.database_url)
    try:
        await upgrade_schema(engine)
    except PersistenceError as error:
        wait_for_sqlite_workers()
        raise StartError(describe_failure(error, settings, DatabaseUnavailableError)) from error
    finally:
        await engine.dispose()


def describe_failure(error: Exception, settings: Settings, unavailable: type[Exception]) -> str:
    """Say in one line which database failed, how, and what to check."""
    where = f"the database {without_password(settings.database_url)!r} ({settings.source})"
    detail = getattr(error, "detail", None) or " ".join(str(error).split())
    if isinstance(error, unavailable):
        return (
            f"cannot reach {where}: {detail}: start the server,"
            f" or point {settings.source} at one that runs"
        )
    if settings.backend == "sqlite":
        hint = "check that the URL names a file this user can create and write"
    else:
        hint = "check the URL's user, password and database name"
    return f"cannot use {where}: {detail}: {hint}"


def wait_for_sqlite_workers(within: float = 2.0) -> None:
    """Wait (``within`` seconds at most) for the threads of SQLite connections to end.

    When a SQLite file cannot be opened, aiosqlite (0.22) tells the
    connection's worker thread to stop without waiting for it. Should the event
    loop close first, the thread's last hand-back raises "Event loop is closed"
    and prints a traceback after our one-line message (omnilib/aiosqlite#241).
    Called while the loop is still open, this lets the thread finish quietly.
    """
    deadline = time.monotonic() + within
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            thread.join(max(0.0, deadline - time.monotonic()))


def fail(message: str, status: int) -> int:
    """Print ``message`` as one line on standard error and return ``status``."""
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(run())
