"""What a stream id may be: one rule for every store and every aggregate."""

from __future__ import annotations

import re

MAX_STREAM_ID_LENGTH = 255
"""The longest stream id an event store accepts."""

_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-:@]*")


def stream_id_issue(stream_id: object) -> str | None:
    """Return why ``stream_id`` is not acceptable, or None when it is.

    A stream id starts with a letter or digit and continues with letters,
    digits, ``_``, ``-``, ``:`` or ``@``, at most 255 characters: no spaces,
    dots or wildcards, so that it is safe as part of a broker subject or
    routing key as well as in SQL.
    """
    if not isinstance(stream_id, str):
        return f"must be a string, not {type(stream_id).__name__}"
    if not stream_id:
        return "must not be empty"
    if len(stream_id) > MAX_STREAM_ID_LENGTH:
        return f"is {len(stream_id)} characters long, more than {MAX_STREAM_ID_LENGTH}"
    if not _STREAM_ID.fullmatch(stream_id):
        return (
            "may hold only letters, digits, '_', '-', ':' and '@', starting with a letter or digit"
        )
    return None
