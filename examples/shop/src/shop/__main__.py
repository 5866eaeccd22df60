"""The shop's command line: ``python -m shop`` walks one order through its life and prints it.

The walk-through itself is :mod:`shop.walkthrough`. The data goes to the
database ``DATABASE_URL`` names, or ``--database-url``: a SQLite file,
``shop.sqlite`` in the working directory, when neither is given.

This module is the edge. It reads the arguments and the environment once,
into a checked :class:`~shop.settings.Settings`, before anything connects. A bad
URL, or a database that cannot be reached or refuses an operation, ends the
run with one line on standard error saying what went wrong and what to do.
The exit status is 0 when the walk-through ran, 1 when it failed and 2 for
bad usage or a bad setting (nothing was run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from shop.settings import DEFAULT_DATABASE_URL, POSTGRES_EXAMPLE, Settings, SettingsError

PROG = "python -m shop"

EXIT_OK = 0
"""The walk-through ran."""
EXIT_FAILED = 1
"""The walk-through did not finish: the database could not be reached or refused."""
EXIT_USAGE = 2
"""Bad arguments or a bad setting: nothing was run."""

DESCRIPTION = """\
Walk one order of the example shop through its life on a real database and
print what happens: place an order for customer-7 (Ada), add two items
(printing each event), try an item with a negative price (refused by a
validation behaviour before its handler runs), confirm the order, try one more
item (refused by the confirmed order), bring the order-summary projection up to
date and show the summary before and after, rebuild the order from its stored
events, and show the state-stored customer saved in the same transactions.

The schema is created or upgraded on first use; each run adds one order."""

EPILOG = f"""\
environment:
  DATABASE_URL  the database to use (--database-url overrides it); when unset,
                {DEFAULT_DATABASE_URL}, a file in the working directory.
                PostgreSQL: {POSTGRES_EXAMPLE}

exit status:
  {EXIT_OK}  the walk-through ran
  {EXIT_FAILED}  it failed: the database could not be reached or refused an operation
  {EXIT_USAGE}  bad usage or a bad database URL: nothing was run"""


class WalkThroughError(Exception):
    """The walk-through stopped because of its database; the message is one line."""


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``--help`` and bad usage exit here (0 and 2)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="the database to use, instead of DATABASE_URL",
    )
    return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Read the arguments and settings, run the walk-through, return the exit status.

    Only the errors a user can act on become one line on standard error: a bad
    setting (status 2), and a database that cannot be reached or refuses an
    operation (status 1). Anything else is a bug and keeps its traceback.
    """
    arguments = parse_arguments(argv)
    try:
        settings = Settings.from_environment(environ, database_url=arguments.database_url)
    except SettingsError as error:
        return fail(str(error), EXIT_USAGE)
    logging.basicConfig(level=logging.WARNING, format="  log: %(message)s", stream=sys.stdout)
    try:
        return asyncio.run(main(settings))
    except BrokenPipeError:  # whoever read our output stopped reading (`| head`): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except WalkThroughError as error:
        return fail(str(error), EXIT_FAILED)


async def main(settings: Settings) -> int:
    """Run the walk-through on the database of ``settings``; 0 when it ran.

    Raises :class:`WalkThroughError` when the database cannot be reached or refuses an
    operation. :mod:`shop.walkthrough` is imported here rather than at the top:
    it loads SQLAlchemy's engine, Alembic and the whole shop, most of the
    start-up time, which ``--help`` and a bad setting do without.
    """
    from shop import walkthrough  # noqa: PLC0415 - deliberately late, see above

    try:
        return await walkthrough.main(settings)
    except BrokenPipeError:
        raise
    except walkthrough.DATABASE_FAILURES as error:
        wait_for_sqlite_workers()
        raise WalkThroughError(walkthrough.describe_failure(error, settings)) from error


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
    sys.exit(run())
