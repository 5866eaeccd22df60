"""How much work each workload does: the full run and the ``--quick`` smoke run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run; every figure is the median of ``repeats`` samples."""

    repeats: int
    creates: int
    """(a) commands per sample, each creating an aggregate with one event."""
    updates: int
    """(b) commands per sample, each loading, changing and saving an aggregate."""
    update_aggregates: int
    """(b) how many existing aggregates the updates go round."""
    stream_lengths: tuple[int, ...]
    """(c) events in the aggregates loaded whole."""
    loads: dict[int, int]
    """(c) loads per sample, by stream length."""
    batch_size: int
    """Events appended by one command while filling the store for (d)."""
    read_events: int
    """(d) events read in global order per sample."""
    page_size: int
    """(d) events per page of the global read, on every side."""
    writers: tuple[int, ...]
    """(e) numbers of concurrent writers on PostgreSQL."""
    writes_per_writer: int
    """(e) commands per writer per sample."""
    writer_processes: bool
    """(e) also run the writers as separate processes (slow to start: full run only)."""
    snapshot_lengths: tuple[int, ...]
    """(f) events in the aggregates loaded with and without a snapshot (built once each)."""
    snapshot_batch: int
    """(f) events per command while building those aggregates."""
    snapshot_loads: int
    """(f) loads from the snapshot per sample."""
    replay_events: int
    """(f) events replayed per sample of the full replay (at least one load)."""
    upcast_events: int
    """(g) version-1 events read per sample, with and without the upcast chain."""
    projection_events: int
    """(h) events appended per side, then projected from position 0 by each catch-up."""
    projection_streams: int
    """(h) accounts those events are spread over (one read-model row each)."""
    projection_batches: tuple[int, ...]
    """(h) our worker's batch sizes (events per transaction)."""
    projection_repeats: int
    """(h) catch-ups per side (the median is kept; no warm-up: each is long)."""


FULL = Plan(
    repeats=5,
    creates=300,
    updates=300,
    update_aggregates=50,
    stream_lengths=(1_000, 10_000),
    loads={1_000: 20, 10_000: 3},
    batch_size=1_000,
    read_events=100_000,
    page_size=1_000,
    writers=(4, 8),
    writes_per_writer=100,
    writer_processes=True,
    snapshot_lengths=(10_000, 100_000),
    snapshot_batch=10_000,
    snapshot_loads=200,
    replay_events=30_000,
    upcast_events=100_000,
    projection_events=100_000,
    projection_streams=1_000,
    projection_batches=(100, 500),
    projection_repeats=3,
)

QUICK = Plan(
    repeats=3,
    creates=50,
    updates=50,
    update_aggregates=10,
    stream_lengths=(1_000, 10_000),
    loads={1_000: 3, 10_000: 1},
    batch_size=1_000,
    read_events=10_000,
    page_size=1_000,
    writers=(4, 8),
    writes_per_writer=20,
    writer_processes=False,
    snapshot_lengths=(1_000, 5_000),
    snapshot_batch=1_000,
    snapshot_loads=50,
    replay_events=5_000,
    upcast_events=5_000,
    projection_events=10_000,
    projection_streams=100,
    projection_batches=(100, 500),
    projection_repeats=3,
)
