"""What every built-in merge strategy does around its own rule: sides in, result out.

A side is a mapping or a pydantic model. Each is turned into a fresh dict (a
model through ``model_dump()``, python mode) and deep-copied, so a strategy may
take any piece of either document without aliasing its caller's containers.
When both sides are models of the same class, the merged dict is validated back
into that class.

Values are compared as JSON compares them: ``True`` and ``1`` differ (Python's
``==`` says they are equal), ``1`` and ``1.0`` are the same number.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeAlias, TypeVar

from pydantic import BaseModel, ValidationError

from cqrs_ddd_advanced_core.domain.exceptions import ConflictResolutionError

TModel = TypeVar("TModel", bound=BaseModel)
Side: TypeAlias = Mapping[str, Any] | BaseModel
MergeDocuments: TypeAlias = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def merge_sides(
    existing: Side, incoming: Side, merge_documents: MergeDocuments
) -> dict[str, Any] | BaseModel:
    """Merge two sides with ``merge_documents``, which gets and returns private dicts.

    Raises ``ConflictResolutionError`` for a side that is neither a mapping nor
    a model, for two models of different classes, and for a merged document
    that the models' class rejects.
    """
    model_type = _common_model_type(existing, incoming)
    merged = merge_documents(as_document(existing), as_document(incoming))
    if model_type is None:
        return merged
    try:
        return model_type.model_validate(merged, by_name=True)
    except ValidationError as error:
        raise ConflictResolutionError(
            f"the merged {model_type.__name__} is invalid: {error}"
        ) from error


def as_document(side: object) -> dict[str, Any]:
    """Return a deep copy of ``side`` as a dict: the caller's containers stay untouched."""
    if isinstance(side, BaseModel):
        return copy.deepcopy(side.model_dump())
    if isinstance(side, Mapping):
        return copy.deepcopy(dict(side))
    raise ConflictResolutionError(
        f"a merge strategy merges mappings or pydantic models, not {type(side).__name__}"
    )


def _common_model_type(existing: Side, incoming: Side) -> type[BaseModel] | None:
    if not (isinstance(existing, BaseModel) and isinstance(incoming, BaseModel)):
        return None
    if type(existing) is not type(incoming):
        raise ConflictResolutionError(
            f"cannot merge models of two classes, {type(existing).__name__} and "
            f"{type(incoming).__name__}: pass models of one class, or dicts"
        )
    return type(existing)


def same_value(first: object, second: object) -> bool:
    """Return whether two JSON-like values are equal, telling booleans from numbers."""
    return json_key(first) == json_key(second)


def json_key(value: object) -> Hashable:
    """Return a hashable stand-in for ``value`` that equals another's when the values agree.

    Dicts, lists, tuples and sets are keyed by their content, booleans apart
    from numbers; any other unhashable value is compared by ``==``.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, Mapping):
        return ("dict", frozenset((json_key(k), json_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(json_key(item) for item in value))
    if isinstance(value, set | frozenset):
        return ("set", frozenset(json_key(item) for item in value))
    try:
        hash(value)
    except TypeError:
        return ("object", _ByEquality(value))
    return ("value", value)


class _ByEquality:
    """Wraps an unhashable value so that sets compare it with ``==`` (all collide on hash)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByEquality) and bool(self.value == other.value)


def unite(existing: Iterable[Any], incoming: Iterable[Any]) -> list[Any]:
    """Return ``existing``'s items as they are, then each incoming item not already there.

    Existing duplicates are kept (so a list united with itself is unchanged);
    an incoming item is added at most once.
    """
    united = list(existing)
    seen = {json_key(item) for item in united}
    for item in incoming:
        key = json_key(item)
        if key not in seen:
            seen.add(key)
            united.append(item)
    return united
