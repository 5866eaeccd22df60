"""``LastWinsStrategy``: the incoming side replaces the existing one whole."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload

from pydantic import BaseModel

from cqrs_ddd_advanced_core.conflict._documents import Side, TModel, merge_sides


class LastWinsStrategy:
    """Resolves a conflict by taking the incoming side whole (last writer wins).

    Nothing of the existing side survives, not even fields the incoming side
    lacks. The result is a deep copy: it shares no container with the inputs.
    """

    @overload
    def merge(self, existing: TModel, incoming: TModel) -> TModel: ...
    @overload
    def merge(self, existing: Mapping[str, Any], incoming: Side) -> dict[str, Any]: ...
    @overload
    def merge(self, existing: Side, incoming: Mapping[str, Any]) -> dict[str, Any]: ...
    def merge(self, existing: Side, incoming: Side) -> dict[str, Any] | BaseModel:
        """Return a copy of ``incoming`` (a model of the sides' class when both are models)."""
        return merge_sides(existing, incoming, _take_incoming)


def _take_incoming(existing: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    return incoming
