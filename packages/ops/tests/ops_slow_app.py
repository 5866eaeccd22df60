"""An ``--app`` for the tests: the shop's projections, one event per transaction.

A rebuild through it takes long enough for writers to append while it runs.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionWorker
from shop.wiring import projection_worker


def one_event_at_a_time(engine: AsyncEngine) -> ProjectionWorker:
    """Return the shop's projection worker with batches of one event."""
    shops = projection_worker(engine)
    worker = ProjectionWorker(shops.projector_registry, shops.event_store, batch_size=1)
    worker.decoder = shops.decoder  # the shop's upcasters
    return worker
