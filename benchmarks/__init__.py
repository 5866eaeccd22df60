"""Side-by-side benchmarks of cqrs-ddd and the ``eventsourcing`` library (never run by pytest).

Run them with ``bash scripts/bench.sh`` (``--quick`` for a smoke run); see README.md.
"""
