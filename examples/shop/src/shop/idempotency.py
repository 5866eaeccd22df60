"""Idempotency keys: a request retried with the same ``Idempotency-Key`` has one effect.

The HTTP layer gives a command sent under a key a command id derived from the
key (:func:`command_id_for`) and announces it (:meth:`IdempotencyKeys.expecting`).
The command's handler calls :meth:`IdempotencyKeys.remember` with its result,
which writes the key, a fingerprint of the request and the result in the
command's own transaction: the key is stored if and only if the command's
effect is. A retry finds the key and gets the first answer again, without
running the command; a retry racing the first request waits for it on the
key's primary key and then finds the key too. A key sent again with another
request is refused (the fingerprints differ).

Keys are kept until deleted; :meth:`IdempotencyKeys.purge` removes those older
than a window.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_core import Command
from cqrs_ddd_core.cqrs.scope import current_scope
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyUnitOfWork

MAX_KEY_LENGTH = 200
"""The longest idempotency key accepted."""

KEY_NAMESPACE = uuid.UUID("8d7f3c5e-0b7a-4f7e-8f51-3b8f0c6f2a90")

metadata = MetaData()

request_keys = Table(
    "shop_request_keys",
    metadata,
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("result", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class IdempotencyKeyReusedError(Exception):
    """An idempotency key came back with a different request."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"the Idempotency-Key {key!r} was used for a different request; use a new key"
        )


@dataclass(frozen=True)
class StoredRequest:
    """What a key's first request answered."""

    fingerprint: str
    result: Any


@dataclass(frozen=True)
class _Pending:
    key: str
    fingerprint: str
    command_id: uuid.UUID


_pending: ContextVar[_Pending | None] = ContextVar("shop_pending_request", default=None)


def command_id_for(key: str, fingerprint: str) -> uuid.UUID:
    """Return the command id of the request ``fingerprint`` sent under ``key``."""
    return uuid.uuid5(KEY_NAMESPACE, f"{key}\n{fingerprint}")


def fingerprint_of(method: str, path: str, body: Any) -> str:
    """Return a fingerprint of a request: its method, path and body."""
    text = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class IdempotencyKeys:
    """The stored keys of the shop's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_table(self) -> None:
        """Create the keys' table when it does not exist."""
        async with self.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)

    async def find(self, key: str) -> StoredRequest | None:
        """Return what the first request under ``key`` answered, or None."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(request_keys.c.fingerprint, request_keys.c.result).where(
                        request_keys.c.key == key
                    )
                )
            ).first()
        return None if row is None else StoredRequest(row.fingerprint, json.loads(row.result))

    @contextmanager
    def expecting(self, key: str, fingerprint: str, command_id: uuid.UUID) -> Iterator[None]:
        """Within this block, the command ``command_id`` stores ``key`` with its result."""
        token = _pending.set(_Pending(key, fingerprint, command_id))
        try:
            yield
        finally:
            _pending.reset(token)

    async def remember(self, command: Command, result: Any) -> None:
        """Store the pending key of ``command`` with ``result``, in the command's transaction.

        Does nothing for a command no key announced (sent without a key, or by
        the saga or the scheduler).
        """
        pending = _pending.get()
        if pending is None or pending.command_id != command.command_id:
            return
        uow = current_scope().uow
        if not isinstance(uow, SQLAlchemyUnitOfWork):
            raise TypeError("idempotency keys are stored in a SQLAlchemy unit of work")
        row = {
            "key": pending.key,
            "fingerprint": pending.fingerprint,
            "result": json.dumps(result, default=str),
            "created_at": datetime.now(UTC),
        }
        await uow.connection.execute(request_keys.insert().values(row))

    async def purge(self, older_than: datetime) -> int:
        """Delete the keys stored before ``older_than``; return how many."""
        async with self.engine.begin() as connection:
            done = await connection.execute(
                delete(request_keys).where(request_keys.c.created_at < older_than)
            )
        return done.rowcount
