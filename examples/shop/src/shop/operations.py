"""The routes of the monthly reports and of the service's health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from sqlalchemy import select, text

from shop.commands import (
    GenerateMonthlyReport,
)
from shop.projections import euros, reports
from shop.schemas import (
    Health,
    ReportOut,
    ReportRequest,
    ReportsOut,
)
from shop.web import IdempotencyKey, NotFoundError, aware, send, shop_of
from shop.wiring import MONTHLY_REPORT, Shop


def add_report_routes(app: FastAPI) -> None:
    """Add the report and health endpoints to ``app``."""

    @app.get("/reports", response_model=ReportsOut, tags=["reports"])
    async def list_reports(request: Request) -> ReportsOut:
        """Return the monthly reports, and when the schedule writes the next one."""
        shop = shop_of(request)
        schedule = await shop.schedules.recurring(MONTHLY_REPORT)
        async with shop.engine.connect() as connection:
            rows = (await connection.execute(select(reports).order_by(reports.c.month))).all()
        next_at = schedule.next_fire_at
        return ReportsOut(
            next_report_at=None if next_at is None else datetime.fromtimestamp(next_at, UTC),
            reports=[
                ReportOut(
                    month=row.month,
                    orders=row.orders,
                    revenue=euros(row.revenue_cents),
                    created_at=aware(row.created_at),
                )
                for row in rows
            ],
        )

    @app.post("/reports", status_code=201, response_model=ReportOut, tags=["reports"])
    async def write_report(
        what: ReportRequest, request: Request, response: Response, key: IdempotencyKey = None
    ) -> ReportOut:
        """Write the report of a month now (the schedule does it on the 1st of each month)."""
        await send(request, GenerateMonthlyReport(month=what.month), key)
        response.headers["Location"] = f"/reports/{what.month}"
        return await get_report(what.month, request)

    @app.get("/reports/{month}", response_model=ReportOut, tags=["reports"])
    async def get_report(month: str, request: Request) -> ReportOut:
        """Return the report of a month."""
        async with shop_of(request).engine.connect() as connection:
            row = (
                await connection.execute(select(reports).where(reports.c.month == month))
            ).first()
        if row is None:
            raise NotFoundError(f"no report for {month!r}")
        return ReportOut(
            month=row.month,
            orders=row.orders,
            revenue=euros(row.revenue_cents),
            created_at=aware(row.created_at),
        )

    @app.get("/health", response_model=Health, tags=["operations"])
    async def health(request: Request, response: Response) -> Health:
        """Say whether the database answers, and what each worker is doing."""
        shop = shop_of(request)
        database: dict[str, Any] = {"backend": shop.engine.dialect.name}
        try:
            async with shop.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            database["ok"] = True
        except Exception as error:  # noqa: BLE001 - any failure is what health reports
            database.update(ok=False, error=" ".join(str(error).split())[:300])
        workers = await worker_health(shop) if database["ok"] else {}
        healthy = database["ok"] and all(
            worker.get("running") and not worker.get("last_error") for worker in workers.values()
        )
        response.status_code = 200 if healthy else 503
        return Health(status="ok" if healthy else "degraded", database=database, workers=workers)


async def worker_health(shop: Shop) -> dict[str, Any]:
    """Return each worker's status, on the shared status shape where the worker has one."""
    projections = await shop.projections.status()
    workers: dict[str, Any] = {
        "projections": {
            "running": shop.projections.running,
            "projections": [
                {
                    "name": status.name,
                    "checkpoint": status.checkpoint,
                    "head": status.head_position,
                    "lag": status.lag_events,
                    "dead_letters": status.dead_letters,
                }
                for status in projections
            ],
        },
        "sagas": {"running": shop.sagas.worker.running},
        "saga_feed": await feed_health(shop),
        "scheduler": {
            "running": shop.scheduler_worker.running,
            "failed": len(await shop.schedules.dead_letters()),
        },
    }
    for name, worker in shop.relays.items():
        relay = await worker.status()
        workers[f"relay.{name}"] = {
            "running": relay.state not in {"halted", "stopped"},
            "state": relay.state,
            "position": relay.checkpoint,
            "lag": relay.lag_events,
            "owner": relay.owner,
            "last_error": relay.last_error,
        }
    return workers


async def feed_health(shop: Shop) -> dict[str, Any]:
    """Return where the saga feed is in the event log."""
    feed = await shop.saga_feed.status()
    return {
        "running": shop.saga_feed.running,
        "state": feed.state,
        "checkpoint": feed.checkpoint,
        "lag": feed.lag_events,
        "dead_letters": feed.dead_letters,
        "last_error": feed.last_error,
    }
