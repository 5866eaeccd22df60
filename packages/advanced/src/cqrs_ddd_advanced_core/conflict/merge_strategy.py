"""``MergeStrategy``: the protocol every merge strategy, built-in or custom, fulfils."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class MergeStrategy(Protocol):
    """Merges the stored (``existing``) and the concurrent (``incoming``) state of one thing.

    This is all a custom strategy has to provide, for instance to serve as a
    ``FieldMergeStrategy`` rule: take two JSON-like documents and return a new
    dict. A strategy must not mutate its inputs, and its result must share no
    mutable container with them (``copy.deepcopy`` what you take). It raises
    ``UnresolvableConflictError`` for a conflict it will not decide.

    The built-in strategies accept pydantic models as well: a model side is
    merged as its ``model_dump()``, and two models of one class give a model of
    that class.
    """

    def merge(self, existing: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
        """Return a new document merging ``incoming`` into ``existing``."""
        ...
