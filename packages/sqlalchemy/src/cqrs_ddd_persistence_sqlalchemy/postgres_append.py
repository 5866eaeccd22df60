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

from sqlalchemy.engine import Dialect

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

_DELETE = "DELETE FROM cqrs_events WHERE position = ANY($1::bigint[])"


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
        json, moment = self._json, self._moment
        rows = await driver.fetch(
            _APPEND,
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
        return {version: position for position, version in rows}

    async def take_out(self, driver: Any, positions: Sequence[int]) -> None:
        """Delete the rows at ``positions`` (inside the caller's transaction)."""
        await driver.execute(_DELETE, list(positions))
