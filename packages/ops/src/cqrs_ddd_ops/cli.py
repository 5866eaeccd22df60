"""The ``cqrs-ddd`` command line (typer): each command opens the database, does one thing, ends.

Exit status 0 when it did what was asked, 1 when it failed (the database did
not answer, what was named does not exist), 2 for bad usage or a bad
setting. Every failure is one line on standard error that names what was
wrong.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar
from uuid import UUID

import typer
from alembic.util.exc import CommandError
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.scheduling import SchedulingError
from cqrs_ddd_ops import schedules, streams
from cqrs_ddd_ops.database import EXIT_USAGE, OpsError, database_url_from, describe
from cqrs_ddd_ops.output import show, to_json
from cqrs_ddd_persistence_sqlalchemy import (
    SQLAlchemyCommandScheduler,
    create_engine,
    head_revision,
    migration_history,
    schema_revision,
    upgrade_schema,
)
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.exceptions import PersistenceError

T = TypeVar("T")

app = typer.Typer(
    name="cqrs-ddd",
    help="See and steer a cqrs-ddd system through its database (DATABASE_URL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
migrate_app = typer.Typer(help="Create or upgrade the schema, and say where it is.")
streams_app = typer.Typer(help="The event log: its streams, one stream's events, new events.")
schedules_app = typer.Typer(help="The command scheduler: scheduled commands, recurring schedules.")
app.add_typer(migrate_app, name="migrate")
app.add_typer(streams_app, name="streams")
app.add_typer(schedules_app, name="schedules")

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="the database, instead of DATABASE_URL", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON, for scripts")]


def run(
    database_url: str | None,
    work: Callable[[AsyncEngine], Awaitable[T]],
    *,
    create: bool = False,
) -> T:
    """Run ``work`` on the database; turn its failures into one line and an exit status."""
    try:
        url = database_url_from(database_url, create=create)

        async def on_engine() -> T:
            engine = create_engine(url)
            try:
                with translated_errors("read the database"):
                    return await work(engine)
            except PersistenceError as error:
                raise describe(error, url) from error
            finally:
                await engine.dispose()

        return asyncio.run(on_engine())
    except CommandError as error:  # alembic: an unknown revision
        fail(OpsError(f"cannot migrate: {error}", EXIT_USAGE))
    except OpsError as error:
        fail(error)


def fail(error: OpsError) -> NoReturn:
    """Print ``error`` as one line on standard error and end with its exit status."""
    errors.print(f"cqrs-ddd: error: {error}", markup=False, highlight=False)
    raise typer.Exit(error.status)


# -- migrate -----------------------------------------------------------------------------


@migrate_app.command("upgrade")
def migrate_upgrade(
    revision: Annotated[str, typer.Option(help="the revision to reach")] = "head",
    database_url: DatabaseOption = None,
) -> None:
    """Create or upgrade the schema (safe to run again; applied migrations are skipped)."""

    async def upgrade(engine: AsyncEngine) -> tuple[str | None, str | None]:
        before = await schema_revision(engine)
        await upgrade_schema(engine, revision)
        return before, await schema_revision(engine)

    before, after = run(database_url, upgrade, create=True)
    if before == after:
        console.print(f"the schema is at {after} already")
    else:
        console.print(f"upgraded the schema from {before or 'nothing'} to {after}")


@migrate_app.command("current")
def migrate_current(database_url: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Say which revision the database is at, and the newest one this version ships."""
    current = run(database_url, schema_revision)
    head = head_revision()
    if as_json:
        console.print_json(json.dumps({"current": current, "head": head}))
    elif current == head:
        console.print(f"{current} (the newest)")
    else:
        console.print(
            f"{current or 'no schema'} (the newest is {head}: run cqrs-ddd migrate upgrade)"
        )


@migrate_app.command("history")
def migrate_history(as_json: JsonOption = False) -> None:
    """List the migrations this version ships, newest first."""
    history = migration_history()
    show(
        console,
        history,
        [("revision", "revision"), ("down_revision", "after"), ("description", "what it does")],
        title="migrations",
        as_json=as_json,
    )


# -- streams -----------------------------------------------------------------------------


@streams_app.command("list")
def streams_list(
    prefix: Annotated[str, typer.Option(help="only the streams whose id starts so")] = "",
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many")] = 50,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the streams, the most recently written first."""
    found = run(
        database_url, lambda engine: streams.list_streams(engine, prefix=prefix, limit=limit)
    )
    show(
        console,
        found,
        [
            ("stream_id", "stream"),
            ("aggregate_type", "type"),
            ("events", "events"),
            ("version", "version"),
            ("last_event_type", "last event"),
            ("last_position", "position"),
            ("last_occurred_at", "at"),
        ],
        title="streams",
        as_json=as_json,
    )


EVENT_COLUMNS = [
    ("position", "position"),
    ("stream_id", "stream"),
    ("version", "version"),
    ("event_type", "type"),
    ("schema_version", "schema"),
    ("occurred_at", "at"),
    ("payload", "payload"),
]


@streams_app.command("show")
def streams_show(
    stream_id: Annotated[str, typer.Argument(help="the stream's id (an aggregate's id)")],
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the events of one stream, in version order."""

    async def read(engine: AsyncEngine) -> list[streams.EventRow]:
        found = await streams.stream_events(engine, stream_id)
        if not found:
            raise OpsError(f"no stream {stream_id!r} in the event log")
        return found

    show(console, run(database_url, read), EVENT_COLUMNS, title=stream_id, as_json=as_json)


@streams_app.command("tail")
def streams_tail(
    after: Annotated[
        int | None, typer.Option(help="start after this position (default: the last 10 events)")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new events")
    ] = False,
    seconds: Annotated[
        float | None, typer.Option("--for", help="with --follow, stop after this long")
    ] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the newest events (one per line: position, stream, version, type); --follow waits."""
    deadline = None if seconds is None else time.monotonic() + seconds

    async def tail(engine: AsyncEngine) -> None:
        position = after if after is not None else await streams.before_last(engine, 10)
        while True:
            page = await streams.events_after(engine, position, limit=500)
            for event in page:
                if as_json:
                    line = json.dumps(to_json(event))
                else:
                    line = (
                        f"{event.position:>8}  {event.stream_id}"
                        f"  v{event.version}  {event.event_type}"
                    )
                print(line, flush=True)  # noqa: T201 - one line per event, as it comes
                position = max(position, event.position)
            if follow and deadline is not None and time.monotonic() >= deadline:
                return
            if page:
                continue  # there may be more right away
            if not follow:
                return
            await asyncio.sleep(0.5)

    try:
        run(database_url, tail)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except BrokenPipeError:  # whoever read the output stopped reading (`| head`): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


# -- schedules ---------------------------------------------------------------------------

SCHEDULE_COLUMNS = [
    ("schedule_id", "schedule"),
    ("command_type", "command"),
    ("status", "status"),
    ("due_at", "due (UTC)"),
    ("attempts", "attempts"),
    ("last_error", "last error"),
    ("recurrence", "recurring"),
]


@schedules_app.command("list")
def schedules_list(
    *,
    status: Annotated[
        str | None,
        typer.Option(help="only this status: pending, running, done, failed or cancelled"),
    ] = None,
    due: Annotated[bool, typer.Option("--due", help="only the pending ones due now")] = False,
    recurring: Annotated[
        bool, typer.Option("--recurring", help="list the recurring schedules instead")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many")] = 50,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List scheduled commands by due time (or, with --recurring, the recurring schedules)."""
    if recurring:
        found = run(database_url, schedules.list_recurring)
        columns = [
            ("name", "name"),
            ("command_type", "command"),
            ("rule", "rule"),
            ("timezone", "time zone"),
            ("paused", "paused"),
            ("next_fire_at", "next (UTC)"),
        ]
        show(console, found, columns, title="recurring schedules", as_json=as_json)
        return
    listed = run(
        database_url,
        lambda engine: schedules.list_schedules(engine, status=status, due=due, limit=limit),
    )
    show(console, listed, SCHEDULE_COLUMNS, title="scheduled commands", as_json=as_json)


def schedule_id_of(value: str) -> UUID:
    """Return the schedule id ``value`` names; a usage error when it is not one."""
    try:
        return UUID(value)
    except ValueError:
        fail(OpsError(f"{value!r} is not a schedule id (a UUID, as schedules list shows)", 2))


@schedules_app.command("show")
def schedules_show(
    schedule_id: Annotated[str, typer.Argument(help="the schedule's id")],
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one scheduled command, with its command's fields."""
    identifier = schedule_id_of(schedule_id)

    async def read(engine: AsyncEngine) -> schedules.ScheduleRow:
        found = await schedules.schedule(engine, identifier)
        if found is None:
            raise OpsError(f"no schedule {identifier}")
        return found

    found = run(database_url, read)
    columns = [*SCHEDULE_COLUMNS, ("payload", "fields")]
    show(console, [found], columns, title=str(identifier), as_json=as_json)


@schedules_app.command("cancel")
def schedules_cancel(
    schedule_id: Annotated[str, typer.Argument(help="the schedule's id")],
    database_url: DatabaseOption = None,
) -> None:
    """Cancel a scheduled command that has not run: it never will."""
    identifier = schedule_id_of(schedule_id)

    async def cancel(engine: AsyncEngine) -> None:
        try:
            await SQLAlchemyCommandScheduler(engine).cancel(identifier)
        except SchedulingError as error:
            raise OpsError(str(error)) from None

    run(database_url, cancel)
    console.print(f"cancelled schedule {identifier}", markup=False, highlight=False)


def _pause(name: str, database_url: str | None, *, paused: bool) -> None:
    async def pause(engine: AsyncEngine) -> None:
        store = SQLAlchemyCommandScheduler(engine)
        if await store.recurring(name) is None:
            raise OpsError(f"no recurring schedule {name!r}")
        await store.pause_recurring(name, paused=paused)

    run(database_url, pause)
    word = "paused" if paused else "resumed"
    console.print(f"{word} the recurring schedule {name!r}", markup=False, highlight=False)


@schedules_app.command("pause")
def schedules_pause(
    name: Annotated[str, typer.Argument(help="the recurring schedule's name")],
    database_url: DatabaseOption = None,
) -> None:
    """Pause a recurring schedule: no new occurrence is scheduled until it is resumed."""
    _pause(name, database_url, paused=True)


@schedules_app.command("resume")
def schedules_resume(
    name: Annotated[str, typer.Argument(help="the recurring schedule's name")],
    database_url: DatabaseOption = None,
) -> None:
    """Resume a paused recurring schedule."""
    _pause(name, database_url, paused=False)


def main() -> None:
    """Run the command line (the ``cqrs-ddd`` console script); exits with its status."""
    app()
