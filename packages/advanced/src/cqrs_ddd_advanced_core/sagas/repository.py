"""The saga repository port: where saga instances are kept between events.

A :class:`SagaRepository` stores each instance's :class:`~.orchestration.SagaState`
under its id and under ``(saga type, correlation key)``, which is unique: two
starting events for one key create one instance, whichever commits first.
Saves are checked against the version the state was loaded at, so two events
for one instance are applied one after the other, never one over the other
(the loser gets ``ConcurrencyError`` and the manager applies its event again on
the fresh state). Writes join the repository's own unit of work
(:meth:`SagaRepository.unit_of_work`), so a saga's state and the commands it
decided are stored together.

``InMemorySagaRepository`` (``cqrs_ddd_advanced_core.adapters.memory``) and
``SQLAlchemySagaRepository`` (``cqrs_ddd_persistence_sqlalchemy``) implement it.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from cqrs_ddd_advanced_core.sagas.orchestration import SagaState
from cqrs_ddd_core.ports.unit_of_work import UnitOfWork


class SagaRepository(Protocol):
    """Keeps saga instances, one per (saga type, correlation key), with version checks."""

    def unit_of_work(self) -> UnitOfWork:
        """Return a fresh unit of work that this repository's writes join."""
        ...

    async def find(self, saga_type: str, correlation_key: str) -> SagaState | None:
        """Return the instance of ``saga_type`` named ``correlation_key``, or None."""
        ...

    async def get(self, saga_id: UUID) -> SagaState | None:
        """Return the instance with id ``saga_id``, or None."""
        ...

    async def add(self, state: SagaState) -> bool:
        """Store a new instance (version 1); False when its type and key are taken already."""
        ...

    async def save(self, state: SagaState) -> None:
        """Store ``state`` as the next version of its instance.

        ``state.version`` is the version it was loaded at; ``ConcurrencyError``
        when the stored one moved on since.
        """
        ...

    async def stalled(self, older_than: float, *, limit: int = 100) -> list[SagaState]:
        """Claim up to ``limit`` instances in flight and unchanged for ``older_than`` seconds.

        In flight: ``SagaState.in_flight`` (a step's outcome, a compensation
        or a confirmation outstanding). Claiming marks each as changed now
        (not its version), so another recovery worker passes it by for
        ``older_than`` seconds: several recovery workers share the work. An
        instance whose state no longer reads back is parked, not returned.
        """
        ...

    def register_state_type(self, saga_type: str, state_type: type[SagaState]) -> None:
        """Read the instances of ``saga_type`` as ``state_type`` (a ``SagaState`` subclass)."""
        ...

    async def park(self, saga_id: UUID, reason: str) -> None:
        """Mark the instance ``saga_id`` parked without reading its state (``reason`` says why)."""
        ...
