"""One rule for what JSON the framework stores, so every backend accepts the same.

PostgreSQL's ``jsonb`` refuses NaN and infinities, the NUL character and lone
surrogates, while SQLite's TEXT stores them; Python's ``json`` module emits them.
Checking payloads here, before any adapter sees them, makes SQLite and
PostgreSQL accept and refuse exactly the same events.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

MAX_DEPTH = 64
"""How deeply lists and objects may nest inside one payload."""

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
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value!r}, which JSON cannot represent"
    return f"holds a {type(value).__name__}, which is not a JSON value"


def _string_issue(text: str) -> str | None:
    if "\x00" in text:
        return "contains the NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid UTF-8"
    return None


def json_key_issues(value: Any, *, path: str = "$") -> Iterator[tuple[str, str]]:
    """Yield ``(path, reason)`` for each mapping key in ``value`` that JSON cannot carry.

    Run on Python values *before* they are dumped: the dump would otherwise
    replace a lone surrogate in a key with U+FFFD and store a different key.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        current, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            continue
        if isinstance(current, dict):
            for key, item in current.items():
                reason = _string_issue(key) if isinstance(key, str) else "is not a string"
                if reason:
                    yield where, f"has a key that {reason}"
                else:
                    stack.append((item, f"{where}.{key}", depth + 1))
        elif isinstance(current, list | tuple):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(current))
