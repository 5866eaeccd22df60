"""The append on PostgreSQL: lock, version check, insert and notify in one statement.

Sent on the asyncpg connection of the command's transaction (see
``driver_transaction``), prepared once per connection by asyncpg's statement
cache. The rows go in as one array per column (``unnest``), so a command of
a thousand events is still one statement.

The version check reads the stream in the statement's snapshot, taken before
the statement waited for the append lock: a writer that appended to the same
stream meanwhile makes our rows collide with its versions, and ``ON CONFLICT
DO NOTHING`` leaves them out. The caller sees fewer rows than it sent, takes
out any that did go in, and resolves the conflict (see ``SQLAlchemyEventStore``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy.engine import Dialect

from cqrs_ddd_core.exceptions import ConcurrencyError, DuplicateEventIdError
from cqrs_ddd_persistence_sqlalchemy.channels import NOTIFY_CHANNEL
from cqrs_ddd_persistence_sqlalchemy.driver_reads import bind_processor_of
from cqrs_ddd_persistence_sqlalchemy.schema import events

APPEND_LOCK_KEY = zlib.crc32(b"cqrs_ddd:cqrs_events:append")
"""The PostgreSQL advisory lock that serialises appends (a stable 32-bit key)."""

# ``locked`` is materialised, so it runs once; every row of the INSERT comes
# out of its join with it, so the lock is held before the first position is
# drawn from the sequence. When the version check fails nothing runs at all.
_APPEND = f"""
WITH locked AS MATERIALIZED (
    SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY}), pg_notify('{NOTIFY_CHANNEL}', '')
)
INSERT INTO cqrs_events (
    stream_id, version, event_id, event_type, schema_version, aggregate_type,
    occurred_at, correlation_id, causation_id, payload, metadata
)
SELECT $1::varchar, e.version, e.event_id, e.event_type, e.schema_version, e.aggregate_type,
       e.occurred_at, e.correlation_id, e.causation_id, e.payload, e.metadata
FROM locked, unnest(
    $3::integer[], $4::uuid[], $5::varchar[], $6::integer[], $7::varchar[],
    $8::timestamptz[], $9::varchar[], $10::varchar[], $11::json[], $12::json[]
) AS e(
    version, event_id, event_type, schema_version, aggregate_type,
    occurred_at, correlation_id, causation_id, payload, metadata
)
WHERE (SELECT coalesce(max(version), 0) FROM cqrs_events WHERE stream_id = $1::varchar) = $2
ORDER BY e.version
ON CONFLICT DO NOTHING
RETURNING position, version
"""  # noqa: S608 (only the module's constants are put in; values are bound)

# The same append, all or nothing: sent alone (an implicit transaction, see
# ``DriverTransaction.defer``), it cannot take rows out again afterwards, so a
# row that collides fails the whole statement instead of being left out.
_APPEND_ALONE = _APPEND.replace("ON CONFLICT DO NOTHING\n", "")

_DELETE = "DELETE FROM cqrs_events WHERE position = ANY($1::bigint[])"
_STORED_IDS = "SELECT event_id FROM cqrs_events WHERE stream_id = $1 AND event_id = ANY($2::uuid[])"
_LATEST_VERSION = "SELECT coalesce(max(version), 0) FROM cqrs_events WHERE stream_id = $1"


class PostgresAppend:
    """The append statement and how its arguments are made, for one engine's dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._json: Callable[[Any], Any] = bind_processor_of(events.c.payload.type, dialect)
        self._moment: Callable[[Any], Any] = bind_processor_of(events.c.occurred_at.type, dialect)

    async def insert(
        self,
        driver: Any,
        stream_id: str,
        documents: Sequence[dict[str, Any]],
        expected_version: int,
    ) -> dict[int, int]:
        """Insert the documents if the stream is at ``expected_version``: {version: position}.

        Fewer entries than documents mean the stream was not where expected
        (nothing went in) or another writer got there first (some may have).
        """
        rows = await driver.fetch(_APPEND, *self._arguments(stream_id, documents, expected_version))
        return {version: position for position, version in rows}

    async def insert_alone(
        self,
        driver: Any,
        stream_id: str,
        documents: Sequence[dict[str, Any]],
        expected_version: int,
    ) -> bool:
        """Insert every document or none, as one statement outside any transaction.

        The server commits it on its own. False when nothing went in: the
        stream was not at ``expected_version``, or a version or event id
        collided (see :meth:`explain_refusal`).
        """
        arguments = self._arguments(stream_id, documents, expected_version)
        try:
            rows = await driver.fetch(_APPEND_ALONE, *arguments)
        except asyncpg.UniqueViolationError:
            return False
        return len(rows) == len(documents)

    async def explain_refusal(
        self,
        driver: Any,
        stream_id: str,
        documents: Sequence[dict[str, Any]],
        expected_version: int,
    ) -> None:
        """Raise why an append went in short; return when its events were all stored before.

        Every event id already in the stream: the same append was stored
        before (a retry after an ambiguous commit), which is not an error.
        Some of them: ``DuplicateEventIdError``. None: ``ConcurrencyError``
        with the stream's version now.
        """
        ids = [UUID(document["event_id"]) for document in documents]
        stored = {row[0] for row in await driver.fetch(_STORED_IDS, stream_id, ids)}
        if stored and len(stored) == len(ids):
            return
        if stored:
            raise DuplicateEventIdError(stream_id, [i for i in ids if i in stored])
        actual = await driver.fetchval(_LATEST_VERSION, stream_id)
        raise ConcurrencyError(
            stream_id, expected_version=expected_version, actual_version=int(actual or 0)
        )

    def _arguments(
        self, stream_id: str, documents: Sequence[dict[str, Any]], expected_version: int
    ) -> tuple[Any, ...]:
        json, moment = self._json, self._moment
        return (
            stream_id,
            expected_version,
            [document["version"] for document in documents],
            [UUID(document["event_id"]) for document in documents],
            [document["event_type"] for document in documents],
            [document["schema_version"] for document in documents],
            [document["aggregate_type"] for document in documents],
            [moment(datetime.fromisoformat(document["occurred_at"])) for document in documents],
            [document["correlation_id"] for document in documents],
            [document["causation_id"] for document in documents],
            [json(document["payload"]) for document in documents],
            [json(document["metadata"]) for document in documents],
        )

    async def take_out(self, driver: Any, positions: Sequence[int]) -> None:
        """Delete the rows at ``positions`` (inside the caller's transaction)."""
        await driver.execute(_DELETE, list(positions))
