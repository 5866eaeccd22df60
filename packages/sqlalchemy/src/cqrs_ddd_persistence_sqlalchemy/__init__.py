"""cqrs-ddd on SQLAlchemy: event store, repositories and outbox on SQLite and PostgreSQL.

The package is being built issue by issue; its public API grows here as each
capability lands (see the package README for what is available today).
"""

from __future__ import annotations

__all__: list[str] = []
