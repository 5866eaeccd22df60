"""``DeepMergeStrategy``: merges nested documents key by key, and lists of entities by id."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, overload

from pydantic import BaseModel

from cqrs_ddd_advanced_core.conflict._documents import Side, TModel, json_key, merge_sides


class DeepMergeStrategy:
    """Merges two documents recursively: the incoming side wins only where it says something.

    - Dicts are merged key by key, at every depth: a key only one side has is
      kept; where both have one, their values are merged by these same rules.
    - Lists (and tuples): with ``append_lists=True`` the incoming list is
      appended to the existing one. Otherwise, with a ``list_identity_key``
      and lists whose items are all dicts holding that key (as entities hold
      their id), items are matched by that key: each id appears once in the
      result, matched items are deep-merged, the existing order comes first and
      the incoming side's new items follow. Any other list is replaced by the
      incoming one.
    - Anything else (numbers, strings, sets, and a dict meeting a non-dict):
      the incoming value wins. ``None`` is a value like any other: an incoming
      ``None`` overwrites; to keep the existing value, leave the key out.

    Merging a document with itself returns it, except with ``append_lists``
    (which doubles every list). The result shares no container with the inputs.
    """

    def __init__(self, list_identity_key: str | None = None, *, append_lists: bool = False) -> None:
        self.list_identity_key = list_identity_key
        self.append_lists = append_lists

    @overload
    def merge(self, existing: TModel, incoming: TModel) -> TModel: ...
    @overload
    def merge(self, existing: Mapping[str, Any], incoming: Side) -> dict[str, Any]: ...
    @overload
    def merge(self, existing: Side, incoming: Mapping[str, Any]) -> dict[str, Any]: ...
    def merge(self, existing: Side, incoming: Side) -> dict[str, Any] | BaseModel:
        """Return ``incoming`` deep-merged into ``existing`` (a model when both are models)."""
        return merge_sides(existing, incoming, self._merge_dicts)

    def _merge_dicts(
        self, existing: Mapping[str, Any], incoming: Mapping[str, Any]
    ) -> dict[str, Any]:
        merged = dict(existing)
        for key, value in incoming.items():
            merged[key] = self._merge_values(existing[key], value) if key in existing else value
        return merged

    def _merge_values(self, existing: Any, incoming: Any) -> Any:
        if isinstance(existing, Mapping) and isinstance(incoming, Mapping):
            return self._merge_dicts(existing, incoming)
        if isinstance(existing, list | tuple) and isinstance(incoming, list | tuple):
            merged = self._merge_lists(existing, incoming)
            both_tuples = isinstance(existing, tuple) and isinstance(incoming, tuple)
            return tuple(merged) if both_tuples else merged
        return incoming

    def _merge_lists(self, existing: Sequence[Any], incoming: Sequence[Any]) -> list[Any]:
        if self.append_lists:
            return [*existing, *incoming]
        if self.list_identity_key is None or not self._are_entities(existing, incoming):
            return list(incoming)
        by_id: dict[Hashable, Any] = {}
        for item in [*existing, *incoming]:
            item_id = json_key(item[self.list_identity_key])
            by_id[item_id] = self._merge_values(by_id[item_id], item) if item_id in by_id else item
        return list(by_id.values())

    def _are_entities(self, existing: Sequence[Any], incoming: Sequence[Any]) -> bool:
        return all(
            isinstance(item, Mapping) and self.list_identity_key in item
            for item in [*existing, *incoming]
        )
