"""``InMemoryInbox``: a consumer's handled message ids in memory, staged in the unit of work."""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from cqrs_ddd_core.adapters.memory.unit_of_work import InMemoryUnitOfWork
from cqrs_ddd_core.cqrs.scope import current_scope_or_none
from cqrs_ddd_core.exceptions import UnitOfWorkError


class InMemoryInbox:
    """Claims of (consumer, message id), applied when the handler's unit of work commits."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._claims: dict[tuple[str, UUID], float] = {}
        self._taken: set[tuple[str, UUID]] = set()

    async def claim(self, consumer: str, message_id: UUID) -> bool:
        """Claim ``message_id`` for ``consumer`` in the handler's ``InMemoryUnitOfWork``."""
        key = (consumer, message_id)
        if key in self._claims or key in self._taken:
            return False
        scope = current_scope_or_none()
        if scope is None or not isinstance(scope.uow, InMemoryUnitOfWork):
            raise UnitOfWorkError(
                "an inbox claim must be made inside the handler's InMemoryUnitOfWork"
            )
        self._taken.add(key)

        def apply() -> None:
            self._taken.discard(key)
            self._claims[key] = self.clock()

        def release() -> None:
            self._taken.discard(key)

        scope.uow.stage(("inbox", key), check=lambda: None, apply=apply, discard=release)
        return True

    async def purge(self, *, older_than: float) -> int:
        """Forget the claims older than ``older_than`` seconds; return how many."""
        limit = self.clock() - older_than
        old = [key for key, at in self._claims.items() if at < limit]
        for key in old:
            del self._claims[key]
        return len(old)
