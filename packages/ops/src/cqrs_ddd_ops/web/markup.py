"""HTML built from Python values, escaped unless it is markup already.

Every page of the operations router is built with :func:`element`: text and
attribute values are escaped as they go in, and only :class:`Markup` (what
:func:`element` and :func:`raw` return) passes through as it is. So a stream
id, an error message or a saga's data taken from the database can never
become markup on the page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TypeAlias

__all__ = ["Content", "Markup", "element", "escape", "join", "raw"]


class Markup(str):
    """A string that is HTML already: inserted as it is, never escaped again."""

    __slots__ = ()


Content: TypeAlias = "Markup | str | int | float | Iterable[Content] | None"
"""What an element may hold: text (escaped), markup, numbers, nothing, or a sequence of them."""

_VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "wbr"})


def escape(value: object) -> Markup:
    """Return ``value`` as markup: as it is when it is :class:`Markup`, escaped otherwise."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def raw(text: str) -> Markup:
    """Return ``text`` as markup, unescaped: only for constant HTML written in this package."""
    return Markup(text)


def join(*parts: Content) -> Markup:
    """Return ``parts`` one after the other as markup; ``None`` and ``False`` are left out."""
    return Markup("".join(_render(part) for part in parts))


def element(name: str, /, *children: Content, **attributes: object) -> Markup:
    """Return the element ``name`` holding ``children``, with ``attributes``.

    An attribute's Python name gives its HTML name: a trailing ``_`` is dropped
    (``class_``, ``for_``) and ``_`` becomes ``-`` (``data_refresh_url``,
    ``aria_current``). ``True`` writes the attribute alone, ``None`` and
    ``False`` leave it out; every other value is escaped.
    """
    opened = [name]
    for key, value in attributes.items():
        if value is None or value is False:
            continue
        attribute = key.rstrip("_").replace("_", "-")
        if value is True:
            opened.append(attribute)
        else:
            opened.append(f'{attribute}="{escape(value)}"')
    start = f"<{' '.join(opened)}>"
    if name in _VOID:
        return Markup(start)
    return Markup(f"{start}{join(*children)}</{name}>")


def _render(part: Content) -> str:
    if part is None or part is False:
        return ""
    if isinstance(part, str | int | float):
        return escape(part)
    return "".join(_render(item) for item in part)
