"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from cqrs_ddd_core.serialization import UnreadableJSON


class _JSONText(TypeDecorator[Any]):
    """``JSON``, read back without parsing the empty object ``{}`` (most event metadata).

    Text that does not parse (a row damaged by hand; SQLite's TEXT holds
    anything) is read as :class:`~cqrs_ddd_core.serialization.UnreadableJSON`
    rather than failing the whole read: the reader of that one row reports it.
    """

    impl = JSON
    cache_ok = True
    hashable = False

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """Return the dialect's JSON reader, short-cutting the text ``{}`` to a new empty dict."""
        parse = self.impl_instance.result_processor(dialect, coltype)
        if parse is None:
            return None

        def process(value: Any) -> Any:
            if value == "{}":
                return {}
            try:
                return parse(value)
            except ValueError as error:
                return UnreadableJSON(str(value), str(error))

        return process


JSONDocument = _JSONText()
"""JSON stored as its text on both databases (``json`` on PostgreSQL, TEXT on SQLite).

Not ``jsonb``: jsonb re-normalises numbers (``1e16`` comes back as an integer,
``-0.0`` as ``0.0``), so the same event would read back differently on the two
databases; the event store never queries inside payloads.
"""


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime: ``timestamptz`` on PostgreSQL, ISO text on SQLite.

    Values are normalised to UTC on the way in and always come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Store the value in UTC (naive on SQLite, which has no zones)."""
        if value is None:
            return None
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return the stored value as an aware UTC datetime."""
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
