"""The operations page, over HTTP (ASGI), against SQLite and PostgreSQL holding a shop's data.

Each page answers with the data; every action is refused (403, nothing
changed) without the token or with actions off, and takes effect with it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from cqrs_ddd_ops import outbox as outbox_tools
from cqrs_ddd_ops import projections as projection_tools
from cqrs_ddd_ops import sagas as saga_tools
from cqrs_ddd_ops import schedules as schedule_tools
from cqrs_ddd_ops.status import WorkerRow
from cqrs_ddd_ops.web import OperatedSystem, operations_router
from cqrs_ddd_ops.web.sampler import LagHistory
from fastapi import FastAPI
from jetstream_support import jetstream_messages
from ops_web_support import GHOST, HOSTILE_ERROR, Populated, populate, set_aside_for_the_feed
from sqlalchemy import select

from cqrs_ddd_infrastructure_messaging import (
    EventLogRelay,
    MessageEnvelope,
    NatsJetStreamPublisher,
    OutboxWorker,
)
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyWorkerStorage, create_engine
from cqrs_ddd_testing import NatsNamespace, PostgresDatabase
from shop.projections import products
from shop.wiring import build_shop

TOKEN = "operator-token-for-the-tests"  # noqa: S105 - a test's token
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'system.sqlite'}"
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    return database.sqlalchemy_url


@pytest_asyncio.fixture
async def system(database_url: str) -> AsyncIterator[Populated]:
    engine = create_engine(database_url)
    try:
        yield await populate(engine)
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def sqlite_system(tmp_path: Path) -> AsyncIterator[Populated]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'system.sqlite'}")
    try:
        yield await populate(engine)
    finally:
        await engine.dispose()


def client_of(
    system: Populated, *, actions: bool = True, token: str | None = TOKEN
) -> httpx.AsyncClient:
    app = FastAPI()
    router = operations_router(
        OperatedSystem(system.engine, system.projections), token=token, actions=actions
    )
    app.include_router(router, prefix="/ops")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop")


def actions_of(system: Populated) -> list[tuple[str, dict[str, str]]]:
    """Every action of the page on the populated system, with its form."""
    return [
        ("/ops/actions/projections/shop.products/replay", {}),
        ("/ops/actions/outbox/replay", {}),
        ("/ops/actions/outbox/replay", {"id": str(system.failed_message)}),
        (f"/ops/actions/sagas/{system.parked_saga}/retry", {}),
        (f"/ops/actions/schedules/{system.expiry}/cancel", {}),
        (f"/ops/actions/schedules/{system.expiry}/run-now", {}),
    ]


async def unchanged(system: Populated) -> None:
    """Assert that nothing an action changes has changed."""
    engine = system.engine
    letters = await projection_tools.dead_letters(engine, "shop.products")
    assert [letter.position for letter in letters] == [system.dead_letter_position]
    assert [m.id for m in await outbox_tools.failed_messages(engine)] == [system.failed_message]
    detail = await saga_tools.saga_detail(engine, uuid.UUID(system.parked_saga))
    assert detail is not None
    assert detail.saga.status == "parked"
    expiry = await schedule_tools.schedule(engine, uuid.UUID(system.expiry))
    assert expiry is not None
    assert expiry.status == "pending"
    assert await ghost_row(system) is None


async def ghost_row(system: Populated) -> dict[str, object] | None:
    async with system.engine.connect() as connection:
        row = (await connection.execute(select(products).where(products.c.sku == GHOST))).first()
    return None if row is None else dict(row._mapping)


async def test_the_pages_show_the_systems_data(system: Populated) -> None:
    async with client_of(system) as client:
        overview = await client.get("/ops/")
        dead_letters = await client.get("/ops/dead-letters")
        sagas = await client.get("/ops/sagas")
        selected = await client.get("/ops/sagas", params={"saga": system.parked_saga})
        parked = await client.get("/ops/sagas", params={"status": "parked"})
        schedules = await client.get("/ops/schedules", params={"status": "pending"})
        outbox = await client.get("/ops/outbox")
        live = await client.get("/ops/fragments/live")
        status = await client.get("/ops/api/status")
        script = await client.get("/ops/static/ops.js")
        style = await client.get("/ops/static/ops.css")
    for page in (overview, dead_letters, sagas, selected, parked, schedules, outbox, live):
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
    # the overview: every worker, each projection against the head, the chart's first sample
    for worker in ("shop.orders", "shop.products", "scheduled commands", "saga instances"):
        assert f'data-key="{worker}"' in overview.text
    assert re.search(r'<meter value="\d+" min="0" max="\d+"', overview.text)
    assert 'id="lag-chart"' in overview.text
    assert 'data-refresh-url="/ops/fragments/live"' in overview.text
    assert '<script src="/ops/static/ops.js" defer></script>' in overview.text
    assert 'id="workers"' in live.text
    assert "<html" not in live.text
    # the dead letters: the projection's, with its reason, and the outbox's, escaped
    assert f'data-key="{system.dead_letter_position}"' in dead_letters.text
    assert (
        'title="cqrs_ddd_core.exceptions.EventDeserializationError">EventDeserializationError</strong>'
        in dead_letters.text
    )
    assert "price: Field required" in dead_letters.text
    assert "ProductAdded" in dead_letters.text
    assert 'id="replay-shop-products"' in dead_letters.text
    assert (
        "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt; broker refused" in dead_letters.text
    )
    assert HOSTILE_ERROR not in dead_letters.text
    assert f'id="replay-outbox-{system.failed_message}"' in dead_letters.text
    # the sagas: the type's steps, the parked instance's path and history, its retry button
    assert "<svg" in sagas.text
    for step in ("reserving", "charging", "confirming"):
        assert f'data-step="{step}"' in sagas.text
    assert 'data-outcome="done"' in selected.text
    assert "compensation of &#x27;charging&#x27; failed" in selected.text
    assert 'id="saga-history"' in selected.text
    assert 'id="retry-saga"' in selected.text
    assert f'data-key="{system.parked_saga}"' in parked.text
    assert "OrderFulfilment" in parked.text
    # the schedules by due time, with their buttons; the recurring one
    assert f'data-key="{system.expiry}"' in schedules.text
    assert f'id="cancel-{system.expiry}"' in schedules.text
    assert 'data-key="monthly-report"' in schedules.text
    # the outbox by topic
    assert 'data-key="Customer"' in outbox.text
    # the JSON twin and the page's own files
    body = status.json()
    assert {row["name"] for row in body["workers"]} >= {"shop.orders", "shop.products"}
    assert body["lag"]
    assert script.headers["content-type"].startswith("text/javascript")
    assert "refreshUrl" in script.text
    assert style.headers["content-type"].startswith("text/css")


async def test_every_action_is_refused_without_the_right_token(system: Populated) -> None:
    async with client_of(system) as client:
        for url, form in actions_of(system):
            without = await client.post(url, data=form)
            wrong = await client.post(url, data=form, headers={"Authorization": "Bearer nope"})
            assert without.status_code == 403, (url, without.text)
            assert "this action needs the operator token" in without.text
            assert wrong.status_code == 403, (url, wrong.text)
            assert "the operator token is wrong" in wrong.text
    await unchanged(system)


async def test_with_actions_off_every_action_is_refused_even_with_the_token(
    system: Populated,
) -> None:
    async with client_of(system, actions=False) as client:
        page = await client.get("/ops/dead-letters")
        refused = [
            await client.post(url, data=form, headers=BEARER) for url, form in actions_of(system)
        ]
        token_form = await client.post("/ops/token", data={"token": TOKEN})
    assert "Read-only: actions are off." in page.text
    assert "<button" not in page.text
    for answer in [*refused, token_form]:
        assert answer.status_code == 403
        assert "actions are off" in answer.text
    await unchanged(system)


async def test_each_action_takes_effect_with_the_token(system: Populated) -> None:
    engine = system.engine
    async with client_of(system) as client:
        replayed = await client.post(
            "/ops/actions/projections/shop.products/replay",
            data={"back": "dead-letters"},
            headers=BEARER,
        )
        assert replayed.status_code == 303, replayed.text
        assert replayed.headers["location"] == "/ops/dead-letters"
        after = await client.get("/ops/dead-letters", headers=BEARER)
        retried = await client.post(
            f"/ops/actions/sagas/{system.parked_saga}/retry", headers=BEARER
        )
        sent_back = await client.post(
            "/ops/actions/outbox/replay", data={"id": str(system.failed_message)}, headers=BEARER
        )
        run_now = await client.post(
            f"/ops/actions/schedules/{system.expiry}/run-now", headers=BEARER
        )
        due = await schedule_tools.schedule(engine, uuid.UUID(system.expiry))
        cancelled = await client.post(
            f"/ops/actions/schedules/{system.expiry}/cancel", headers=BEARER
        )
        again = await client.post(f"/ops/actions/schedules/{system.expiry}/cancel", headers=BEARER)
    # the dead letter applied through the projection worker: gone, and the read model has it
    assert "Replayed the dead letters of shop.products: 1 applied." in after.text
    assert 'id="flash"' in after.text
    assert await projection_tools.dead_letters(engine, "shop.products") == []
    assert await ghost_row(system) == {
        "sku": GHOST, "name": "Ghost", "price_cents": 700, "stock": 3, "held": 0,
    }  # fmt: skip
    # the parked saga is compensating again, for the recovery to resume
    assert retried.status_code == 303
    assert retried.headers["location"] == f"/ops/sagas?saga={system.parked_saga}"
    detail = await saga_tools.saga_detail(engine, uuid.UUID(system.parked_saga))
    assert detail is not None
    assert detail.saga.status == "compensating"
    assert detail.history[-1].what == "retried by an operator"
    # the outbox message is back in the queue
    assert sent_back.status_code == 303
    assert await outbox_tools.failed_messages(engine) == []
    assert (await outbox_tools.topics(engine))[0].pending == 1
    # the expiry: made due now, then cancelled; a second cancel is refused, saying why
    assert run_now.status_code == 303
    assert due is not None
    assert due.status == "pending"
    assert due.due_at <= datetime.now(UTC)
    assert cancelled.status_code == 303
    expiry = await schedule_tools.schedule(engine, uuid.UUID(system.expiry))
    assert expiry is not None
    assert expiry.status == "cancelled"
    assert again.status_code == 409
    assert "cannot be cancelled: it is cancelled" in again.text


async def test_the_token_form_keeps_the_token_in_a_strict_http_only_cookie(
    sqlite_system: Populated,
) -> None:
    system = sqlite_system
    async with client_of(system) as client:
        before = await client.get("/ops/dead-letters")
        wrong = await client.post("/ops/token", data={"token": "guess", "back": "dead-letters"})
        right = await client.post("/ops/token", data={"token": TOKEN, "back": "dead-letters"})
        held = await client.get("/ops/dead-letters")
        acted = await client.post(
            "/ops/actions/outbox/replay", data={"back": "outbox"}
        )  # the cookie, no header
        shown = await client.get("/ops/outbox")
        forgotten = await client.post("/ops/token/forget", data={"back": "outbox"})
        refused = await client.post("/ops/actions/projections/shop.products/replay")
    assert 'id="token-form"' not in before.text
    assert 'name="token"' in before.text
    assert wrong.status_code == 403
    assert "not the operator token" in wrong.text
    assert right.status_code == 303
    assert right.headers["location"] == "/ops/dead-letters"
    cookie = next(c for c in right.headers.get_list("set-cookie") if "cqrs_ddd_ops_token=" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/ops" in cookie
    assert "Token accepted" in held.text
    assert 'id="forget-token"' in held.text
    assert acted.status_code == 303
    assert acted.headers["location"] == "/ops/outbox"
    assert "Put 1 outbox message back in the queue" in shown.text
    assert "Token accepted" not in shown.text  # a message is shown once
    assert await outbox_tools.failed_messages(system.engine) == []
    assert forgotten.status_code == 303
    assert refused.status_code == 403
    assert await projection_tools.dead_letters(system.engine, "shop.products") != []


async def test_unknown_ids_and_statuses_are_said_plainly(sqlite_system: Populated) -> None:
    system = sqlite_system
    unknown = str(uuid.uuid4())
    async with client_of(system) as client:
        no_saga = await client.get("/ops/sagas", params={"saga": unknown})
        not_an_id = await client.get("/ops/sagas", params={"saga": "<b>x</b>"})
        bad_status = await client.get("/ops/schedules", params={"status": "asleep"})
        answers = {
            "retry": await client.post(f"/ops/actions/sagas/{unknown}/retry", headers=BEARER),
            "cancel": await client.post(f"/ops/actions/schedules/{unknown}/cancel", headers=BEARER),
            "projection": await client.post(
                "/ops/actions/projections/no.such/replay", headers=BEARER
            ),
            "message": await client.post(
                "/ops/actions/outbox/replay", data={"id": "999999"}, headers=BEARER
            ),
        }
    assert no_saga.status_code == 404
    assert f"no saga instance {unknown}" in no_saga.text
    assert not_an_id.status_code == 404
    assert "&lt;b&gt;x&lt;/b&gt;" in not_an_id.text
    assert bad_status.status_code == 400
    assert "no schedule status &#x27;asleep&#x27;" in bad_status.text
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "retry": 404, "cancel": 404, "projection": 404, "message": 404,
    }  # fmt: skip
    assert "the application has no projection &#x27;no.such&#x27;" in answers["projection"].text
    await unchanged(system)


async def test_replay_needs_the_applications_projection_worker(sqlite_system: Populated) -> None:
    system = sqlite_system
    app = FastAPI()
    app.include_router(
        operations_router(OperatedSystem(system.engine), token=TOKEN, actions=True), prefix="/ops"
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        page = await client.get("/ops/dead-letters")
        answer = await client.post("/ops/actions/projections/shop.products/replay", headers=BEARER)
    assert "Replay is not available here" in page.text
    assert 'id="replay-shop-products"' not in page.text
    assert answer.status_code == 409
    assert "cqrs-ddd projections replay" in answer.text
    await unchanged(system)


async def test_the_lifespan_samples_the_lag_for_the_chart(sqlite_system: Populated) -> None:
    system = sqlite_system
    app = FastAPI()
    router = operations_router(OperatedSystem(system.engine), sample_seconds=0.05)
    app.include_router(router, prefix="/ops")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            for _ in range(200):  # the lifespan's task samples by itself: wait for three
                status = (await client.get("/ops/api/status")).json()
                if len(status["lag"]) >= 3:
                    break
                await asyncio.sleep(0.05)
            overview = await client.get("/ops/")
    assert len(status["lag"]) >= 3
    assert set(status["lag"][0]["lag_events"]) == {"shop.orders", "shop.products"}
    assert status["actions"] is False
    assert re.search(r"<polyline[^>]*points=", overview.text)
    assert "shop.products: 0 behind" in overview.text


def test_the_lag_history_keeps_one_window_of_samples_at_most() -> None:
    now = [1000.0]
    history = LagHistory(window=60.0, min_gap=5.0, clock=lambda: now[0])
    row = WorkerRow("p", "projection", "running", None, None, 1, 3, 2, 0.5, 0, None)
    queue = WorkerRow("q", "scheduler", "waiting", None, None, 4, None, 0, 0.0, 0, None)
    kept = []
    for _ in range(100):
        kept.append(history.record([row, queue]))
        now[0] += 1.0
    samples = history.samples()
    assert kept[:6] == [True, False, False, False, False, True]
    assert len(samples) <= 13
    assert samples[0].at >= now[0] - 60.0
    assert samples[-1].lag_events == {"p": 2}  # queues have no head: not charted


def test_actions_need_a_token_long_enough() -> None:
    engine = create_engine("sqlite+aiosqlite:///unused.sqlite")
    with pytest.raises(ValueError, match="actions=True needs a token"):
        operations_router(OperatedSystem(engine), actions=True)
    with pytest.raises(ValueError, match="at least 16 characters"):
        operations_router(OperatedSystem(engine), actions=True, token="short")  # noqa: S106


async def test_before_the_application_starts_and_without_a_schema_the_page_says_so(
    tmp_path: Path,
) -> None:
    empty = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite'}")
    app = FastAPI()
    app.include_router(operations_router(lambda running: None), prefix="/early")
    app.include_router(operations_router(OperatedSystem(empty)), prefix="/empty")
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            early = await client.get("/early/")
            early_status = await client.get("/early/api/status")
            no_schema = await client.get("/empty/sagas")
            no_schema_live = await client.get("/empty/fragments/live")
    finally:
        await empty.dispose()
    assert early.status_code == 503
    assert "the application is not started yet" in early.text
    assert early_status.status_code == 503
    assert no_schema.status_code == 503
    assert "the database failed" in no_schema.text
    assert no_schema_live.status_code == 503
    assert 'href="/empty/static/ops.css"' in no_schema.text  # each router knows its own path
    assert 'href="/early/static/ops.css"' in early.text


async def test_a_saga_feed_dead_letter_is_shown_and_replayed_through_the_running_feed(
    sqlite_system: Populated,
) -> None:
    # given the feed of a running shop set the paid order's checkout aside
    system = sqlite_system
    shop = await build_shop(system.engine)
    position = await set_aside_for_the_feed(shop.saga_feed, shop.event_store, system.paid_order)
    app = FastAPI()
    operated = OperatedSystem(system.engine, system.projections, saga_feeds=(shop.saga_feed,))
    app.include_router(operations_router(operated, token=TOKEN, actions=True), prefix="/ops")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        # the page shows it, with its reason and a replay button
        page = await client.get("/ops/dead-letters")
        assert "Saga feed shop.sagas" in page.text
        assert "the payment service did not answer" in page.text
        assert 'id="replay-shop-sagas"' in page.text
        # without the token, the replay is refused and the letter stays
        refused = await client.post("/ops/actions/saga-feeds/shop.sagas/replay")
        assert refused.status_code == 403
        assert [letter.position for letter in await shop.saga_feed.dead_letters()] == [position]
        # with it, the feed delivers the event again and the letter goes
        done = await client.post("/ops/actions/saga-feeds/shop.sagas/replay", headers=BEARER)
        assert done.status_code == 303
        followed = await client.get(done.headers["location"])
        assert "Replayed the dead letters of shop.sagas: 1 applied." in followed.text
        unknown = await client.post("/ops/actions/saga-feeds/nothing/replay", headers=BEARER)
        assert unknown.status_code == 404
    assert await shop.saga_feed.dead_letters() == []


async def test_an_event_log_relay_dead_letter_is_published_again_from_the_page(
    sqlite_system: Populated, nats_namespace: NatsNamespace
) -> None:
    # given the shop's event-log relay could not route the paid order's confirmation
    system = sqlite_system
    shop = await build_shop(system.engine)

    def routed(envelope: MessageEnvelope) -> str:
        if envelope.event_type == "OrderConfirmed":
            raise LookupError("no route for confirmations")
        return nats_namespace.subject("orders")

    stream = nats_namespace.stream("orders")
    publisher = NatsJetStreamPublisher(
        nats_namespace.url, stream=stream, subjects=[nats_namespace.subject(">")]
    )
    async with publisher:
        relay = EventLogRelay(
            name="shop.log", event_store=shop.event_store,
            storage=SQLAlchemyWorkerStorage(system.engine), publisher=publisher,
            topic=routed, max_attempts=1,
        )  # fmt: skip
        worker = OutboxWorker(relay, owner="shop-relay")
        await worker.drain()
        (letter,) = await worker.dead_letters()
        app = FastAPI()
        operated = OperatedSystem(system.engine, system.projections, relays=(worker,))
        app.include_router(operations_router(operated, token=TOKEN, actions=True), prefix="/ops")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            page = await client.get("/ops/dead-letters")
            assert "Event-log relay shop.log" in page.text
            assert "no route for confirmations" in page.text
            assert 'id="replay-shop-log"' in page.text
            refused = await client.post("/ops/actions/relays/shop.log/replay")
            assert refused.status_code == 403
            assert await worker.dead_letters() == [letter]
            # once the route is mended, the page's replay publishes it
            relay.topic = lambda envelope: nats_namespace.subject("orders")
            done = await client.post("/ops/actions/relays/shop.log/replay", headers=BEARER)
            assert done.status_code == 303
            followed = await client.get(done.headers["location"])
            assert "Replayed the dead letters of shop.log: 1 applied." in followed.text
        assert await worker.dead_letters() == []
    published = await jetstream_messages(nats_namespace.url, stream)
    assert [e.event_type for e in published].count("OrderConfirmed") == 1


async def test_an_action_posted_from_another_site_is_refused(sqlite_system: Populated) -> None:
    # a browser sends the cookie along with a form another site posts: it says so, though
    system = sqlite_system
    async with client_of(system) as client:
        answer = await client.post(
            f"/ops/actions/schedules/{system.expiry}/cancel",
            headers={**BEARER, "Sec-Fetch-Site": "same-site"},
        )
        assert answer.status_code == 403
        assert "came from another site (same-site)" in answer.text
    await unchanged(system)
