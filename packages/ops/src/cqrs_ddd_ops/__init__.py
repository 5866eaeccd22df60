"""Operator tools of cqrs-ddd: the ``cqrs-ddd`` command line.

It talks to the system's database only (``DATABASE_URL`` or
``--database-url``), so it works against a running system without stopping
it. See the package's README for every command.
"""

from __future__ import annotations

from cqrs_ddd_ops.database import OpsError, database_url_from

__all__ = ["OpsError", "database_url_from"]
