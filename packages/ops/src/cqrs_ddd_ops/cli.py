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
from contextlib import nullcontext
from typing import Annotated, NoReturn, TypeVar
from uuid import UUID

import typer
from alembic.util.exc import CommandError
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.domain.exceptions import (
    LeaseLostError,
    ProjectionRebuildError,
    WorkHaltedError,
)
from cqrs_ddd_advanced_core.sagas import SagaRetryError
from cqrs_ddd_advanced_core.scheduling import SchedulingError
from cqrs_ddd_ops import outbox, projections, sagas, schedules, status, streams
from cqrs_ddd_ops.database import EXIT_USAGE, OpsError, database_url_from, describe
from cqrs_ddd_ops.output import show, table, to_json
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
projections_app = typer.Typer(
    help="Projections: progress, dead letters, rebuild and replay (with --app)."
)
sagas_app = typer.Typer(help="Saga instances: by status, one with its steps and history, retry.")
schedules_app = typer.Typer(help="The command scheduler: scheduled commands, recurring schedules.")
outbox_app = typer.Typer(help="The outbox table: what waits per topic, what was set aside, replay.")
app.add_typer(migrate_app, name="migrate")
app.add_typer(streams_app, name="streams")
app.add_typer(projections_app, name="projections")
app.add_typer(sagas_app, name="sagas")
app.add_typer(schedules_app, name="schedules")
app.add_typer(outbox_app, name="outbox")

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
    schema: bool = True,
) -> T:
    """Run ``work`` on the database; turn its failures into one line and an exit status.

    With ``schema`` (all but the ``migrate`` commands), the database must be at
    the revision this version ships: an older one is refused first, with the
    command that upgrades it, rather than failing on a column it lacks.
    """
    try:
        url = database_url_from(database_url, create=create)

        async def on_engine() -> T:
            engine = create_engine(url)
            try:
                with translated_errors("read the database"):
                    if schema:
                        await check_revision(engine, url)
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


async def check_revision(engine: AsyncEngine, url: str) -> None:
    """Raise ``OpsError`` unless the database's schema is the one this version ships."""
    current, head = await schema_revision(engine), head_revision()
    if current == head:
        return
    shown = make_url(url).render_as_string(hide_password=True)
    if current is None:
        raise OpsError(f"the database {shown} has no cqrs-ddd schema: run cqrs-ddd migrate upgrade")
    known = {migration.revision for migration in migration_history()}
    if current in known:
        raise OpsError(
            f"the database {shown} is at revision {current}, older than this version's"
            f" {head}: run cqrs-ddd migrate upgrade"
        )
    raise OpsError(
        f"the database {shown} is at revision {current}, which this version does not know"
        f" (it ships up to {head}): use the cqrs-ddd of the release that migrated it"
    )


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

    before, after = run(database_url, upgrade, create=True, schema=False)
    if before == after:
        console.print(f"the schema is at {after} already")
    else:
        console.print(f"upgraded the schema from {before or 'nothing'} to {after}")


@migrate_app.command("current")
def migrate_current(database_url: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Say which revision the database is at, and the newest one this version ships."""
    current = run(database_url, schema_revision, schema=False)
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
    if status is not None and status not in schedules.SCHEDULE_STATUSES:
        fail(
            OpsError(
                f"--status {status!r} is not a schedule status:"
                f" use one of {', '.join(schedules.SCHEDULE_STATUSES)}",
                EXIT_USAGE,
            )
        )
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


@schedules_app.command("run-now")
def schedules_run_now(
    schedule_id: Annotated[str, typer.Argument(help="the schedule's id")],
    database_url: DatabaseOption = None,
) -> None:
    """Make a pending (or failed) scheduled command due now: a scheduler worker runs it next."""
    identifier = schedule_id_of(schedule_id)

    async def run_now(engine: AsyncEngine) -> None:
        try:
            await SQLAlchemyCommandScheduler(engine).run_now(identifier)
        except SchedulingError as error:
            raise OpsError(str(error)) from None

    run(database_url, run_now)
    console.print(f"schedule {identifier} is due now", markup=False, highlight=False)


# -- status ------------------------------------------------------------------------------

WORKER_COLUMNS = [
    ("kind", "kind"),
    ("name", "name"),
    ("state", "state"),
    ("owner", "owner"),
    ("lease_expires_at", "lease until (UTC)"),
    ("position", "position / queue"),
    ("head", "head"),
    ("lag_events", "lag"),
    ("lag_seconds", "lag (s)"),
    ("dead_letters", "dead letters"),
    ("last_error", "last error"),
]


@app.command("status")
def status_command(
    watch: Annotated[bool, typer.Option("--watch", "-w", help="refresh until Ctrl-C")] = False,
    interval: Annotated[
        float, typer.Option(min=0.2, help="with --watch, seconds between refreshes")
    ] = 2.0,
    seconds: Annotated[
        float | None, typer.Option("--for", help="with --watch, stop after this long")
    ] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show every worker: kind, owner, lease, position or queue, lag, dead letters, last error.

    Projections, relays and saga feeds come from their checkpoints; the
    scheduler, the saga instances and the outbox table by their queues.
    """
    if watch and as_json:
        fail(OpsError("--watch redraws a table: leave out --json (or --watch)", EXIT_USAGE))
    if not watch:
        rows = run(database_url, status.worker_rows)
        show(console, rows, WORKER_COLUMNS, title="workers", as_json=as_json)
        return
    deadline = None if seconds is None else time.monotonic() + seconds

    async def refresh(engine: AsyncEngine) -> None:
        # on a terminal the table is redrawn in place; piped, each refresh is printed
        live = Live(console=console, auto_refresh=False) if console.is_terminal else None
        with live if live is not None else nullcontext():
            while True:
                rows = await status.worker_rows(engine)
                stamp = time.strftime("%H:%M:%S")
                shown = table(rows, WORKER_COLUMNS, title=f"workers at {stamp}")
                if live is not None:
                    live.update(shown, refresh=True)
                else:
                    console.print(shown)
                if deadline is not None and time.monotonic() >= deadline:
                    return
                await asyncio.sleep(interval)

    try:
        run(database_url, refresh)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


# -- projections -------------------------------------------------------------------------

AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        envvar="CQRS_DDD_APP",
        help="module:function returning the application's ProjectionWorker",
        show_default=False,
    ),
]


@projections_app.command("list")
def projections_list(database_url: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List the projections: checkpoint against the head, lag, lease, dead letters."""
    rows = run(database_url, projections.list_projections)
    show(console, rows, WORKER_COLUMNS[1:], title="projections", as_json=as_json)


@projections_app.command("status")
def projections_status(
    name: Annotated[str, typer.Argument(help="the projection's name")],
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one projection: checkpoint, head, lag, lease, dead letters, last error."""
    row = run(database_url, lambda engine: projections.projection(engine, name))
    show(console, [row], WORKER_COLUMNS[1:], title=name, as_json=as_json)


LETTER_COLUMNS = [
    ("projection", "worker"),
    ("position", "position"),
    ("stream_id", "stream"),
    ("version", "version"),
    ("event_type", "type"),
    ("error_class", "error"),
    ("error_message", "message"),
    ("attempts", "attempts"),
    ("last_seen_at", "last tried (UTC)"),
]


@projections_app.command("dead-letters")
def projections_dead_letters(
    name: Annotated[str, typer.Argument(help="the projection's name")],
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the events a projection set aside, with the error and the attempts made."""
    letters = run(database_url, lambda engine: projections.dead_letters(engine, name))
    show(console, letters, LETTER_COLUMNS[1:], title=f"dead letters of {name}", as_json=as_json)


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[str, typer.Argument(help="the projection's name")],
    resume: Annotated[
        bool, typer.Option("--resume", help="go on from the checkpoint of an interrupted rebuild")
    ] = False,
    app_spec: AppOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Empty a projection's read model and apply every event again, with a progress bar.

    Refused while another worker holds the projection (stop it first).
    Writers may go on appending: it goes on until it has caught up with them.
    Interrupted (Ctrl-C), run it again with --resume to go on from where it got.
    """
    factory = _factory(app_spec)

    async def rebuild(engine: AsyncEngine) -> status.WorkerRow:
        worker = factory(engine)
        await projections.ensure_free(engine, worker, name)  # refused before any output
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} events/s"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=errors, transient=True) as bar:
            task = bar.add_task(f"rebuilding {name}", total=None, rate="-")
            started = time.monotonic()
            first: int | None = None

            def advance(done: int, target: int) -> None:
                nonlocal first
                if first is None:  # where this run starts: 0, or the checkpoint to resume
                    first, rate = done, "-"
                else:
                    elapsed = max(time.monotonic() - started, 1e-6)
                    rate = f"{(done - first) / elapsed:,.0f}"
                bar.update(task, completed=done, total=max(target, 1), rate=rate)

            return await projections.rebuild(engine, worker, name, resume=resume, progress=advance)

    row = _projection_run(database_url, rebuild)
    word = "caught up" if resume else "rebuilt"
    console.print(
        f"{word} {name}: checkpoint {row.position}, head {row.head}", markup=False, highlight=False
    )


@projections_app.command("replay")
def projections_replay(
    name: Annotated[str, typer.Argument(help="the projection's name")],
    app_spec: AppOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Apply a projection's dead letters again; those that apply are deleted.

    Refused while another worker holds the projection (replay from its own
    process, the /ops page, or stop it first). Exit status 1 when some fail again.
    """
    factory = _factory(app_spec)
    result = _projection_run(
        database_url, lambda engine: projections.replay(engine, factory(engine), name)
    )
    console.print(
        f"replayed {len(result.applied)} dead letter(s) of {name};"
        f" {len(result.failed)} failed again",
        markup=False,
        highlight=False,
    )
    for letter in result.failed:
        errors.print(
            f"  position {letter.position} ({letter.event_type}): {letter.error_class}:"
            f" {letter.error_message}",
            markup=False,
            highlight=False,
        )
    if result.failed:
        raise typer.Exit(1)


def _factory(spec: str | None) -> projections.ProjectionsFactory:
    try:
        return projections.load_factory(spec)
    except OpsError as error:
        fail(error)


def _projection_run(database_url: str | None, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def guarded(engine: AsyncEngine) -> T:
        try:
            return await work(engine)
        except (KeyError, ProjectionRebuildError, WorkHaltedError, LeaseLostError) as error:
            raise OpsError(str(error).strip("'\"")) from None

    return run(database_url, guarded)


# -- sagas -------------------------------------------------------------------------------

SAGA_COLUMNS = [
    ("saga_id", "saga"),
    ("saga_type", "type"),
    ("correlation_key", "key"),
    ("status", "status"),
    ("in_flight", "in flight"),
    ("awaiting", "awaiting"),
    ("updated_at", "changed (UTC)"),
    ("reason", "reason"),
]


@sagas_app.command("list")
def sagas_list(
    *,
    status_filter: Annotated[
        str | None,
        typer.Option("--status", help=f"only this status: {', '.join(sagas.SAGA_STATUSES)}"),
    ] = None,
    saga_type: Annotated[str | None, typer.Option("--type", help="only this saga type")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many")] = 50,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List saga instances, the most recently changed first."""
    if status_filter is not None and status_filter not in sagas.SAGA_STATUSES:
        fail(
            OpsError(
                f"--status {status_filter!r} is not a saga status:"
                f" use one of {', '.join(sagas.SAGA_STATUSES)}",
                EXIT_USAGE,
            )
        )
    rows = run(
        database_url,
        lambda engine: sagas.list_sagas(
            engine, status=status_filter, saga_type=saga_type, limit=limit
        ),
    )
    show(console, rows, SAGA_COLUMNS, title="sagas", as_json=as_json)


def saga_id_of(value: str) -> UUID:
    """Return the saga id ``value`` names; a usage error when it is not one."""
    try:
        return UUID(value)
    except ValueError:
        fail(OpsError(f"{value!r} is not a saga id (a UUID, as sagas list shows)", EXIT_USAGE))


@sagas_app.command("show")
def sagas_show(
    saga_id: Annotated[str, typer.Argument(help="the saga instance's id")],
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one saga instance: its status, its steps and their outcomes, its history."""
    identifier = saga_id_of(saga_id)

    async def read(engine: AsyncEngine) -> sagas.SagaDetail:
        found = await sagas.saga_detail(engine, identifier)
        if found is None:
            raise OpsError(f"no saga {identifier}")
        return found

    detail = run(database_url, read)
    if as_json:
        print(json.dumps(to_json(detail), indent=2), flush=True)  # noqa: T201 - data, as is
        return
    show(console, [detail.saga], SAGA_COLUMNS, title=str(identifier), as_json=False)
    steps = [("step", "step"), ("outcome", "outcome"), ("command_type", "command")]
    show(
        console, detail.steps, [*steps, ("compensation", "undone by")], title="steps", as_json=False
    )
    history = [("at", "at"), ("what", "what"), ("step", "step")]
    show(console, detail.history, history, title="history", as_json=False)


@sagas_app.command("dead-letters")
def sagas_dead_letters(
    feed: Annotated[
        str | None, typer.Argument(help="the saga feed (default: every one)", show_default=False)
    ] = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the events a saga feed set aside (not decodable, or failing), with the error.

    Replay them from the running system (its /ops page, or ``SagaFeed.replay_dead_letters``).
    """
    letters = run(database_url, lambda engine: sagas.feed_dead_letters(engine, feed))
    show(console, letters, LETTER_COLUMNS, title="saga feed dead letters", as_json=as_json)


@sagas_app.command("retry")
def sagas_retry(
    saga_id: Annotated[str, typer.Argument(help="the parked saga instance's id")],
    database_url: DatabaseOption = None,
) -> None:
    """Send a parked saga back to the phase it stopped in; the running system resumes it.

    Its saga recovery (``SagaManager.recover``) sends the step that failed
    again once the instance is unchanged for the recovery's interval, as for
    any instance in flight. Mend the cause first.
    """
    identifier = saga_id_of(saga_id)

    async def retry(engine: AsyncEngine) -> str:
        try:
            return await sagas.retry_saga(engine, identifier)
        except SagaRetryError as error:
            raise OpsError(str(error)) from None

    phase = run(database_url, retry)
    console.print(
        f"saga {identifier} is {phase} again: the saga recovery resumes it once it has been"
        " unchanged for the recovery's interval",
        markup=False,
        highlight=False,
    )


# -- outbox ------------------------------------------------------------------------------


@outbox_app.command("status")
def outbox_status(database_url: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Count the outbox's messages by topic: published, waiting, set aside, oldest waiting."""
    rows = run(database_url, outbox.topics)
    columns = [
        ("topic", "topic"),
        ("published", "published"),
        ("pending", "waiting"),
        ("failed", "set aside"),
        ("oldest_pending_at", "oldest waiting (UTC)"),
    ]
    show(console, rows, columns, title="outbox", as_json=as_json)


@outbox_app.command("dead-letters")
def outbox_dead_letters(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many")] = 100,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List what the relays set aside after failing on it, with the error.

    The outbox table's messages (by row id), then the events the event-log
    relay set aside (by position in the log).
    """
    rows = run(database_url, lambda engine: outbox.dead_letters(engine, limit=limit))
    columns = [
        ("source", "set aside by"),
        ("id", "id / position"),
        ("message_id", "message"),
        ("message_type", "type"),
        ("topic", "topic"),
        ("key", "key / stream"),
        ("attempts", "attempts"),
        ("set_aside_at", "set aside (UTC)"),
        ("error", "error"),
    ]
    show(console, rows, columns, title="outbox dead letters", as_json=as_json)


@outbox_app.command("replay")
def outbox_replay(
    ids: Annotated[
        list[int] | None,
        typer.Argument(
            help="outbox table ids to replay, as dead-letters shows them (default: every one)"
        ),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Put the outbox table's messages set aside back in the queue; a relay sends them next.

    The events the event-log relay set aside need the broker: the running
    relay publishes them again (its /ops page, or OutboxWorker.replay_dead_letters).
    """

    async def replay(engine: AsyncEngine) -> tuple[int, int]:
        count = await outbox.replay(engine, ids or None)
        letters = await outbox.dead_letters(engine, limit=10_000)
        return count, sum(1 for letter in letters if letter.source != outbox.OUTBOX_TABLE)

    count, of_the_log = run(database_url, replay)
    if ids and count < len(ids):
        fail(
            OpsError(
                f"put {count} message(s) back in the queue, but {len(ids) - count} of the ids"
                " given are not set aside (nothing changed for them)"
            )
        )
    console.print(f"put {count} message(s) back in the queue", markup=False, highlight=False)
    if of_the_log:
        errors.print(
            f"{of_the_log} event(s) the event-log relay set aside are published again by the"
            " running relay (its /ops page, or OutboxWorker.replay_dead_letters)",
            markup=False,
            highlight=False,
        )


def main() -> None:
    """Run the command line (the ``cqrs-ddd`` console script); exits with its status."""
    app()
