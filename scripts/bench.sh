#!/usr/bin/env bash
# Side-by-side benchmarks of cqrs-ddd and the eventsourcing library (never part of the tests).
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres): a fresh database is made
# and dropped per run. Arguments go to the benchmark: --quick (about a minute), --repeats N,
# --only sqlite|postgres|writers|snapshots|projections|scheduling|sagas|relay|shop, --profile.
# See benchmarks/README.md.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
uv sync --quiet --all-packages --frozen --group bench
uv run --frozen --group bench python -m benchmarks "$@"
