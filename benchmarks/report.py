"""Printing the figures: one plain table, the raw driver detail, and the machine.

Every figure is a rate (units per second, median of the repeats). The ratio
column is ours / theirs on those rates, so **above 1 means cqrs-ddd is
faster**, below 1 that eventsourcing is. Rows whose unit is ``ms/...`` show
the time of one operation instead of the rate (smaller is better there), but
their ratio is still ours / theirs on the rates, i.e. theirs_ms / ours_ms.
"""

from __future__ import annotations

import os
import platform
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path


@dataclass
class Row:
    """One line of the table: a workload on one backend, measured on each side."""

    workload: str
    backend: str
    unit: str
    ours: float | None = None
    theirs: float | None = None
    raw: float | None = None
    raw_driver: str = ""


@dataclass
class Report:
    """Everything one run measured, in the order it was measured."""

    rows: list[Row] = field(default_factory=list)
    raw_detail: list[tuple[str, str, str, float, str]] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    snapshot_summary: list[tuple[str, int, Row, Row]] = field(default_factory=list)
    """(f) per backend and length: the full replay row and the snapshot load row."""
    upcast_summary: list[tuple[str, int, float, float]] = field(default_factory=list)
    """(g) per backend: events read, decoded rate without and with the upcast chain."""
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        """Keep ``row`` and return it."""
        self.rows.append(row)
        return row

    def add_raw(self, backend: str, driver: str, work: str, rate: float, unit: str) -> None:
        """Keep one raw driver figure for the detail table."""
        self.raw_detail.append((backend, driver, work, rate, unit))


def _shown(rate: float | None, unit: str) -> str:
    if rate is None:
        return "-"
    if unit.startswith("ms/"):
        return f"{1000 / rate:,.2f}"
    return f"{rate:,.0f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator == 0:
        return "-"
    return f"{numerator / denominator:.2f}"


def table(report: Report) -> str:
    """Return the main table as aligned plain text."""
    header = (
        "workload",
        "backend",
        "unit",
        "ours",
        "theirs",
        "ours/theirs",
        "raw driver",
        "ours/raw",
    )
    lines = [header]
    for row in report.rows:
        raw = f"{_shown(row.raw, row.unit)} ({row.raw_driver})" if row.raw is not None else "-"
        lines.append(
            (
                row.workload,
                row.backend,
                row.unit,
                _shown(row.ours, row.unit),
                _shown(row.theirs, row.unit),
                _ratio(row.ours, row.theirs),
                raw,
                _ratio(row.ours, row.raw),
            )
        )
    return _aligned(lines)


def raw_table(report: Report) -> str:
    """Return the raw driver figures, every driver and every kind of work."""
    lines = [("backend", "driver", "work", "rate", "unit")]
    lines += [
        (backend, driver, work, _shown(rate, unit), unit)
        for backend, driver, work, rate, unit in report.raw_detail
    ]
    return _aligned(lines)


def _aligned(lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    text = []
    for index, line in enumerate(lines):
        cells = [
            cell.ljust(width) if column < 3 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
        if index == 0:
            text.append("  ".join("-" * width for width in widths))
    return "\n".join(text)


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages (other work on the machine skews figures)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine(postgres_version: str) -> dict[str, str]:
    """Return what the figures ran on: CPU, memory, database and library versions."""
    facts = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "load average at the end": load_average(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": postgres_version,
        "sqlite": sqlite3.sqlite_version,
    }
    for package in ("eventsourcing", "sqlalchemy", "asyncpg", "aiosqlite", "psycopg", "pydantic"):
        facts[package] = metadata.version(package)
    return facts


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def facts_text(facts: dict[str, str]) -> str:
    """Return ``key: value`` lines."""
    width = max(len(key) for key in facts)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in facts.items())
