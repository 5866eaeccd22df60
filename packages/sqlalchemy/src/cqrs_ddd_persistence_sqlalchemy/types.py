"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
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
        """Return the dialect's JSON reader, short-cutting the text ``{}`` to a new empty dict.

        Where the dialect reads JSON as text with the standard ``json``
        module (SQLite and asyncpg, unless the engine was given a
        ``json_deserializer``), the text is parsed straight by the ``json``
        module's decoder, without SQLAlchemy's layers around it.
        """
        parse = self.impl_instance.result_processor(dialect, coltype)
        if parse is None:
            return None
        if getattr(dialect, "_json_deserializer", None) in (None, json.loads, parse_json_text) and (
            dialect.name in ("sqlite", "postgresql")
        ):
            parse = parse_json_text

        def process(value: Any) -> Any:
            if value == "{}":
                return {}
            try:
                return parse(value)
            except ValueError as error:
                return UnreadableJSON(str(value), str(error))

        return process


_DECODER = json.JSONDecoder()


def parse_json_text(value: Any) -> Any:
    """Parse stored JSON text as ``json.loads`` does, only faster for what the stores write.

    The text ``{}`` (most event metadata) becomes a new empty dict without
    parsing, and stored documents, which have no whitespace around them,
    skip ``json.loads``'s scans for it; anything else (leading or trailing
    text, bytes) goes to ``json.loads``, which accepts or refuses it exactly
    as before. ``create_engine`` makes it the engine's ``json_deserializer``.
    """
    if value == "{}":
        return {}
    if value is None:
        return None  # SQL NULL, as SQLAlchemy's reader gives it
    try:
        document, end = _DECODER.raw_decode(value)
    except (TypeError, ValueError):
        return json.loads(value)
    if end != len(value):
        return json.loads(value)
    return document


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

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """Return a reader that makes the aware UTC datetime in one step where it can.

        On SQLite the stored ISO text goes to ``datetime.fromisoformat``
        (text it does not take goes the general way); on PostgreSQL a value
        the driver already gives in UTC is taken as it is.
        """
        general = super().result_processor(dialect, coltype)
        if dialect.name == "sqlite" and general is not None:
            from_text = datetime.fromisoformat

            def from_sqlite(value: Any) -> Any:
                if value is None:
                    return None
                try:
                    moment = from_text(value)
                except (TypeError, ValueError):
                    return general(value)
                if moment.tzinfo is None:
                    return moment.replace(tzinfo=UTC)
                return moment.astimezone(UTC)

            return from_sqlite
        if dialect.name == "postgresql" and general is not None:

            def from_postgresql(value: Any) -> Any:
                if isinstance(value, datetime) and value.tzinfo is UTC:
                    return value
                return general(value)

            return from_postgresql
        return general
