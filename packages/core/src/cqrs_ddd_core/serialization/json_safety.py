"""One rule for what JSON the framework stores, so every backend accepts the same.

PostgreSQL's ``jsonb`` refuses NaN and infinities, the NUL character and lone
surrogates, while SQLite's TEXT stores them; Python's ``json`` module emits them.
Checking payloads here, before any adapter sees them, makes SQLite and
PostgreSQL accept and refuse exactly the same events.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel

MAX_DEPTH = 64
"""How deeply lists and objects may nest inside one payload."""

MAX_INTEGER_DIGITS = 4300
"""The most decimal digits an integer may have (Python's own limit for int/str conversion).

Larger integers cannot be written as JSON text by the ``json`` module, nor read back.
"""

_INTEGER_LIMIT = 10**MAX_INTEGER_DIGITS

_Node = tuple[Any, str, int]


def json_safety_issues(
    value: Any, *, path: str = "$", max_depth: int = MAX_DEPTH
) -> Iterator[tuple[str, str]]:
    """Yield ``(path, reason)`` for every part of ``value`` that is not portable JSON.

    ``value`` must already be in JSON form (dicts with string keys, lists,
    strings, numbers, booleans, None), such as ``model_dump(mode="json")`` gives.
    The walk is iterative, so hostile nesting cannot exhaust the stack.
    """
    stack: list[_Node] = [(value, path, 0)]
    while stack:
        current, where, depth = stack.pop()
        if depth > max_depth:
            yield where, f"nests deeper than {max_depth} levels"
            continue
        if isinstance(current, dict):
            yield from _dict_issues(current, where, depth, stack)
        elif isinstance(current, list | tuple):
            stack.extend(
                (item, f"{where}[{index}]", depth + 1) for index, item in enumerate(current)
            )
        else:
            reason = _scalar_issue(current)
            if reason:
                yield where, reason


def _dict_issues(
    current: dict[Any, Any], where: str, depth: int, stack: list[_Node]
) -> Iterator[tuple[str, str]]:
    for key, item in current.items():
        if not isinstance(key, str):
            yield where, f"has a non-string key {key!r}"
            continue
        reason = _string_issue(key)
        if reason:
            yield where, f"has a key that {reason}"
            continue
        stack.append((item, f"{where}.{key}", depth + 1))


def _scalar_issue(value: Any) -> str | None:
    if isinstance(value, str):
        return _string_issue(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if -_INTEGER_LIMIT < value < _INTEGER_LIMIT:
            return None
        return f"is an integer of more than {MAX_INTEGER_DIGITS} digits"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value!r}, which JSON cannot represent"
    return f"holds a {type(value).__name__}, which is not a JSON value"


def text_issue(text: str) -> str | None:
    """Return why ``text`` is not stored alike by every backend (NUL, lone surrogate), or None."""
    if text.isascii():
        return "contains the NUL character" if "\x00" in text else None
    return _string_issue(text)


def _string_issue(text: str) -> str | None:
    if "\x00" in text:
        return "contains the NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid UTF-8"
    return None


def json_key_issues(value: Any, *, path: str = "$") -> Iterator[tuple[str, str]]:
    """Yield ``(path, reason)`` for what a JSON dump of ``value`` would silently change.

    Run on Python values *before* they are dumped, at any depth: inside
    mappings, sequences, sets, pydantic models and dataclasses. The dump would
    otherwise turn a key that is not a string into one (``{1: "a"}`` becomes
    ``{"1": "a"}``, and ``{1: "a", "1": "b"}`` loses a value), replace a lone
    surrogate in a key with U+FFFD, and (unless the model says otherwise)
    write NaN and infinities as ``null``: the stored document would differ
    from the value. Keys must be strings, as at the top level of a document,
    and floats finite.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        current, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            continue
        if isinstance(current, Mapping):
            for key, item in current.items():
                reason = _string_issue(key) if isinstance(key, str) else "is not a string"
                if reason:
                    yield where, f"has a key that {reason}"
                else:
                    stack.append((item, f"{where}.{key}", depth + 1))
        elif isinstance(current, list | tuple | set | frozenset):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(current))
        elif isinstance(current, BaseModel):
            stack.extend((item, f"{where}.{name}", depth + 1) for name, item in current)
        elif dataclasses.is_dataclass(current) and not isinstance(current, type):
            stack.extend(
                (getattr(current, field.name), f"{where}.{field.name}", depth + 1)
                for field in dataclasses.fields(current)
            )
        elif isinstance(current, float) and not math.isfinite(current):
            yield where, f"is {current!r}, which JSON cannot represent"


_SCALARS = frozenset({str, int, float, bool, type(None), Decimal, UUID, datetime, date, time})
"""Types that never hold a mapping: most event fields, answered without a walk."""


def has_containers(value: Any) -> bool:
    """Return whether ``value`` may hold mapping keys (so :func:`json_key_issues` must walk it)."""
    kind = type(value)
    if kind in _SCALARS:
        return False
    if kind is dict or kind is list:
        return True
    return isinstance(value, Mapping | list | tuple | set | frozenset | BaseModel) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    )


def portable_dump(
    model: BaseModel, *, by_alias: bool = False
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Return ``model`` dumped as JSON, and ``(path, reason)`` for each part that is not portable.

    The one check for documents the framework stores whole (aggregate state,
    snapshots): keys are checked on the model itself (see
    :func:`json_key_issues`), then the dump with :func:`json_safety_issues`.
    An empty list means the document reads back exactly as it was written.
    """
    issues = list(json_key_issues(model))
    try:
        document = model.model_dump(mode="json", by_alias=by_alias)
    except ValueError as error:  # pydantic refuses what it cannot dump (e.g. deep nesting)
        return {}, [*issues, ("$", str(error))]
    issues.extend(json_safety_issues(document))
    return document, issues
