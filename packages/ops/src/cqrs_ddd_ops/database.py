"""Which database the tools talk to, and the one-line errors they end with."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cqrs_ddd_persistence_sqlalchemy.exceptions import (
    DatabaseUnavailableError,
    PersistenceError,
    SchemaNotReadyError,
)

EXIT_FAILED = 1
"""The operation failed: nothing answered, or what was asked for does not exist."""
EXIT_USAGE = 2
"""Bad usage or a bad setting: nothing was done."""

DRIVERS = {"postgresql": "asyncpg", "postgres": "asyncpg", "sqlite": "aiosqlite"}
"""The databases the tools read, with the async driver each needs."""

EXAMPLES = "postgresql://user@host/database or sqlite:///path/to/file.sqlite"


class OpsError(Exception):
    """What a command could not do, in one line, with the exit status it ends with."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        self.status = status
        super().__init__(" ".join(message.split()))


def database_url_from(
    option: str | None, environ: Mapping[str, str] | None = None, *, create: bool = False
) -> str:
    """Return the async SQLAlchemy URL of ``--database-url``, else of ``DATABASE_URL``.

    ``postgresql://`` and ``sqlite:///`` get their async drivers (asyncpg,
    aiosqlite), and libpq's ``sslmode`` becomes asyncpg's ``ssl``. A SQLite
    file must exist unless ``create`` (reading never makes an empty file).
    Raises :class:`OpsError` for a missing or unusable URL (exit status 2) or
    a SQLite file that does not exist (1).
    """
    environment = os.environ if environ is None else environ
    source = "--database-url" if option else "DATABASE_URL"
    value = option or environment.get("DATABASE_URL")
    if not value:
        raise OpsError(f"no database: set DATABASE_URL or pass --database-url ({EXAMPLES})", 2)
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)
        raise OpsError(f"{source} {shown!r} is not a database URL: use {EXAMPLES}", 2) from None
    scheme, _, driver = url.drivername.partition("+")
    wanted = DRIVERS.get(scheme)
    if wanted is None:
        raise OpsError(
            f"{source} names a database the tools do not read ({scheme}): use {EXAMPLES}", 2
        )
    if driver and driver != wanted:
        raise OpsError(f"{source} names the driver {driver!r}; use {scheme}+{wanted}", 2)
    backend = "postgresql" if scheme == "postgres" else scheme
    url = url.set(drivername=f"{backend}+{wanted}")
    if "sslmode" in url.query:  # libpq's spelling; asyncpg calls it ssl
        query = {key: value for key, value in url.query.items() if key != "sslmode"}
        url = url.set(query={**query, "ssl": url.query["sslmode"]})
    missing = backend == "sqlite" and not Path(url.database or ":memory:").exists()
    if missing and not create and url.database != ":memory:":
        raise OpsError(f"{source} names no SQLite file: {url.database} does not exist")
    return url.render_as_string(hide_password=False)


def describe(error: PersistenceError, url: str) -> OpsError:
    """Return the one-line error of a database that failed (exit status 1)."""
    shown = make_url(url).render_as_string(hide_password=True)
    if isinstance(error, DatabaseUnavailableError):
        return OpsError(f"cannot reach the database {shown}: {error.detail}")
    if isinstance(error, SchemaNotReadyError):
        return OpsError(
            f"the database {shown} has no cqrs-ddd schema (or an older one):"
            " run cqrs-ddd migrate upgrade"
        )
    return OpsError(f"the database {shown} refused: {error}")
