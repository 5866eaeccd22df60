"""The reliability-test harness: tools that break things on purpose and count what broke.

The scenarios in RELIABILITY.md (R1 to R18) are built from these modules, importable
in tests as ``harness.<module>`` (pytest's ``pythonpath`` holds ``tests/reliability``):

- `harness.history`: `HistoryLog` appends one JSON line per operation
  (``{"proc", "op", "key", "phase", "t", ...}``), flushed per line, safe for several
  processes sharing one file and for a writer killed mid-run; `read_history` reads it
  back, dropping a torn last line.
- `harness.checker`: Jepsen-style counts over a history: `check_delivery` (lost,
  duplicated, unexpected, recovered), `outcomes_from_history`, `inversions` and
  `stream_inversions` for order, `canonical_hash` for read-model equality; all
  reported as a `CheckResult` whose ``str`` reads well in an assertion message.
- `harness.workers`: `WorkerProcess` runs a worker as a real subprocess, so SIGKILL is
  real, with stdout and stderr in files and a deadline on every wait; `run_python`.
- `harness.proxy`: `FaultProxy`, an asyncio TCP proxy on 127.0.0.1 with runtime modes
  (pass, delay, blackhole, reset now, reset after N bytes, reset after a matching
  chunk such as a PostgreSQL ``COMMIT``).
- `harness.pg_faults`: PostgreSQL faults: terminate backends by application name,
  hold a transaction that owns an xid (and so pins ``pg_snapshot_xmin``), park a
  session idle in a transaction holding a row lock, or hold a read-only one.

Failpoints themselves live in the framework (`cqrs_ddd_core.failpoints`), armed
through the ``CQRS_DDD_FAILPOINTS`` variable of the worker process.

Rules for the scenarios built on it: counts, not timings (deadlines are generous
liveness bounds); every loop bounded in count and time; the seed printed on failure;
and an assertion that the fault really happened (kills counted, gaps present).
"""
