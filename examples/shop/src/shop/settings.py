"""The shop's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///shop.sqlite"


@dataclass(frozen=True)
class Settings:
    """Where the shop keeps its data."""

    database_url: str = DEFAULT_DATABASE_URL

    @classmethod
    def from_environment(cls) -> Settings:
        """Read ``DATABASE_URL`` (a SQLite file in the working directory when unset)."""
        return cls(database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
