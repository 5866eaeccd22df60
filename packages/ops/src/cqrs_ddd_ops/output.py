"""How listings are shown: a rich table for people, JSON (``--json``) for scripts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.table import Table
from rich.text import Text


def to_json(value: Any) -> Any:
    """Return ``value`` as plain JSON data (dataclasses as objects, times in ISO 8601)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: to_json(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def show(
    console: Console,
    rows: Sequence[Any],
    columns: Sequence[tuple[str, str]],
    *,
    title: str,
    as_json: bool,
) -> None:
    """Print ``rows`` (dataclasses) as JSON, or as a table of ``columns`` (attribute, heading)."""
    if as_json:
        print(json.dumps(to_json(list(rows)), indent=2), flush=True)  # noqa: T201 - data, as is
        return
    console.print(table(rows, columns, title=title))


def table(rows: Sequence[Any], columns: Sequence[tuple[str, str]], *, title: str) -> Table:
    """Return ``rows`` as a rich table of ``columns`` (attribute, heading), cells as plain text."""
    shown = Table(title=title)
    for _, heading in columns:
        shown.add_column(heading)
    for row in rows:
        shown.add_row(*(Text(_cell(getattr(row, attribute))) for attribute, _ in columns))
    return shown


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)
