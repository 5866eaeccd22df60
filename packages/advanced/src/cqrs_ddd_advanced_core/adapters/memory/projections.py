"""In-memory read models, rolled back with the worker transaction that wrote them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cqrs_ddd_advanced_core.adapters.memory.workers import InMemoryProjectionTransaction
from cqrs_ddd_advanced_core.projections.query import QueryOptions
from cqrs_ddd_core.domain.specification import Specification


class InMemoryReadModelStore:
    """A read model kept in memory: rows as dictionaries, keyed by ``key`` field.

    Writes take the batch's ``connection`` (an :class:`InMemoryProjectionTransaction`)
    so that they roll back with it; pass ``None`` to write outside a projection.
    Queries run :class:`QueryOptions` in memory, with the same results as the SQL store.
    """

    def __init__(self, key: str = "id") -> None:
        self.key = key
        self._rows: dict[Any, dict[str, Any]] = {}

    async def get(self, connection: Any, key: Any) -> dict[str, Any] | None:
        """Return a copy of the row with ``key``, or None."""
        row = self._rows.get(key)
        return None if row is None else dict(row)

    async def upsert(self, connection: Any, row: Mapping[str, Any]) -> None:
        """Insert ``row``, or replace the row with its key."""
        if self.key not in row:
            raise KeyError(f"the row has no {self.key!r} (the read model's key)")
        key = row[self.key]
        self._remember(connection, key)
        self._rows[key] = dict(row)

    async def update(self, connection: Any, key: Any, changes: Mapping[str, Any]) -> bool:
        """Change fields of the row with ``key``; False when there is none."""
        if key not in self._rows:
            return False
        self._remember(connection, key)
        self._rows[key] = {**self._rows[key], **changes}
        return True

    async def delete(self, connection: Any, key: Any) -> bool:
        """Delete the row with ``key``; False when there was none."""
        if key not in self._rows:
            return False
        self._remember(connection, key)
        del self._rows[key]
        return True

    async def clear(self, connection: Any) -> None:
        """Delete every row."""
        before = dict(self._rows)
        if isinstance(connection, InMemoryProjectionTransaction):
            connection.on_rollback(lambda: self._restore(before))
        self._rows.clear()

    async def query(self, options: QueryOptions) -> list[dict[str, Any]]:
        """Return copies of the rows ``options`` select, ordered and paged."""
        return [dict(row) for row in options.apply(self._rows.values())]

    async def count(self, specification: Specification[Any] | None = None) -> int:
        """Return how many rows meet ``specification`` (all rows without one)."""
        if specification is None:
            return len(self._rows)
        return len(specification.filter(list(self._rows.values())))

    def rows(self) -> list[dict[str, Any]]:
        """Return copies of every row, in key order where keys compare."""
        try:
            keys = sorted(self._rows)
        except TypeError:
            keys = list(self._rows)
        return [dict(self._rows[key]) for key in keys]

    def _remember(self, connection: Any, key: Any) -> None:
        if not isinstance(connection, InMemoryProjectionTransaction):
            return
        previous = self._rows.get(key)

        def undo() -> None:
            if previous is None:
                self._rows.pop(key, None)
            else:
                self._rows[key] = previous

        connection.on_rollback(undo)

    def _restore(self, rows: dict[Any, dict[str, Any]]) -> None:
        self._rows = rows
