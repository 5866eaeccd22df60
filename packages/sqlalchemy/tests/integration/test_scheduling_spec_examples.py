"""The spec's scheduling examples, as written, on memory, SQLite and PostgreSQL.

"5. Command Scheduling" (its Quick Example: ``scheduler`` is the service, see
NOTES 7) and the scheduling part of the e-commerce integration example, where
the worker is built from ``SQLAlchemyCommandScheduler(session)`` and
``mediator.send``. Around them stand only a reminder command, its handler and
the mediator; each test checks what a user relies on: nothing runs before its
time, the due command runs once, a cancelled one never, and the worker starts
and stops cleanly.
"""

# ruff: noqa: UP017 - the spec writes timezone.utc, and its examples are kept as written
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cqrs_ddd_advanced_core.adapters.memory import InMemoryCommandScheduler
from cqrs_ddd_advanced_core.scheduling import (
    CommandScheduler,
    CommandSchedulerService,
    CommandSchedulerWorker,
)
from cqrs_ddd_core import Command, HandlerRegistry, InMemoryUnitOfWork, Mediator
from cqrs_ddd_core.ports.unit_of_work import UnitOfWorkFactory
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyCommandScheduler, SQLAlchemyUnitOfWork

pytest_plugins = ["sqlalchemy_fixtures"]


class SendPaymentReminder(Command):
    order_id: str


class Reminders:
    """The user's side: a handler that records each reminder sent, and the mediator."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.sent: list[str] = []
        registry = HandlerRegistry()

        @registry.command_handler(SendPaymentReminder)
        async def send_payment_reminder(command: SendPaymentReminder) -> None:
            self.sent.append(command.order_id)

        self.mediator = Mediator(registry=registry, uow_factory=uow_factory)

    async def wait_for(self, order_id: str) -> None:
        async with asyncio.timeout(10):
            while order_id not in self.sent:  # noqa: ASYNC110 - the worker runs in the background
                await asyncio.sleep(0.02)


async def quick_example(store: CommandScheduler, reminders: Reminders) -> None:
    service = CommandSchedulerService(scheduler=store, mediator_send_fn=reminders.mediator.send)
    scheduler = service  # NOTES 7: the quick example's `scheduler` is the service

    # Schedule command
    schedule_id = await scheduler.schedule(
        command=SendPaymentReminder(order_id="order_123"),
        execute_at=datetime.now(timezone.utc) + timedelta(hours=24),
    )

    # Start background worker
    worker = CommandSchedulerWorker(service, poll_interval=60.0)
    await worker.start()
    try:
        cancelled = await scheduler.schedule(
            command=SendPaymentReminder(order_id="order_cancelled"),
            execute_at=datetime.now(timezone.utc) + timedelta(milliseconds=200),
        )
        await scheduler.cancel(cancelled)
        due = await scheduler.schedule(
            command=SendPaymentReminder(order_id="order_due"),
            execute_at=datetime.now(timezone.utc) + timedelta(milliseconds=300),
        )
        await reminders.wait_for("order_due")
        await asyncio.sleep(0.3)  # the cancelled one's time has passed too
    finally:
        await worker.stop()

    assert reminders.sent == ["order_due"]
    assert (await scheduler.get(schedule_id)).status == "pending"  # due tomorrow
    assert (await scheduler.get(cancelled)).status == "cancelled"
    state = await scheduler.get(due)
    assert (state.status, state.attempts) == ("done", 1)
    assert state.finished_at is not None
    assert state.finished_at >= state.due_at
    assert not worker.running


async def test_the_quick_example_in_memory() -> None:
    await quick_example(InMemoryCommandScheduler(), Reminders(InMemoryUnitOfWork))


async def test_the_quick_example_on_sql(engine: AsyncEngine) -> None:
    await quick_example(
        SQLAlchemyCommandScheduler(engine), Reminders(partial(SQLAlchemyUnitOfWork, engine))
    )


async def test_the_e_commerce_lifespan_s_scheduling_on_sql(engine: AsyncEngine) -> None:
    session = async_sessionmaker(engine, class_=AsyncSession)
    mediator = Reminders(partial(SQLAlchemyUnitOfWork, engine))

    # 4. Setup scheduling
    scheduler_worker = CommandSchedulerWorker(
        service=CommandSchedulerService(
            scheduler=SQLAlchemyCommandScheduler(session),
            mediator_send_fn=mediator.mediator.send,
        ),
        poll_interval=60.0,
    )
    await scheduler_worker.start()
    try:
        await scheduler_worker.service.schedule(
            command=SendPaymentReminder(order_id="order_lifespan"),
            execute_at=datetime.now(timezone.utc) + timedelta(milliseconds=100),
        )
        await mediator.wait_for("order_lifespan")
    finally:
        await scheduler_worker.stop()
    assert mediator.sent == ["order_lifespan"]
