"""The operations router: the pages, their live part, the actions, the token form.

See :func:`operations_router`. Every page reads the database through the
same functions as the ``cqrs-ddd`` command line; the only action that needs
more than the database, replaying a projection's dead letters, goes through
the application's own running :class:`ProjectionWorker` (it borrows the
lease its loop holds).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Protocol, TypeVar
from urllib.parse import parse_qs
from uuid import UUID, uuid4

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from cqrs_ddd_advanced_core.projections import ProjectionWorker
from cqrs_ddd_advanced_core.sagas import SagaFeed, SagaRetryError
from cqrs_ddd_advanced_core.scheduling import (
    ScheduleNotCancellableError,
    ScheduleNotFoundError,
    ScheduleNotRunnableError,
)
from cqrs_ddd_advanced_core.workers import DeadLetter, LeaseLostError
from cqrs_ddd_ops import outbox, sagas, schedules
from cqrs_ddd_ops.output import to_json
from cqrs_ddd_ops.status import WorkerRow, dead_letters_of, worker_rows
from cqrs_ddd_ops.web import pages
from cqrs_ddd_ops.web.access import (
    Access,
    ActionRefusedError,
    clear_flash,
    flash,
    flashed,
    forget_token,
    keep_token,
)
from cqrs_ddd_ops.web.markup import Markup, element
from cqrs_ddd_ops.web.sampler import WINDOW_SECONDS, LagHistory
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyCommandScheduler
from cqrs_ddd_persistence_sqlalchemy.error_translation import translated_errors
from cqrs_ddd_persistence_sqlalchemy.exceptions import PersistenceError

T = TypeVar("T")

__all__ = ["OperatedSystem", "ReplayingRelay", "SystemProvider", "operations_router"]

OVERVIEW_ROUTE = "cqrs_ddd_ops.overview"
"""The overview route's name, before a suffix of its own router (several may be mounted)."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Sent with every page: only the router's own script and style run, nothing frames it."""

MAX_FORM_BYTES = 16_384
"""The largest form an action reads; a larger body is refused (413)."""


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _RelayReplay(Protocol):
    @property
    def published(self) -> list[int]: ...

    @property
    def failed(self) -> list[DeadLetter]: ...

    @property
    def held_elsewhere(self) -> list[str]: ...


class ReplayingRelay(Protocol):
    """A relay's worker that publishes its dead letters again.

    The messaging package's ``OutboxWorker`` of an ``EventLogRelay`` is one.
    """

    @property
    def relay(self) -> _Named:
        """The relay it runs (its name keys the page's button)."""
        ...

    async def replay_dead_letters(self) -> _RelayReplay:
        """Publish the dead letters again; return what went out and what failed again."""
        ...


@dataclass(frozen=True)
class OperatedSystem:
    """What the page reads and steers: the system's database and, to replay, its workers.

    ``projections`` is the application's running projection worker,
    ``saga_feeds`` its saga feeds and ``relays`` its event-log relays' workers.
    Without them the page still shows their dead letters, but cannot replay
    them.
    """

    engine: AsyncEngine
    projections: ProjectionWorker | None = None
    saga_feeds: tuple[SagaFeed, ...] = ()
    relays: tuple[ReplayingRelay, ...] = ()
    """The event-log relays' workers (``OutboxWorker``), to publish their dead letters again."""


SystemProvider = Callable[[Starlette], "OperatedSystem | None"]
"""Returns the system of the application the router is mounted in, or None before it starts.

For an application that builds its engine and workers in its lifespan, e.g.
``lambda app: OperatedSystem(app.state.engine, app.state.projections)``.
"""


class _PageError(Exception):
    """A page or action cannot be served: the status code, and the message shown."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def operations_router(  # noqa: PLR0915 - one place lists the routes
    system: OperatedSystem | SystemProvider,
    *,
    token: str | None = None,
    actions: bool = False,
    refresh_seconds: float = 5.0,
    sample_seconds: float = 10.0,
    window_seconds: float = WINDOW_SECONDS,
) -> APIRouter:
    """Return the operator's pages as a router, for ``app.include_router(router, prefix="/ops")``.

    ``system`` is the system shown: an :class:`OperatedSystem`, or a
    :data:`SystemProvider` that finds it in the application (for one whose
    engine and workers only exist once its lifespan ran). The pages are
    read-only unless ``actions`` is True, and then an action needs ``token``
    (a secret of at least 16 characters; ``actions=True`` without one raises
    ``ValueError``), sent as ``Authorization: Bearer <token>`` or entered once
    in the page's token form (kept in an ``HttpOnly``, ``SameSite=Strict``
    cookie). A refused action answers 403 and changes nothing; one done
    redirects (303) back to its page, which says what was done.

    The overview refreshes its figures every ``refresh_seconds`` (a little
    script of the router's own, served by it); the lag chart covers
    ``window_seconds`` (an hour), from samples the router keeps in memory,
    taken every ``sample_seconds`` by a task its lifespan runs (FastAPI runs
    an included router's lifespan inside the application's) and at each
    read of the overview.

    Pages (under the prefix): ``/`` overview, ``/dead-letters``, ``/sagas``
    (``?status=``, ``?saga=<id>``), ``/schedules`` (``?status=``),
    ``/outbox``; ``/fragments/live`` the overview's refreshing part;
    ``/api/status`` the workers and lag samples as JSON. Actions (POST):
    ``/actions/projections/<name>/replay``, ``/actions/saga-feeds/<name>/replay``,
    ``/actions/relays/<name>/replay``,
    ``/actions/outbox/replay``
    (form field ``id`` for one message, all without), ``/actions/sagas/<id>/retry``,
    ``/actions/schedules/<id>/cancel`` and ``/run-now``; ``/token`` and
    ``/token/forget`` keep and drop the token cookie.
    """
    if refresh_seconds <= 0 or sample_seconds <= 0:
        raise ValueError("refresh_seconds and sample_seconds must be positive")
    access = Access(actions=actions, token=token)
    history = LagHistory(window=window_seconds, min_gap=min(sample_seconds, 5.0))
    provide: SystemProvider = (lambda app: system) if isinstance(system, OperatedSystem) else system
    static = _static_files()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def read() -> list[WorkerRow] | None:
            target = provide(app)
            return None if target is None else await worker_rows(target.engine)

        async with history.sampling(read, interval=sample_seconds):
            yield

    router = APIRouter(lifespan=lifespan, include_in_schema=False)
    view = _View(provide, access, history, refresh_seconds)

    @router.get("/", name=view.overview_route, response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        """Show the workers and their lag (refreshing), the projections, the lag chart."""

        async def body(target: OperatedSystem, context: pages.PageContext) -> Markup:
            return pages.overview_body(context, await view.live(target))

        return await view.page(request, "overview", "Overview", body)

    @router.get("/fragments/live", response_class=HTMLResponse)
    async def live(request: Request) -> Response:
        """Return the overview's refreshing part alone (the page's script fetches it)."""
        try:
            target = view.target(request)
            with translated_errors("read the workers"):
                fragment = await view.live(target)
            return HTMLResponse(fragment, headers=SECURITY_HEADERS)
        except (_PageError, PersistenceError) as error:
            status = error.status if isinstance(error, _PageError) else 503
            return HTMLResponse(
                element("p", str(error), class_="refused"),
                status_code=status,
                headers=SECURITY_HEADERS,
            )

    @router.get("/dead-letters", response_class=HTMLResponse)
    async def dead_letters_page(request: Request) -> Response:
        """Show the projections' dead letters with their reasons, and the outbox's set aside."""

        async def body(target: OperatedSystem, context: pages.PageContext) -> Markup:
            known = [
                row
                for row in await worker_rows(target.engine)
                if row.kind in pages.WORKERS_WITH_LETTERS
            ]
            letters: dict[str, list[DeadLetter]] = {}
            for row in known:
                if row.dead_letters:
                    letters[row.name] = await dead_letters_of(target.engine, row.name)
            failed = await outbox.failed_messages(target.engine)
            replayable = {feed.name for feed in target.saga_feeds}
            replayable |= {worker.relay.name for worker in target.relays}
            if target.projections is not None:
                replayable |= {entry.name for entry in target.projections.projector_registry}
            return pages.dead_letters_body(context, known, letters, failed, can_replay=replayable)

        return await view.page(request, "dead-letters", "Dead letters", body)

    @router.get("/sagas", response_class=HTMLResponse)
    async def sagas_page(
        request: Request, status: str | None = None, saga: str | None = None
    ) -> Response:
        """Show each saga type's steps, the selected instance's path, the instances."""

        async def body(target: OperatedSystem, context: pages.PageContext) -> Markup:
            if status is not None and status not in sagas.SAGA_STATUSES:
                known = ", ".join(sagas.SAGA_STATUSES)
                raise _PageError(400, f"no saga status {status!r} (use one of {known})")
            detail = None
            if saga:
                detail = await sagas.saga_detail(target.engine, _uuid(saga, "saga instance"))
                if detail is None:
                    raise _PageError(404, f"no saga instance {saga}")
            instances = await sagas.list_sagas(target.engine, status=status, limit=100)
            shapes = await sagas.saga_shapes(target.engine)
            return pages.sagas_body(context, instances, shapes, detail, status=status)

        return await view.page(request, "sagas", "Sagas", body)

    @router.get("/schedules", response_class=HTMLResponse)
    async def schedules_page(request: Request, status: str | None = None) -> Response:
        """Show the scheduled commands by due time, and the recurring schedules."""

        async def body(target: OperatedSystem, context: pages.PageContext) -> Markup:
            if status is not None and status not in schedules.SCHEDULE_STATUSES:
                known = ", ".join(schedules.SCHEDULE_STATUSES)
                raise _PageError(400, f"no schedule status {status!r} (use one of {known})")
            found = await schedules.list_schedules(target.engine, status=status, limit=200)
            recurring = await schedules.list_recurring(target.engine)
            return pages.schedules_body(context, found, recurring, status=status)

        return await view.page(request, "schedules", "Schedules", body)

    @router.get("/outbox", response_class=HTMLResponse)
    async def outbox_page(request: Request) -> Response:
        """Show the relays publishing to the brokers, with their lag, and the outbox by topic."""

        async def body(target: OperatedSystem, context: pages.PageContext) -> Markup:
            rows = await worker_rows(target.engine)
            return pages.outbox_body(context, rows, await outbox.topics(target.engine))

        return await view.page(request, "outbox", "Outbox", body)

    @router.get("/api/status")
    async def status_json(request: Request) -> Response:
        """Return every worker on the status shape, and the lag samples, as JSON."""
        try:
            target = view.target(request)
            with translated_errors("read the workers"):
                rows = await worker_rows(target.engine)
        except _PageError as error:
            return JSONResponse({"detail": str(error)}, status_code=error.status)
        except PersistenceError as error:
            return JSONResponse({"detail": f"the database failed: {error}"}, status_code=503)
        history.record(rows)
        samples = [
            {"at": _iso(sample.at), "lag_events": sample.lag_events} for sample in history.samples()
        ]
        return JSONResponse({"workers": to_json(rows), "lag": samples, "actions": access.actions})

    @router.get("/static/{name}")
    async def static_file(name: str) -> Response:
        """Return the page's own style sheet or script (no build step, no other origin)."""
        found = static.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        content, media_type = found
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})

    # -- the token ------------------------------------------------------------------

    @router.post("/token")
    async def enter_token(request: Request) -> Response:
        """Keep the operator's token in this browser (a cookie), if it is the right one."""
        form = await _form(request)
        context = view.context(request, _page_key(form.get("back")))
        if not access.actions:
            return view.refused(request, context, "refused: actions are off, no token is needed")
        if not access.matches(form.get("token")):
            return view.refused(request, context, "refused: that is not the operator token")
        response = RedirectResponse(context.url(context.page), status_code=303)
        keep_token(response, request, form["token"], path=context.base)
        flash(response, request, "Token accepted: actions are enabled in this browser.",
              path=context.base)  # fmt: skip
        return response

    @router.post("/token/forget")
    async def drop_token(request: Request) -> Response:
        """Forget the token this browser kept: the page is read-only for it again."""
        form = await _form(request)
        context = view.context(request, _page_key(form.get("back")))
        response = RedirectResponse(context.url(context.page), status_code=303)
        forget_token(response, request, path=context.base)
        flash(response, request, "Token forgotten: this browser can no longer act.",
              path=context.base)  # fmt: skip
        return response

    # -- actions --------------------------------------------------------------------

    @router.post("/actions/projections/{name:path}/replay")
    async def replay_projection(request: Request, name: str) -> Response:
        """Apply a projection's dead letters again, through the application's running worker."""

        async def work(target: OperatedSystem) -> str:
            worker = target.projections
            if worker is None:
                raise _PageError(
                    409,
                    "replaying needs the application's projection worker, and this page was"
                    " mounted without it: use cqrs-ddd projections replay",
                )
            if name not in [entry.name for entry in worker.projector_registry]:
                raise _PageError(404, f"the application has no projection {name!r}")
            try:
                result = await worker.replay_dead_letters(name)
            except LeaseLostError:
                raise _PageError(
                    409,
                    f"projection {name!r} is held by another worker process: replay from"
                    " that process (its page, or cqrs-ddd projections replay once it stops)",
                ) from None
            return _replayed(name, len(result.applied), len(result.failed))

        return await view.act(request, "dead-letters", work)

    @router.post("/actions/saga-feeds/{name:path}/replay")
    async def replay_saga_feed(request: Request, name: str) -> Response:
        """Deliver a saga feed's dead letters again, through the application's running feed."""

        async def work(target: OperatedSystem) -> str:
            feed = next((feed for feed in target.saga_feeds if feed.name == name), None)
            if feed is None:
                raise _PageError(404, f"the application has no saga feed {name!r} on this page")
            result = await _held_or(name, "saga feed", feed.replay_dead_letters())
            return _replayed(name, len(result.delivered), len(result.failed), noun="Saga feed")

        return await view.act(request, "dead-letters", work)

    @router.post("/actions/relays/{name:path}/replay")
    async def replay_relay(request: Request, name: str) -> Response:
        """Publish an event-log relay's dead letters again, through the application's relay."""

        async def work(target: OperatedSystem) -> str:
            worker = next((w for w in target.relays if w.relay.name == name), None)
            if worker is None:
                raise _PageError(404, f"the application has no event-log relay {name!r} here")
            result = await _held_or(name, "relay", worker.replay_dead_letters())
            said = _replayed(name, len(result.published), len(result.failed), noun="Relay")
            if result.held_elsewhere:
                held = ", ".join(result.held_elsewhere)
                said += f" Partitions held by another process, left to it: {held}."
            return said

        return await view.act(request, "dead-letters", work)

    @router.post("/actions/outbox/replay")
    async def replay_outbox(request: Request) -> Response:
        """Put the outbox's messages set aside (all, or the form's ``id``) back in the queue."""
        form = await _form(request)
        ids: list[int] | None = None
        if form.get("id"):
            if not form["id"].isdigit():
                return view.problem(request, 400, f"no outbox message {form['id']!r}")
            ids = [int(form["id"])]

        async def work(target: OperatedSystem) -> str:
            count = await outbox.replay(target.engine, ids)
            if ids is not None and count == 0:
                raise _PageError(404, f"outbox message {ids[0]} is not set aside")
            noun = "message" if count == 1 else "messages"
            return f"Put {count} outbox {noun} back in the queue: the relay sends them next."

        return await view.act(request, "dead-letters", work, form=form)

    @router.post("/actions/sagas/{saga_id}/retry")
    async def retry_saga(request: Request, saga_id: str) -> Response:
        """Send a parked saga instance back to the phase it stopped in."""

        async def work(target: OperatedSystem) -> str:
            identifier = _uuid(saga_id, "saga instance")
            try:
                phase = await sagas.retry_saga(target.engine, identifier)
            except SagaRetryError as error:
                status = 404 if error.reason == "no such saga instance" else 409
                raise _PageError(status, str(error)) from None
            return (
                f"Saga {saga_id} is {phase} again: the saga recovery resumes it once it has"
                " been unchanged for the recovery's interval."
            )

        back = f"{{base}}/sagas?saga={saga_id}"
        return await view.act(request, "sagas", work, back=back)

    @router.post("/actions/schedules/{schedule_id}/cancel")
    async def cancel_schedule(request: Request, schedule_id: str) -> Response:
        """Cancel a pending scheduled command."""

        async def work(target: OperatedSystem) -> str:
            scheduler = SQLAlchemyCommandScheduler(target.engine)
            await _scheduled(scheduler.cancel, _uuid(schedule_id, "schedule"))
            return f"Cancelled schedule {schedule_id}."

        return await view.act(request, "schedules", work)

    @router.post("/actions/schedules/{schedule_id}/run-now")
    async def run_schedule_now(request: Request, schedule_id: str) -> Response:
        """Make a pending or failed scheduled command due now."""

        async def work(target: OperatedSystem) -> str:
            scheduler = SQLAlchemyCommandScheduler(target.engine)
            await _scheduled(scheduler.run_now, _uuid(schedule_id, "schedule"))
            return f"Schedule {schedule_id} is due now: the scheduler runs it next."

        return await view.act(request, "schedules", work)

    return router


class _View:
    """What the routes share: finding the system, building pages, checking actions."""

    def __init__(
        self,
        provide: SystemProvider,
        access: Access,
        history: LagHistory,
        refresh_seconds: float,
    ) -> None:
        self.provide = provide
        self.access = access
        self.history = history
        self.refresh_seconds = refresh_seconds
        self.overview_route = f"{OVERVIEW_ROUTE}.{uuid4().hex[:12]}"
        """This router's overview route: where it is mounted is found through it."""

    def target(self, request: Request) -> OperatedSystem:
        """Return the system shown, or raise 503 when the application has not started it."""
        target = self.provide(request.app)
        if target is None:
            raise _PageError(503, "the application is not started yet: try again in a moment")
        return target

    def context(
        self, request: Request, page: str, *, error: str | None = None
    ) -> pages.PageContext:
        """Return what the page needs besides its data."""
        base = request.url_for(self.overview_route).path.rstrip("/")
        return pages.PageContext(
            base=base,
            page=page,
            actions=self.access.actions,
            token_held=self.access.actions and self.access.holds_token(request),
            refresh_seconds=self.refresh_seconds,
            now=datetime.now(UTC),
            flash=flashed(request),
            error=error,
        )

    async def live(self, target: OperatedSystem) -> Markup:
        """Return the overview's refreshing part (and keep its rows as a lag sample)."""
        rows = await worker_rows(target.engine)
        self.history.record(rows)
        return pages.live_fragment(
            rows,
            self.history.samples(),
            now=datetime.now(UTC),
            window=self.history.window,
        )

    async def page(
        self,
        request: Request,
        key: str,
        title: str,
        body: Callable[[OperatedSystem, pages.PageContext], Awaitable[Markup]],
    ) -> Response:
        """Return page ``key``: its body in the layout, or the page of what went wrong."""
        context = self.context(request, key)
        try:
            with translated_errors(f"read the {key} page"):
                content = await body(self.target(request), context)
        except _PageError as error:
            return self.problem(request, error.status, str(error), page=key)
        except PersistenceError as error:
            return self.problem(request, 503, f"the database failed: {error}", page=key)
        response = HTMLResponse(pages.layout(context, title, content), headers=SECURITY_HEADERS)
        if context.flash:
            clear_flash(response, request, path=context.base)
        return response

    def problem(self, request: Request, status: int, message: str, *, page: str = "") -> Response:
        """Return a page saying ``message``, with ``status``."""
        context = self.context(request, page, error=message)
        title = "Not found" if status == 404 else "Cannot do that"
        return HTMLResponse(
            pages.problem_page(context, title), status_code=status, headers=SECURITY_HEADERS
        )

    def refused(self, request: Request, context: pages.PageContext, message: str) -> Response:
        """Return the 403 page of an action refused: ``message`` says why; nothing was done."""
        context = self.context(request, context.page, error=message)
        return HTMLResponse(
            pages.refused_page(context, context.url(context.page or "overview")),
            status_code=403,
            headers=SECURITY_HEADERS,
        )

    async def act(
        self,
        request: Request,
        page: str,
        work: Callable[[OperatedSystem], Awaitable[str]],
        *,
        back: str | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        """Do ``work`` if the request may act, then redirect (303) to ``back`` saying what it did.

        ``back`` is a path pattern (``{base}`` is the router's path), by default
        the form's ``back`` page, else ``page``.
        """
        try:
            form = await _form(request) if form is None else form
        except _PageError as error:
            return self.problem(request, error.status, str(error), page=page)
        context = self.context(request, _page_key(form.get("back"), default=page))
        try:
            self.access.check(request)
        except ActionRefusedError as refused:
            return self.refused(request, context, str(refused))
        try:
            with translated_errors(f"act from the {context.page} page"):
                message = await work(self.target(request))
        except _PageError as error:
            return self.problem(request, error.status, str(error), page=context.page)
        except PersistenceError as error:
            return self.problem(request, 503, f"the database failed: {error}", page=context.page)
        target = back.format(base=context.base) if back else context.url(context.page)
        response = RedirectResponse(target, status_code=303)
        flash(response, request, message, path=context.base)
        return response


async def _form(request: Request) -> dict[str, str]:
    """Return the fields of a URL-encoded form body (the last value of each); {} for no form."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise _PageError(413, "the form is too large")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


def _page_key(value: str | None, *, default: str = "overview") -> str:
    """Return the page ``value`` names if it is one of the pages, else ``default``."""
    keys = [key for key, _ in pages.PAGES]
    return value if value in keys else default


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise _PageError(404, f"no {what} {value!r} (not an id)") from None


async def _scheduled(operation: Callable[[UUID], Awaitable[None]], schedule_id: UUID) -> None:
    try:
        await operation(schedule_id)
    except ScheduleNotFoundError as error:
        raise _PageError(404, str(error)) from None
    except (ScheduleNotCancellableError, ScheduleNotRunnableError) as error:
        raise _PageError(409, str(error)) from None


async def _held_or(name: str, what: str, replay: Awaitable[T]) -> T:
    """Await ``replay``; a worker of another process holding the job is said as a 409."""
    try:
        return await replay
    except LeaseLostError:
        raise _PageError(
            409,
            f"{what} {name!r}: its lease went to another worker during the replay (another"
            " process, or its own loop after a failure): try again, or replay from that process",
        ) from None


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def _replayed(name: str, applied: int, failed: int, *, noun: str = "Projection") -> str:
    if not applied and not failed:
        return f"{noun} {name} has no dead letter to replay."
    said = f"Replayed the dead letters of {name}: {applied} applied"
    if failed:
        said += f", {failed} failed again (still held, with the new error)"
    return said + "."


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("cqrs_ddd_ops.web") / "static"
    return {
        "ops.css": ((folder / "ops.css").read_bytes(), "text/css; charset=utf-8"),
        "ops.js": ((folder / "ops.js").read_bytes(), "text/javascript; charset=utf-8"),
    }
