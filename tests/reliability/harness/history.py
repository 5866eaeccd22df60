"""The history log: one JSON line per operation, shared by every process of a scenario.

A writer records each step of each operation with a phase, in Jepsen's terms:
``invoke`` before it tries, then ``ok`` (acknowledged), ``fail`` (definitely did not
happen, e.g. rolled back) or ``info`` (outcome unknown, e.g. the connection broke
during COMMIT). A reader records ``ok`` per delivered key. A process killed between
``invoke`` and its completion leaves the invoke alone: the checker counts it as
indeterminate.

Every record is one ``os.write`` of one line to a file opened with ``O_APPEND``, so
lines of several processes never interleave and a SIGKILLed writer keeps every line
it recorded. A writer that buffers in user space (and so can die mid-line) is the
only way to get a torn line; `read_history` drops it when it is the last one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

Key = str | int
"""A key names what an operation is about: an event id, a message id, a position."""

_RESERVED = frozenset({"proc", "op", "key", "phase", "t"})


class HistoryFormatError(ValueError):
    """A line of a history file, other than a torn last one, is not a record."""

    def __init__(self, path: Path, line_number: int, reason: str) -> None:
        self.path = path
        self.line_number = line_number
        super().__init__(f"{path}:{line_number}: not a history record: {reason}")


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One recorded step: which process (``proc``) did which ``op`` on which ``key``.

    ``t`` is seconds on the host's monotonic clock (comparable between processes on
    one Linux host); ``extra`` holds any further fields the writer added.
    """

    proc: str
    op: str
    key: Key
    phase: str
    t: float
    extra: Mapping[str, object] = field(default_factory=dict)


class HistoryLog:
    """Appends records for one process to a history file; close it, or use ``with``.

    Several `HistoryLog` objects, in one process or many, may append to one file.
    Each `record` is one write system call, done before it returns; there is no
    user-space buffer to lose.
    """

    def __init__(
        self, path: Path | str, *, proc: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(path)
        self.proc = proc
        self._clock = clock
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._fd: int | None = os.open(self.path, flags, 0o644)

    def record(self, op: str, key: Key, phase: str, /, **extra: object) -> None:
        """Append one record; ``extra`` values must be JSON-serialisable.

        Raises `ValueError` if ``extra`` reuses a field name of the record, or the
        log is closed.
        """
        if self._fd is None:
            msg = f"history log {self.path} is closed"
            raise ValueError(msg)
        clashing = _RESERVED.intersection(extra)
        if clashing:
            msg = f"extra fields {sorted(clashing)} clash with the record's own"
            raise ValueError(msg)
        record = {"proc": self.proc, "op": op, "key": key, "phase": phase, "t": self._clock()}
        line = json.dumps({**record, **extra}, separators=(",", ":"), allow_nan=False) + "\n"
        data = line.encode()
        written = 0
        while written < len(data):  # one write unless the disk fills up; bounded by len
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        """Close the file; closing twice is fine."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_history(path: Path | str) -> list[HistoryRecord]:
    """Return the records of a history file in file order.

    A last line without its newline that does not parse is a torn write and is
    dropped; any other bad line raises `HistoryFormatError` naming it.
    """
    file_path = Path(path)
    text = file_path.read_bytes().decode(errors="replace")
    lines = text.split("\n")
    torn_tail = lines.pop()  # "" when the file ends with a newline
    records = [_parse(file_path, number, line) for number, line in _numbered(lines)]
    if torn_tail:
        with contextlib.suppress(HistoryFormatError):  # a writer died mid-line
            records.append(_parse(file_path, len(lines) + 1, torn_tail))
    return records


def _numbered(lines: list[str]) -> Iterator[tuple[int, str]]:
    return ((number, line) for number, line in enumerate(lines, start=1) if line.strip())


def _parse(path: Path, line_number: int, line: str) -> HistoryRecord:
    try:
        fields = json.loads(line)
    except json.JSONDecodeError as error:
        raise HistoryFormatError(path, line_number, str(error)) from error
    if not isinstance(fields, dict):
        raise HistoryFormatError(path, line_number, "not a JSON object")
    try:
        proc, op, key = str(fields.pop("proc")), str(fields.pop("op")), fields.pop("key")
        phase, t = str(fields.pop("phase")), float(fields.pop("t"))
    except KeyError as error:
        raise HistoryFormatError(path, line_number, f"missing field {error}") from error
    if not isinstance(key, str | int):
        raise HistoryFormatError(path, line_number, f"key {key!r} is neither text nor a number")
    return HistoryRecord(proc=proc, op=op, key=key, phase=phase, t=t, extra=fields)
