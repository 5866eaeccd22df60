"""The append on SQLite: version check and insert in one statement on the driver.

Sent on the aiosqlite connection of the command's transaction, which
``BEGIN IMMEDIATE`` has already made the only writer of the file: the
version the statement reads is the stream's latest, and nothing can append
between the check and the insert. One statement is one hand-off to
aiosqlite's thread, where reading the version and inserting through
SQLAlchemy took several (and SQLAlchemy cannot batch ``INSERT ... RETURNING``
on SQLite). The rows go in as one multi-row ``VALUES`` list, up to
:data:`ROWS_PER_STATEMENT` per statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Dialect

from cqrs_ddd_persistence_sqlalchemy.driver_reads import bind_processor_of
from cqrs_ddd_persistence_sqlalchemy.schema import events

ROWS_PER_STATEMENT = 500
"""Rows per statement: 10 values each, far below SQLite's limit of 32,766 variables."""

_ROW = "(" + ", ".join("?" * 10) + ")"


def _statement(rows: int) -> str:
    values = ", ".join([_ROW] * rows)  # placeholders only: the values are bound
    return (
        "INSERT INTO cqrs_events (stream_id, version, event_id, event_type, schema_version, "  # noqa: S608
        "aggregate_type, occurred_at, correlation_id, causation_id, payload, metadata) "
        "SELECT ?, column1, column2, column3, column4, column5, column6, column7, column8, "
        f"column9, column10 FROM (VALUES {values}) "
        "WHERE (SELECT coalesce(max(version), 0) FROM cqrs_events WHERE stream_id = ?) = ? "
        "ON CONFLICT DO NOTHING RETURNING position, version"
    )


class SQLiteAppend:
    """The append statements for one engine's dialect, made once per number of rows."""

    def __init__(self, dialect: Dialect) -> None:
        self._uuid = bind_processor_of(events.c.event_id.type, dialect)
        self._moment = bind_processor_of(events.c.occurred_at.type, dialect)
        self._json = bind_processor_of(events.c.payload.type, dialect)
        self._statements: dict[int, str] = {}

    async def insert(
        self,
        driver: Any,
        stream_id: str,
        documents: Sequence[dict[str, Any]],
        expected_version: int,
    ) -> dict[int, int]:
        """Insert the documents if the stream is at ``expected_version``: {version: position}.

        Fewer entries than documents mean the stream was not where expected
        (nothing went in) or some event ids were stored already (the others
        may have gone in).
        """
        positions: dict[int, int] = {}
        for start in range(0, len(documents), ROWS_PER_STATEMENT):
            chunk = documents[start : start + ROWS_PER_STATEMENT]
            arguments: list[Any] = [stream_id]
            for document in chunk:
                arguments += self._values(document)
            arguments += [stream_id, expected_version + start]
            statement = self._statements.get(len(chunk))
            if statement is None:
                statement = self._statements[len(chunk)] = _statement(len(chunk))
            rows = await driver.execute_fetchall(statement, arguments)
            positions.update((version, position) for position, version in rows)
            if len(positions) != start + len(chunk):
                break
        return positions

    async def take_out(self, driver: Any, positions: Sequence[int]) -> None:
        """Delete the rows at ``positions`` (inside the caller's transaction)."""
        marks = ", ".join("?" * len(positions))
        await driver.execute(f"DELETE FROM cqrs_events WHERE position IN ({marks})", positions)  # noqa: S608

    def _values(self, document: dict[str, Any]) -> tuple[Any, ...]:
        return (
            document["version"],
            self._uuid(UUID(document["event_id"])),
            document["event_type"],
            document["schema_version"],
            document["aggregate_type"],
            self._moment(datetime.fromisoformat(document["occurred_at"])),
            document["correlation_id"],
            document["causation_id"],
            self._json(document["payload"]),
            self._json(document["metadata"]),
        )
