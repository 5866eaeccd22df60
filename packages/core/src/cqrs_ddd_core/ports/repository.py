"""The repository port: loads and saves aggregates of one type."""

from __future__ import annotations

from typing import Protocol, TypeVar

from cqrs_ddd_core.domain.aggregate import AggregateRoot

TAggregate = TypeVar("TAggregate", bound=AggregateRoot)


class Repository(Protocol[TAggregate]):
    """Loads and saves aggregates of one type inside the ambient unit of work.

    ``save`` checks optimistic concurrency: the stored version must still be the
    aggregate's :attr:`~cqrs_ddd_core.domain.AggregateRoot.persisted_version`,
    otherwise :class:`~cqrs_ddd_core.exceptions.ConcurrencyError` is raised (at
    the latest when the unit of work commits) and nothing is stored.
    """

    async def get(self, aggregate_id: str) -> TAggregate:
        """Return the aggregate, or raise ``AggregateNotFoundError``."""
        ...

    async def find(self, aggregate_id: str) -> TAggregate | None:
        """Return the aggregate, or None when there is none with that id."""
        ...

    async def save(self, aggregate: TAggregate) -> None:
        """Stage the aggregate's state and new events in the ambient unit of work."""
        ...
