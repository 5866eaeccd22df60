"""``--profile``: where our time goes, per workload, as cProfile's top functions.

Only the event loop's thread is profiled; on SQLite the driver's own work
runs on aiosqlite's thread and shows up here as time waiting for it.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Awaitable, Callable

from benchmarks.databases import fresh_postgres, fresh_sqlite
from benchmarks.ours import OurBank
from benchmarks.plan import Plan
from benchmarks.timing import Sample

TOP = 25


async def profile_ours(plan: Plan, backend: str) -> None:
    """Profile each of our workloads once on ``backend`` and print the top costs."""
    if backend == "sqlite":
        async with fresh_sqlite() as target:
            await _profile_all(await OurBank.build(target.sqlalchemy_url), plan)
    else:
        async with fresh_postgres() as target:
            await _profile_all(await OurBank.build(target.sqlalchemy_url), plan)


async def _profile_all(bank: OurBank, plan: Plan) -> None:
    try:
        ids = [await bank.open_account() for _ in range(plan.update_aggregates)]
        start = await bank.current_position()
        await bank.batch_creates(plan.read_events // plan.batch_size, plan.batch_size)
        long_id = await bank.build_stream(plan.stream_lengths[-1], plan.batch_size)
        await _profiled("(a) creates", lambda: bank.creates(plan.creates))
        await _profiled("(b) updates", lambda: bank.updates(ids, plan.updates))
        await _profiled("batch create", lambda: bank.batch_creates(2, plan.batch_size))
        await _profiled("(c) load", lambda: bank.loads(long_id, 1))
        await _profiled(
            "(d) read, decoded",
            lambda: bank.global_read(start, plan.read_events, plan.page_size, decode=True),
        )
    finally:
        await bank.close()


async def _profiled(title: str, workload: Callable[[], Awaitable[Sample]]) -> None:
    await workload()  # warm-up: statement caches, imports
    profiler = cProfile.Profile()
    profiler.enable()
    sample = await workload()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(TOP)
    print(f"\n===== {title}: {sample.units} units in {sample.seconds:.3f} s (profiled) =====")
    print(out.getvalue())
