"""``QueryOptions``: what to select from a read model, in which order, and which page."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from cqrs_ddd_core.domain.specification import Specification, resolve_field
from cqrs_ddd_core.exceptions import FieldIssue, ValidationError

Row = TypeVar("Row")


@dataclass(frozen=True)
class Ordering:
    """Sorts rows by one field; ``None`` comes first ascending and last descending."""

    field: str
    descending: bool = False


@dataclass(frozen=True)
class QueryOptions:
    """An immutable query: an optional specification, orderings and a page.

    Each ``with_…`` method returns new options. Orderings apply in the order
    given (the first is the primary sort key); ties keep the rows' original
    order in memory, so give a total ordering (end with a unique field) when
    the same page must come back from every store. :meth:`apply` runs the query
    in memory; read-model stores translate the same options to their query
    language and return the same rows.
    """

    specification: Specification[Any] | None = None
    orderings: tuple[Ordering, ...] = ()
    limit: int | None = None
    offset: int = 0

    def with_specification(self, specification: Specification[Any]) -> QueryOptions:
        """Return options that select only the rows meeting ``specification``."""
        return replace(self, specification=specification)

    def with_ordering(self, field: str, *, desc: bool = False) -> QueryOptions:
        """Return options that also sort by ``field`` (after the orderings already given)."""
        if not field or not isinstance(field, str):
            raise ValidationError("query options", [FieldIssue("ordering", "needs a field name")])
        return replace(self, orderings=(*self.orderings, Ordering(field, descending=desc)))

    def with_pagination(self, *, limit: int | None = None, offset: int = 0) -> QueryOptions:
        """Return options that skip ``offset`` rows and keep at most ``limit`` of the rest.

        Raises :class:`~cqrs_ddd_core.exceptions.ValidationError` for a negative
        limit or offset.
        """
        issues = []
        if limit is not None and limit < 0:
            issues.append(FieldIssue("limit", f"must not be negative, got {limit}"))
        if offset < 0:
            issues.append(FieldIssue("offset", f"must not be negative, got {offset}"))
        if issues:
            raise ValidationError("query options", issues)
        return replace(self, limit=limit, offset=offset)

    def apply(self, rows: Iterable[Row]) -> list[Row]:
        """Return the page of ``rows`` (mappings or objects) these options select.

        Filters, then sorts (stably), then skips ``offset`` and keeps ``limit``.
        Values of one ordering field must be comparable with each other.
        """
        selected = list(rows)
        if self.specification is not None:
            selected = self.specification.filter(selected)
        for ordering in reversed(self.orderings):
            selected.sort(key=_sort_key(ordering.field), reverse=ordering.descending)
        end = None if self.limit is None else self.offset + self.limit
        return selected[self.offset : end]


def _sort_key(field: str) -> Any:
    def key(row: Any) -> tuple[bool, Any]:
        value = resolve_field(row, field)
        # None sorts before every value: first ascending, last descending
        return (value is not None, value)

    return key
