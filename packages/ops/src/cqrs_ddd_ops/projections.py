"""Projections: their progress, their dead letters, and rebuilding or replaying them.

Reading needs the database only. Rebuilding a projection and replaying its
dead letters apply events through the application's own projectors, so these
two load them: ``--app module:function`` (or ``CQRS_DDD_APP``) names a
function that takes an ``AsyncEngine`` and returns the application's
``ProjectionWorker`` (``shop.wiring:projection_worker`` for the shop). The
worker is only used in the tool's process, under a lease of its own: a
projection whose lease another worker holds is refused, nothing changed.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cqrs_ddd_advanced_core.projections import ProjectionWorker, ReplayResult
from cqrs_ddd_advanced_core.workers import DeadLetter
from cqrs_ddd_ops.database import EXIT_USAGE, OpsError
from cqrs_ddd_ops.status import WorkerRow, database_now, worker_rows
from cqrs_ddd_persistence_sqlalchemy import SQLAlchemyWorkerStorage
from cqrs_ddd_persistence_sqlalchemy.schema import projections as jobs

ProjectionsFactory = Callable[[AsyncEngine], ProjectionWorker]
"""What ``--app`` names: the application's projection worker, built on an engine."""

Progress = Callable[[int, int], None]
"""Told (checkpoint, target) as a rebuild goes on."""


def load_factory(spec: str | None) -> ProjectionsFactory:
    """Return the function ``spec`` (``module:function``) names; a usage error otherwise."""
    if not spec:
        raise OpsError(
            "rebuilding or replaying applies the application's projectors: pass --app"
            " module:function (or set CQRS_DDD_APP), e.g. shop.wiring:projection_worker",
            EXIT_USAGE,
        )
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise OpsError(f"--app {spec!r} is not module:function", EXIT_USAGE)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        message = f"--app {spec!r}: cannot import {module_name}: {error}"
        raise OpsError(message, EXIT_USAGE) from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise OpsError(f"--app {spec!r}: {module_name} has no function {attribute}", EXIT_USAGE)
    return _checked(factory, spec)


def _checked(factory: Callable[..., Any], spec: str) -> ProjectionsFactory:
    def build(engine: AsyncEngine) -> ProjectionWorker:
        try:
            worker = factory(engine)
        except Exception as error:  # noqa: BLE001 - the application's code: said in one line
            raise OpsError(
                f"--app {spec!r} failed: {type(error).__name__}: {error}", EXIT_USAGE
            ) from None
        if not isinstance(worker, ProjectionWorker):
            raise OpsError(
                f"--app {spec!r} returned {type(worker).__name__}, not a ProjectionWorker",
                EXIT_USAGE,
            )
        return worker

    return build


async def list_projections(engine: AsyncEngine) -> list[WorkerRow]:
    """Return every projection the database knows (those that ever ran), by name."""
    return [row for row in await worker_rows(engine) if row.kind == "projection"]


async def projection(engine: AsyncEngine, name: str) -> WorkerRow:
    """Return one projection's status; ``OpsError`` naming the known ones when it is unknown."""
    known = await list_projections(engine)
    for row in known:
        if row.name == name:
            return row
    names = ", ".join(row.name for row in known) or "none ran yet"
    raise OpsError(f"no projection {name!r} (known: {names})")


async def dead_letters(engine: AsyncEngine, name: str) -> list[DeadLetter]:
    """Return the dead letters of projection ``name``, in position order."""
    async with engine.connect() as connection:
        kinds = dict((await connection.execute(select(jobs.c.name, jobs.c.kind))).all())
    if kinds.get(name) != "projection":
        known = sorted(job for job, kind in kinds.items() if kind == "projection")
        raise OpsError(f"no projection {name!r} (known: {', '.join(known) or 'none ran yet'})")
    return await SQLAlchemyWorkerStorage(engine).letters.dead_letters(name)


async def ensure_free(engine: AsyncEngine, worker: ProjectionWorker, name: str) -> None:
    """Refuse (``OpsError``) a projection the application does not have, or another holds."""
    names = [entry.name for entry in worker.projector_registry]
    if name not in names:
        raise OpsError(f"the application has no projection {name!r} (it has: {', '.join(names)})")
    record = await worker.storage.checkpoints.record(name)
    left = (record.lease_expires_at or 0.0) - await database_now(engine)
    if record.owner is not None and record.owner != worker.worker_id and left > 0:
        raise OpsError(
            f"projection {name!r} is held by worker {record.owner} for"
            f" {left:.0f} s more: stop that worker (its /ops page replays dead letters"
            " through it); nothing was changed"
        )


async def rebuild(
    engine: AsyncEngine,
    worker: ProjectionWorker,
    name: str,
    *,
    resume: bool = False,
    progress: Progress | None = None,
) -> WorkerRow:
    """Rebuild projection ``name`` from the first event (``resume``: from its checkpoint).

    Empties the read model and applies every event until it has caught up
    with the log, events appended meanwhile included. ``progress`` is told
    the checkpoint against the head seen at the start. Interrupted, it gives
    the lease back and leaves the checkpoint where it got: ``resume`` goes on
    from there instead of starting over.
    """
    await ensure_free(engine, worker, name)
    target = await worker.event_store.current_position()
    before = await worker.storage.checkpoints.record(name)
    if progress is not None:
        progress(before.position if resume else 0, target)
    work: Awaitable[Any] = worker.catch_up(name) if resume else worker.rebuild(name)
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            if progress is not None:
                record = await worker.storage.checkpoints.record(name)
                if resume or record.epoch != before.epoch:  # a rebuild: once reset
                    progress(min(record.position, target), target)
        task.result()
    finally:
        if not task.done():  # interrupted (Ctrl-C): let it give its lease back
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    row = await projection(engine, name)
    if row.position < target:
        raise OpsError(
            f"projection {name!r} stopped at {row.position} of {target}: another worker"
            f" ({row.owner or 'none now'}) took it over; run again with --resume"
        )
    if progress is not None:
        progress(target, target)
    return row


async def replay(engine: AsyncEngine, worker: ProjectionWorker, name: str) -> ReplayResult:
    """Apply the dead letters of ``name`` again (each that applies is deleted)."""
    await ensure_free(engine, worker, name)
    return await worker.replay_dead_letters(name)
