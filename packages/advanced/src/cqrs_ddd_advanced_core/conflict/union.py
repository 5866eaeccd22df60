"""``UnionStrategy``: unites the collections of both sides, so no side's item is lost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload

from pydantic import BaseModel

from cqrs_ddd_advanced_core.conflict._documents import Side, TModel, merge_sides, unite


class UnionStrategy:
    """Merges two documents by uniting, key by key, every list, tuple and set they hold.

    - Two collections (lists, tuples, sets) under one key are united without
      duplicates, order kept: the existing items as they are, then each
      incoming item not already there, in the incoming order. Items are
      compared by value, dicts and lists included (``True`` and ``1`` differ).
      Two sets give a set, two tuples a tuple, any other pair a list.
    - Two dicts under one key are united the same way, recursively.
    - Anything else (scalars, a list meeting a scalar): the incoming value wins.
    - A key only one side has is kept.

    Adding is all a union does: no item is ever removed, so a concurrent
    removal is undone. The strategy is idempotent, ``merge(merge(a, b), b) ==
    merge(a, b)``, and merging a document with itself returns it. The result
    shares no container with the inputs.
    """

    @overload
    def merge(self, existing: TModel, incoming: TModel) -> TModel: ...
    @overload
    def merge(self, existing: Mapping[str, Any], incoming: Side) -> dict[str, Any]: ...
    @overload
    def merge(self, existing: Side, incoming: Mapping[str, Any]) -> dict[str, Any]: ...
    def merge(self, existing: Side, incoming: Side) -> dict[str, Any] | BaseModel:
        """Return the union of both sides (a model when both are models of one class)."""
        return merge_sides(existing, incoming, _unite_dicts)


def _unite_dicts(existing: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
    united = dict(existing)
    for key, value in incoming.items():
        united[key] = _unite_values(existing[key], value) if key in existing else value
    return united


def _unite_values(existing: Any, incoming: Any) -> Any:
    if isinstance(existing, Mapping) and isinstance(incoming, Mapping):
        return _unite_dicts(existing, incoming)
    if isinstance(existing, set | frozenset) and isinstance(incoming, set | frozenset):
        return type(existing)(unite(existing, incoming))
    if isinstance(existing, tuple) and isinstance(incoming, tuple):
        return tuple(unite(existing, incoming))
    if isinstance(existing, list | tuple | set | frozenset) and isinstance(
        incoming, list | tuple | set | frozenset
    ):
        return unite(existing, incoming)
    return incoming
