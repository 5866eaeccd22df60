"""The operations pages as HTML: a layout, then one body per page, from the tools' data.

Pure functions from data to :class:`~cqrs_ddd_ops.web.markup.Markup`: the
router reads the data (through the same functions as the ``cqrs-ddd`` command
line) and hands it here. Every value is escaped by
:func:`~cqrs_ddd_ops.web.markup.element`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from cqrs_ddd_advanced_core.outbox import FailedMessage
from cqrs_ddd_advanced_core.workers import DeadLetter
from cqrs_ddd_ops.outbox import TopicRow
from cqrs_ddd_ops.sagas import SAGA_STATUSES, SagaDetail, SagaRow
from cqrs_ddd_ops.schedules import SCHEDULE_STATUSES, RecurringRow, ScheduleRow
from cqrs_ddd_ops.status import WorkerRow, relay_of
from cqrs_ddd_ops.web.charts import lag_chart, legend, saga_diagram, series_names
from cqrs_ddd_ops.web.markup import Content, Markup, element, join, raw
from cqrs_ddd_ops.web.sampler import LagSample

PAGES: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("dead-letters", "Dead letters"),
    ("sagas", "Sagas"),
    ("schedules", "Schedules"),
    ("outbox", "Outbox"),
)
"""The pages of the navigation: their key (the URL's last part) and title."""

"""The statuses of a scheduled command, in the order the schedules page offers them."""

RELAY_KINDS = ("relay", "outbox-relay")
"""The workers that publish to a broker."""


@dataclass(frozen=True)
class PageContext:
    """What every page needs besides its data: where it is mounted, who looks, what happened."""

    base: str
    """The path the router is mounted at, without a trailing slash (``/ops``)."""
    page: str
    """The key of the page shown (one of :data:`PAGES`), for the navigation and ``back``."""
    actions: bool
    """Whether the application turned actions on."""
    token_held: bool
    """Whether the request carries the right token."""
    refresh_seconds: float
    now: datetime
    flash: str | None = None
    error: str | None = None

    def url(self, page: str, **query: str) -> str:
        """Return the path of page ``page`` (``overview`` is the root), with ``query``."""
        path = f"{self.base}/" if page == "overview" else f"{self.base}/{page}"
        return f"{path}?{urlencode(query)}" if query else path

    def action(self, *parts: str) -> str:
        """Return the path of an action, each part quoted."""
        return "/".join([self.base, "actions", *(quote(part, safe="") for part in parts)])


def layout(context: PageContext, title: str, body: Content) -> Markup:
    """Return a whole page: head, navigation, the token box, messages, ``body``."""
    navigation = element(
        "nav",
        [
            element(
                "a",
                label,
                href=context.url(key),
                aria_current="page" if key == context.page else None,
            )
            for key, label in PAGES
        ],
    )
    messages = [
        element("p", context.flash, class_="flash", id="flash", role="status")
        if context.flash
        else None,
        element("p", context.error, class_="refused", id="refusal", role="alert")
        if context.error
        else None,
    ]
    stamp = context.now.strftime("%Y-%m-%d %H:%M:%S UTC")
    return join(
        raw("<!doctype html>\n"),
        element(
            "html",
            element(
                "head",
                element("meta", charset="utf-8"),
                element("meta", name="viewport", content="width=device-width, initial-scale=1"),
                element("title", f"{title} · operations"),
                element("link", rel="stylesheet", href=f"{context.base}/static/ops.css"),
                element("script", src=f"{context.base}/static/ops.js", defer=True),
            ),
            element(
                "body",
                element(
                    "header",
                    element("h1", element("a", "Operations", href=context.url("overview"))),
                    navigation,
                    access_box(context),
                ),
                element("main", messages, element("h2", title), body),
                element("footer", f"read at {stamp}"),
            ),
            lang="en",
        ),
    )


def access_box(context: PageContext) -> Markup:
    """Return the header's box: read-only, actions enabled here, or the token form."""
    if not context.actions:
        return element(
            "p", "Read-only: actions are off.", class_="access off", id="access", role="note"
        )
    if context.token_held:
        return element(
            "form",
            element("span", "Actions enabled in this browser. "),
            hidden("back", context.page),
            element("button", "Forget the token", type="submit", id="forget-token"),
            method="post",
            action=f"{context.base}/token/forget",
            class_="access on",
            id="access",
        )
    return element(
        "form",
        element(
            "label",
            "Operator token ",
            element(
                "input",
                type="password",
                name="token",
                id="token",
                autocomplete="current-password",
                required=True,
            ),
        ),
        hidden("back", context.page),
        element("button", "Enable actions", type="submit", id="token-submit"),
        method="post",
        action=f"{context.base}/token",
        class_="access locked",
        id="access",
    )


def hidden(name: str, value: str) -> Markup:
    """Return a hidden form field."""
    return element("input", type="hidden", name=name, value=value)


def action_button(
    context: PageContext,
    url: str,
    label: str,
    *,
    fields: Mapping[str, str] | None = None,
    identifier: str | None = None,
) -> Markup | None:
    """Return a one-button form posting to ``url``; nothing when actions are off."""
    if not context.actions:
        return None
    extra = [hidden(name, value) for name, value in (fields or {}).items()]
    return element(
        "form",
        hidden("back", context.page),
        extra,
        element("button", label, type="submit", id=identifier),
        method="post",
        action=url,
        class_="action",
    )


def refused_page(context: PageContext, back: str) -> Markup:
    """Return the page of an action refused (``context.error`` says why); nothing was done."""
    body = element(
        "p", "Nothing was done. ", element("a", "Back", href=back, id="back"), class_="note"
    )
    return layout(context, "Action refused", body)


# -- small formats -------------------------------------------------------------------


def when(moment: datetime | None, now: datetime) -> Markup:
    """Return a time in UTC with how long ago (or how soon) it is."""
    if moment is None:
        return element("span", "-", class_="none")
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = (moment - now).total_seconds()
    relative = f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"
    return element(
        "time",
        moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        element("small", f" ({relative})"),
        datetime=moment.isoformat(),
    )


def duration(seconds: float) -> str:
    """Return ``seconds`` as a short duration: ``0.4 s``, ``12 s``, ``3 min``, ``2.5 h``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def badge(text: str) -> Markup:
    """Return a state or status as a coloured badge."""
    return element("span", text, class_=f"badge badge-{_slug(text)}")


def table(
    headings: Sequence[str],
    rows: Sequence[Sequence[Content]],
    *,
    identifier: str,
    empty: str,
    row_ids: Sequence[str | None] | None = None,
) -> Markup:
    """Return a table of ``rows``, or a line saying ``empty`` when there is none."""
    if not rows:
        return element("p", empty, class_="empty", id=identifier)
    return element(
        "table",
        element("thead", element("tr", [element("th", heading) for heading in headings])),
        element(
            "tbody",
            [
                element(
                    "tr",
                    [element("td", cell) for cell in row],
                    data_key=row_ids[index] if row_ids else None,
                )
                for index, row in enumerate(rows)
            ],
        ),
        id=identifier,
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "none"


def _error(text: str | None) -> Markup | None:
    return element("span", text, class_="error") if text else None


# -- overview ------------------------------------------------------------------------


def overview_body(context: PageContext, live: Markup) -> Markup:
    """Return the overview: the live part (refreshed by the page's script) and what it is."""
    return join(
        element(
            "div",
            live,
            id="live",
            data_refresh_url=f"{context.base}/fragments/live",
            data_refresh_seconds=f"{context.refresh_seconds:g}",
        ),
        element(
            "p",
            f"The figures above refresh every {context.refresh_seconds:g} s.",
            class_="note",
        ),
    )


def live_fragment(
    rows: Sequence[WorkerRow],
    samples: Sequence[LagSample],
    *,
    now: datetime,
    window: float,
) -> Markup:
    """Return the refreshing part of the overview: workers, projections, the lag chart."""
    projected = [row for row in rows if row.kind == "projection"]
    return join(
        element("h3", "Workers"),
        workers_table(rows, now, identifier="workers"),
        element("h3", "Projections: checkpoint against the head"),
        projections_table(projected),
        element("h3", f"Lag over the last {window / 60:.0f} minutes (events behind)"),
        lag_section(samples, now=now.timestamp(), window=window),
        element("p", f"refreshed at {now:%H:%M:%S} UTC", class_="stamp", id="refreshed"),
    )


def workers_table(rows: Sequence[WorkerRow], now: datetime, *, identifier: str) -> Markup:
    """Return every worker on the status shape, one row each."""
    return table(
        [
            "Worker",
            "Kind",
            "State",
            "Owner",
            "Lease until",
            "Position",
            "Head",
            "Behind",
            "Oldest waiting",
            "Dead letters",
            "Last error",
        ],
        [
            [
                element("strong", row.name),
                row.kind,
                badge(row.state),
                row.owner or "-",
                when(row.lease_expires_at, now),
                row.position,
                "-" if row.head is None else row.head,
                row.lag_events,
                duration(row.lag_seconds) if row.lag_events else "-",
                element("span", row.dead_letters, class_="alert") if row.dead_letters else 0,
                _error(row.last_error),
            ]
            for row in rows
        ],
        identifier=identifier,
        empty="No worker has run on this database yet.",
        row_ids=[row.name for row in rows],
    )


def projections_table(rows: Sequence[WorkerRow]) -> Markup:
    """Return each projection's checkpoint against the head, as a number and a meter."""
    return table(
        ["Projection", "Checkpoint / head", "", "Behind", "Dead letters"],
        [
            [
                element("strong", row.name),
                f"{row.position} / {row.head if row.head is not None else '-'}",
                element(
                    "meter",
                    f"{row.position} of {row.head}",
                    value=row.position,
                    min=0,
                    max=max(row.head or 0, row.position, 1),
                    title=f"{row.position} of {row.head}",
                ),
                row.lag_events,
                row.dead_letters,
            ]
            for row in rows
        ],
        identifier="projections",
        empty="No projection has run on this database yet.",
        row_ids=[row.name for row in rows],
    )


def lag_section(samples: Sequence[LagSample], *, now: float, window: float) -> Markup:
    """Return the lag chart with its legend, or why there is none yet."""
    if not samples:
        return element("p", "No sample yet: the chart fills in as the page samples.", id="lag")
    names = series_names(samples)
    latest = samples[-1].lag_events
    first = datetime.fromtimestamp(samples[0].at, UTC)
    return element(
        "figure",
        lag_chart(samples, now=now, window=window),
        element(
            "figcaption",
            legend(names, latest),
            f"{len(samples)} samples since {first:%H:%M:%S} UTC",
        ),
        id="lag",
    )


# -- dead letters --------------------------------------------------------------------


WORKERS_WITH_LETTERS = {
    "projection": ("Projection", "projections"),
    "saga-feed": ("Saga feed", "saga-feeds"),
    "relay": ("Event-log relay", "relays"),
}
"""The kinds of worker whose dead letters the page shows: heading, and the action's path."""


def dead_letters_body(
    context: PageContext,
    projections: Sequence[WorkerRow],
    letters: Mapping[str, Sequence[DeadLetter]],
    failed: Sequence[FailedMessage],
    *,
    can_replay: bool | Container[str],
) -> Markup:
    """Return the workers' dead letters (projections, saga feeds) and the outbox's set aside.

    ``can_replay`` says which workers' letters the page can replay (by name),
    or whether it can replay every one.
    """
    sections: list[Markup] = []
    for row in projections:
        heading, path = WORKERS_WITH_LETTERS.get(row.kind, ("Projection", "projections"))
        held = letters.get(row.name, [])
        target = relay_of(row.name) if row.kind == "relay" else row.name  # a relay's partitions
        replayable = can_replay if isinstance(can_replay, bool) else target in can_replay
        button = None
        if held and replayable:
            button = action_button(
                context,
                context.action(path, target, "replay"),
                f"Replay the {len(held)} dead letter{'s' if len(held) != 1 else ''} of {row.name}",
                identifier=f"replay-{_slug(row.name)}",
            )
        elif held and context.actions:
            button = element(
                "p",
                f"Replay is not available here: the page was mounted without the application's"
                f" {heading.lower()} (replay it from the process that runs it).",
                class_="note",
            )
        sections.append(
            element(
                "section",
                element("h3", f"{heading} {row.name}"),
                table(
                    [
                        "Position",
                        "Stream",
                        "Version",
                        "Event",
                        "Reason",
                        "Attempts",
                        "First / last",
                    ],
                    [
                        [
                            letter.position,
                            letter.stream_id,
                            letter.version,
                            letter.event_type,
                            element(
                                "span",
                                element(
                                    "strong",
                                    letter.error_class.rpartition(".")[2],
                                    title=letter.error_class,
                                ),
                                f": {letter.error_message}",
                                class_="error",
                            ),
                            letter.attempts,
                            join(
                                when(letter.first_seen_at, context.now),
                                element("br"),
                                when(letter.last_seen_at, context.now),
                            ),
                        ]
                        for letter in held
                    ],
                    identifier=f"dead-letters-{_slug(row.name)}",
                    empty="No dead letter.",
                    row_ids=[str(letter.position) for letter in held],
                ),
                button,
                class_="projection" if row.kind == "projection" else "worker",
                data_projection=row.name if row.kind == "projection" else None,
                data_worker=row.name,
            )
        )
    if not projections:
        sections.append(element("p", "No projection has run on this database yet.", class_="empty"))
    outbox_rows = [
        [
            message.id,
            message.topic,
            message.message_type,
            message.partition_key or "-",
            _error(message.last_error),
            message.attempts,
            when(message.failed_at, context.now),
            action_button(
                context,
                context.action("outbox", "replay"),
                "Put back in the queue",
                fields={"id": str(message.id)},
                identifier=f"replay-outbox-{message.id}",
            ),
        ]
        for message in failed
    ]
    sections.append(
        element(
            "section",
            element("h3", "Outbox: messages set aside"),
            table(
                ["Id", "Topic", "Type", "Partition key", "Error", "Attempts", "Set aside", ""],
                outbox_rows,
                identifier="outbox-failed",
                empty="No message set aside.",
                row_ids=[str(message.id) for message in failed],
            ),
            action_button(
                context,
                context.action("outbox", "replay"),
                f"Put all {len(failed)} back in the queue",
                identifier="replay-outbox",
            )
            if failed
            else None,
        )
    )
    return join(*sections)


# -- sagas ---------------------------------------------------------------------------


def status_filters(
    context: PageContext, page: str, statuses: Sequence[str], current: str | None
) -> Markup:
    """Return the links that show ``page`` by status (and "all"), the current one marked."""
    return element(
        "p",
        "Status: ",
        [
            element(
                "a",
                label or "all",
                href=context.url(page, **({"status": label} if label else {})),
                aria_current="true" if label == current else None,
                class_="filter",
            )
            for label in (None, *statuses)
        ],
        class_="filters",
    )


def sagas_body(
    context: PageContext,
    instances: Sequence[SagaRow],
    shapes: Mapping[str, Sequence[str]],
    detail: SagaDetail | None,
    *,
    status: str | None,
) -> Markup:
    """Return the saga types' diagrams, the instance selected, and the list by status."""
    filters = status_filters(context, "sagas", SAGA_STATUSES, status)
    diagrams = [
        element("figure", saga_diagram(saga_type, shape), element("figcaption", saga_type),
                class_="scroll", data_saga_type=saga_type)
        for saga_type, shape in shapes.items()
    ]  # fmt: skip
    listing = table(
        ["Instance", "Type", "Key", "Status", "In flight", "Waits for", "Reason", "Changed"],
        [
            [
                element(
                    "a",
                    saga.saga_id[:8],
                    href=context.url("sagas", saga=saga.saga_id),
                    title=saga.saga_id,
                ),
                saga.saga_type,
                saga.correlation_key,
                badge(saga.status),
                "yes" if saga.in_flight else "no",
                saga.awaiting or "-",
                _error(saga.reason),
                when(saga.updated_at, context.now),
            ]
            for saga in instances
        ],
        identifier="sagas",
        empty="No saga instance" + (f" is {status}." if status else " yet."),
        row_ids=[saga.saga_id for saga in instances],
    )
    return join(
        selected_saga(context, detail, shapes) if detail is not None else None,
        element("h3", "Saga types"),
        diagrams or element("p", "No saga has run yet.", class_="empty"),
        element("h3", "Instances, most recently changed first"),
        filters,
        listing,
    )


def selected_saga(
    context: PageContext, detail: SagaDetail, shapes: Mapping[str, Sequence[str]]
) -> Markup:
    """Return one instance: its path through its type's steps, its steps, history and data."""
    saga = detail.saga
    retry = None
    if saga.status == "parked":
        retry = action_button(
            context,
            context.action("sagas", saga.saga_id, "retry"),
            "Retry: send it back to the phase it stopped in",
            identifier="retry-saga",
        )
    steps = table(
        ["Step", "Command", "Outcome", "Compensation"],
        [
            [step.step, step.command_type, badge(step.outcome), step.compensation or "-"]
            for step in detail.steps
        ],
        identifier="saga-steps",
        empty="No step taken yet.",
    )
    history = table(
        ["At", "What", "Step"],
        [[entry.at, entry.what, entry.step or "-"] for entry in detail.history],
        identifier="saga-history",
        empty="No history.",
    )
    data = json.dumps(detail.data, indent=2, sort_keys=True, default=str)
    return element(
        "section",
        element("h3", f"{saga.saga_type} {saga.saga_id}"),
        element(
            "p",
            "Status ",
            badge(saga.status),
            f" · key {saga.correlation_key} · version {saga.version}",
            element("br"),
            _error(saga.reason),
        ),
        retry,
        element(
            "figure",
            saga_diagram(
                saga.saga_type,
                shapes.get(saga.saga_type, ()),
                taken=detail.steps,
                status=saga.status,
            ),
            element("figcaption", "This instance's path through the steps"),
            class_="scroll",
            id="saga-path",
        ),
        element("h4", "Steps"),
        steps,
        element("h4", "History"),
        history,
        element("h4", "Data"),
        element("pre", data),
        element("p", element("a", "Close", href=context.url("sagas"))),
        class_="selected",
        id="saga",
        data_saga=saga.saga_id,
    )


# -- schedules -----------------------------------------------------------------------


def schedules_body(
    context: PageContext,
    schedules: Sequence[ScheduleRow],
    recurring: Sequence[RecurringRow],
    *,
    status: str | None,
) -> Markup:
    """Return the scheduled commands by due time, with their buttons, and the recurring ones."""
    filters = status_filters(context, "schedules", SCHEDULE_STATUSES, status)

    def buttons(row: ScheduleRow) -> Markup:
        cancel = run = None
        if row.status == "pending":
            cancel = action_button(
                context,
                context.action("schedules", row.schedule_id, "cancel"),
                "Cancel",
                identifier=f"cancel-{row.schedule_id}",
            )
        if row.status in ("pending", "failed"):
            run = action_button(
                context,
                context.action("schedules", row.schedule_id, "run-now"),
                "Run now",
                identifier=f"run-now-{row.schedule_id}",
            )
        return join(cancel, run)

    listing = table(
        ["Due", "Command", "Status", "Attempts", "Last error", "Recurrence", "Id", ""],
        [
            [
                when(row.due_at, context.now),
                row.command_type,
                badge(row.status),
                row.attempts,
                _error(row.last_error),
                row.recurrence or "-",
                element("code", row.schedule_id),
                buttons(row),
            ]
            for row in schedules
        ],
        identifier="schedules",
        empty="No scheduled command" + (f" is {status}." if status else "."),
        row_ids=[row.schedule_id for row in schedules],
    )
    recurring_table = table(
        ["Name", "Command", "Rule", "Time zone", "Paused", "Next"],
        [
            [
                row.name,
                row.command_type,
                element("code", row.rule),
                row.timezone,
                "yes" if row.paused else "no",
                when(row.next_fire_at, context.now),
            ]
            for row in recurring
        ],
        identifier="recurring",
        empty="No recurring schedule.",
        row_ids=[row.name for row in recurring],
    )
    return join(
        element("h3", "Scheduled commands, by due time"),
        filters,
        listing,
        element("h3", "Recurring schedules"),
        recurring_table,
    )


# -- outbox --------------------------------------------------------------------------


def outbox_body(
    context: PageContext,
    rows: Sequence[WorkerRow],
    topics: Sequence[TopicRow],
) -> Markup:
    """Return the relays (each publishing to a broker) with their lag, and the outbox by topic."""
    relays = [row for row in rows if row.kind in RELAY_KINDS]
    queue = [row for row in rows if row.kind == "outbox"]
    failed = sum(topic.failed for topic in topics)
    return join(
        element("h3", "Relays"),
        workers_table(relays, context.now, identifier="relays")
        if relays
        else element(
            "p",
            "No relay has run on this database (no broker configured).",
            class_="empty",
            id="relays",
        ),
        element("h3", "The outbox table"),
        workers_table(queue, context.now, identifier="outbox-queue"),
        element("h3", "By topic"),
        table(
            ["Topic", "Published", "Waiting", "Set aside", "Oldest waiting"],
            [
                [
                    element("strong", topic.topic),
                    topic.published,
                    topic.pending,
                    element("a", topic.failed, href=context.url("dead-letters"), class_="alert")
                    if topic.failed
                    else 0,
                    when(topic.oldest_pending_at, context.now),
                ]
                for topic in topics
            ],
            identifier="topics",
            empty="The outbox is empty.",
            row_ids=[topic.topic for topic in topics],
        ),
        element(
            "p",
            element(
                "a", f"{failed} set aside: see the dead letters", href=context.url("dead-letters")
            ),
            class_="note",
        )
        if failed
        else None,
    )


def problem_page(context: PageContext, title: str) -> Markup:
    """Return a page that only says what went wrong (``context.error``)."""
    return layout(context, title, element("p", element("a", "Back to the overview",
                                                        href=context.url("overview"))))  # fmt: skip
