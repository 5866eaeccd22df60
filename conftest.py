"""Workspace-wide test settings.

Hypothesis runs without per-example deadlines everywhere: CI shares two cores
with databases and brokers, and a slow example is not a failing one (speed is
measured in benchmarks/, never asserted in tests).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("cqrs_ddd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cqrs_ddd")
