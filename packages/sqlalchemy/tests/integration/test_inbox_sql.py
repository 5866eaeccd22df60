"""``SQLAlchemyInbox`` on SQLite and PostgreSQL: one claim per message, with its transaction."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core.cqrs.scope import command_scope
from cqrs_ddd_core.exceptions import UnitOfWorkError
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyInbox, SQLAlchemyUnitOfWork

pytest_plugins = ["sqlalchemy_fixtures"]


async def claimed(
    engine: AsyncEngine, inbox: SQLAlchemyInbox, message_id: UUID, *, commit: bool = True
) -> bool:
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            first = await inbox.claim("shipping", message_id)
        if commit:
            await uow.commit()
    return first


async def test_a_message_is_claimed_once_and_a_rolled_back_claim_is_not_kept(
    engine: AsyncEngine,
) -> None:
    inbox = SQLAlchemyInbox(engine)
    message_id = uuid4()

    assert await claimed(engine, inbox, message_id, commit=False)  # the handler failed
    assert await claimed(engine, inbox, message_id)  # redelivered: handled now
    assert not await claimed(engine, inbox, message_id)  # and never again

    other_consumer = uuid4()
    async with SQLAlchemyUnitOfWork(engine) as uow:
        with command_scope(uow):
            assert await inbox.claim("billing", message_id)  # another consumer's own claim
            assert await inbox.claim("billing", other_consumer)
        await uow.commit()


async def test_the_retention_window_is_real(engine: AsyncEngine) -> None:
    """After the window the claim is forgotten: a duplicate that late is handled again."""
    inbox = SQLAlchemyInbox(engine)
    message_id = uuid4()
    assert await claimed(engine, inbox, message_id)
    assert await inbox.purge(older_than=3600.0) == 0  # within the window: kept

    await asyncio.sleep(1.1)
    assert await inbox.purge(older_than=1.0) == 1

    assert await claimed(engine, inbox, message_id)


async def test_a_claim_outside_a_unit_of_work_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(UnitOfWorkError, match="inside the handler's unit of work"):
        await SQLAlchemyInbox(engine).claim("shipping", uuid4())
