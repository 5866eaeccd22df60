"""A throwaway PostgreSQL database per test: created from `template0`, dropped with FORCE.

`create_database` connects to the admin URL (any database the user may connect to,
`postgres` by default), runs `CREATE DATABASE` under a fresh unique name and closes
the connection again; `drop_database` drops it even while clients are still
connected. Creating one takes tens to a few hundred milliseconds (the disk's fsync
bounds it), cheap enough for every test.
`template0` is the template because it is pristine and accepts no connections, so
concurrent creations (pytest-xdist workers, say) never collide on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from cqrs_ddd_testing.naming import NAME_PREFIX, unique_name

__all__ = ["PostgresDatabase", "create_database", "drop_database"]


@dataclass(frozen=True, slots=True)
class PostgresDatabase:
    """A database that exists for one test.

    `dsn` is a plain `postgresql://` URL for asyncpg or libpq; `sqlalchemy_url` is
    the same database for SQLAlchemy's asyncpg dialect.
    """

    name: str
    dsn: str

    @property
    def sqlalchemy_url(self) -> str:
        """Return the database's URL with the `postgresql+asyncpg` scheme."""
        return urlunsplit(urlsplit(self.dsn)._replace(scheme="postgresql+asyncpg"))


async def create_database(admin_url: str, *, connect_timeout: float = 10.0) -> PostgresDatabase:
    """Create an empty database with a unique name on the server behind `admin_url`.

    `admin_url` may use the `postgresql`, `postgres` or `postgresql+asyncpg` scheme;
    its user needs the CREATEDB privilege. Driver errors propagate unchanged.
    """
    name = unique_name()
    connection = await asyncpg.connect(_plain_url(admin_url), timeout=connect_timeout)
    try:
        await connection.execute(f"CREATE DATABASE {_quote(name)} TEMPLATE template0")
    finally:
        await connection.close()
    dsn = urlunsplit(urlsplit(_plain_url(admin_url))._replace(path=f"/{name}"))
    return PostgresDatabase(name=name, dsn=dsn)


async def drop_database(admin_url: str, name: str, *, connect_timeout: float = 10.0) -> None:
    """Drop the database `name`, disconnecting its clients; a missing one is fine.

    Only names made by `create_database` are accepted: any other name raises
    `ValueError`, so a mistake can never drop a real database.
    """
    if not name.startswith(NAME_PREFIX):
        msg = f"refusing to drop database {name!r}: it was not made by create_database"
        raise ValueError(msg)
    connection = await asyncpg.connect(_plain_url(admin_url), timeout=connect_timeout)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
    finally:
        await connection.close()


def _plain_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def _quote(identifier: str) -> str:
    escaped = identifier.replace('"', '""')
    return f'"{escaped}"'
