"""The database's clock as a SQL expression, in Unix seconds, on SQLite and PostgreSQL.

Leases, due times and "unchanged since" are judged by the database, never by a
worker's clock: every store that decides about time builds its statements
with :func:`database_clock`.
"""

from __future__ import annotations

from sqlalchemy import Float, cast, extract, func
from sqlalchemy.sql.elements import ColumnElement


def database_clock(is_postgresql: bool, *, stable: bool = False) -> ColumnElement[float]:
    """Return the database's time in Unix seconds.

    PostgreSQL: ``clock_timestamp()``, the time right now; with ``stable``,
    ``now()`` (the transaction's start), which the planner can use in an index
    condition. SQLite: ``julianday('now')``, fixed for one statement, either way.
    """
    if is_postgresql:
        return cast(extract("epoch", func.now() if stable else func.clock_timestamp()), Float)
    return (func.julianday("now") - 2440587.5) * 86400.0
