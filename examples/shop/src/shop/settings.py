"""The shop's settings, read once at start-up and checked before anything connects.

Besides the database, the environment says who may act from the shop's
operations page (``/ops``): ``SHOP_OPS_ACTIONS=1`` turns its actions on, and
they then need the token ``SHOP_OPS_TOKEN``; without them the page is
read-only.

The shop runs on SQLite through aiosqlite or on PostgreSQL through asyncpg,
the two drivers the persistence package ships. A URL that cannot work (not a
URL at all, another database, a synchronous driver, a SQLite file in a folder
that does not exist) raises :class:`SettingsError`, whose message is one line
naming the setting, what is wrong and what to write instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///shop.sqlite"
"""A SQLite file, ``shop.sqlite``, in the working directory."""

POSTGRES_EXAMPLE = "postgresql+asyncpg://user:password@host:5432/database"

ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
"""The databases the shop runs on, each with the async driver it uses."""

SCHEME_ALIASES = {"postgres": "postgresql", "sqlite3": "sqlite"}
"""Schemes other tools accept and SQLAlchemy does not, with the name it wants."""

USE_INSTEAD = f"use {DEFAULT_DATABASE_URL} or {POSTGRES_EXAMPLE}"


OPS_TOKEN_VARIABLE = "SHOP_OPS_TOKEN"  # noqa: S105 - the variable's name, not a secret
"""The token the operations page (``/ops``) asks for before an action."""

OPS_ACTIONS_VARIABLE = "SHOP_OPS_ACTIONS"
"""``1`` turns the operations page's actions on (they also need ``SHOP_OPS_TOKEN``)."""

MIN_OPS_TOKEN_LENGTH = 16
"""The shortest operations token accepted."""

_YES = ("1", "true", "yes", "on")
_NO = ("", "0", "false", "no", "off")


class SettingsError(ValueError):
    """A setting cannot work; the message is one line: which, what is wrong, what to use."""


@dataclass(frozen=True)
class Settings:
    """Where the shop keeps its data, and who may act from its operations page; checked when made.

    ``source`` names where the URL came from (``DATABASE_URL`` or
    ``--database-url``), so that messages about it point at what to change.
    The operations page (``/ops``) is read-only unless ``ops_actions`` is
    True, and then its actions need ``ops_token``.
    """

    database_url: str = DEFAULT_DATABASE_URL
    source: str = field(default="DATABASE_URL", compare=False)
    ops_token: str | None = field(default=None, repr=False)
    ops_actions: bool = False

    def __post_init__(self) -> None:
        check_database_url(self.database_url, source=self.source)
        check_ops_settings(self.ops_token, actions=self.ops_actions)

    @property
    def backend(self) -> str:
        """The database the URL names: ``sqlite`` or ``postgresql``."""
        return make_url(self.database_url).get_backend_name()

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, database_url: str | None = None
    ) -> Settings:
        """Read ``DATABASE_URL`` (``shop.sqlite`` when unset) unless ``database_url`` is given.

        ``database_url`` is the command line's ``--database-url``, which wins
        over the environment. ``SHOP_OPS_TOKEN`` and ``SHOP_OPS_ACTIONS`` set
        the operations page's token and actions. Raises :class:`SettingsError`
        for a URL or an operations setting that cannot work.
        """
        environment = os.environ if environ is None else environ
        token = environment.get(OPS_TOKEN_VARIABLE) or None
        actions = read_switch(environment.get(OPS_ACTIONS_VARIABLE), OPS_ACTIONS_VARIABLE)
        if database_url is not None:
            return cls(database_url, "--database-url", ops_token=token, ops_actions=actions)
        url = environment.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        return cls(database_url=url, ops_token=token, ops_actions=actions)


def check_database_url(value: str, *, source: str = "DATABASE_URL") -> URL:
    """Return ``value`` parsed, or raise :class:`SettingsError` saying what to use instead."""

    def refuse(problem: str) -> SettingsError:
        return SettingsError(f"{source} {without_password(value)!r} {problem}")

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise refuse(f"is not a database URL: {USE_INSTEAD}") from None
    scheme, _, driver = url.drivername.lower().partition("+")
    backend = SCHEME_ALIASES.get(scheme, scheme)
    if backend not in ASYNC_DRIVERS:
        raise refuse(f"names a database the shop does not run on ({scheme}): {USE_INSTEAD}")
    wanted = ASYNC_DRIVERS[backend]
    if driver != wanted:
        fixed = without_password(f"{backend}+{wanted}://{value.partition('://')[2]}")
        if scheme != backend:
            raise refuse(f"uses the scheme {scheme!r}, which SQLAlchemy does not know: use {fixed}")
        if not driver:
            raise refuse(f"has no async driver: use {fixed}")
        raise refuse(f"names the driver {driver!r}, which the shop does not use: use {fixed}")
    if backend == "sqlite":
        if (url.database or ":memory:") == ":memory:" or "mode=memory" in (url.database or ""):
            raise refuse(
                "is an in-memory SQLite database, one connection the shop's commands would share:"
                f" name a file, as in {DEFAULT_DATABASE_URL}"
            )
        folder = _sqlite_folder(url)
        if folder is not None and not folder.is_dir():
            raise refuse(
                f"names a file in the folder {str(folder)!r}, which does not exist:"
                " create the folder or name a file in an existing one"
            )
    return url


def read_switch(value: str | None, variable: str) -> bool:
    """Return the on/off setting ``value`` (``1``/``0``, ``true``/``false``, unset is off)."""
    text = (value or "").strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise SettingsError(f"{variable} {value!r} is neither on nor off: use 1 or 0")


def check_ops_settings(token: str | None, *, actions: bool) -> None:
    """Refuse actions without a token, and a token too short to be a secret."""
    if token is not None and len(token) < MIN_OPS_TOKEN_LENGTH:
        raise SettingsError(
            f"{OPS_TOKEN_VARIABLE} is {len(token)} characters long: use at least"
            f" {MIN_OPS_TOKEN_LENGTH} random ones (e.g. python -c"
            " 'import secrets; print(secrets.token_urlsafe())')"
        )
    if actions and token is None:
        raise SettingsError(
            f"{OPS_ACTIONS_VARIABLE}=1 turns the operations page's actions on, and they need"
            f" a token: set {OPS_TOKEN_VARIABLE} too"
        )


def without_password(value: str) -> str:
    """Return the URL ``value`` with its password, if any, replaced by ``***``."""
    return re.sub(r"^([A-Za-z0-9+.-]+://[^:/@]*:)[^/]*@", r"\1***@", value)


def _sqlite_folder(url: URL) -> Path | None:
    """Return the folder of a SQLite file URL; None for memory and ``file:`` URIs."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or url.query:
        return None
    return Path(database).parent
