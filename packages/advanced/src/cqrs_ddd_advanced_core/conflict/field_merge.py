"""``FieldMergeStrategy``: per top-level field, a rule says which side wins or how to merge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias, overload

from pydantic import BaseModel

from cqrs_ddd_advanced_core.conflict._documents import Side, TModel, merge_sides, same_value
from cqrs_ddd_advanced_core.conflict.merge_strategy import MergeStrategy
from cqrs_ddd_advanced_core.domain.exceptions import (
    InvalidMergeRuleError,
    UnresolvableConflictError,
)

FieldRule: TypeAlias = Literal["existing", "incoming", "refuse"] | MergeStrategy
"""A field's rule: a side that wins, ``"refuse"`` (both must agree), or a nested strategy."""

_SIDES = ("existing", "incoming", "refuse")


class FieldMergeStrategy:
    """Merges two documents field by field, each top-level field by its own rule.

    ``rules`` maps a field's name to its rule; every other field follows
    ``default`` (``"incoming"`` unless given):

    - ``"existing"`` / ``"incoming"``: that side's value wins.
    - ``"refuse"``: the sides must agree; differing values raise
      ``UnresolvableConflictError`` naming the field and both values.
    - a strategy (anything with ``merge``, see ``MergeStrategy``): it merges the
      field's two values. Two sub-documents (dicts) are passed as they are;
      other values are passed as one-field documents ``{field: value}``, so that
      ``UnionStrategy()`` can unite two tag lists. Its own conflict errors come
      back with the field prefixed to their path.

    A field only one side has is kept, whatever its rule. A rule that is none of
    these raises ``InvalidMergeRuleError`` when the strategy is built. The result
    shares no container with the inputs.
    """

    def __init__(self, rules: Mapping[str, FieldRule], *, default: FieldRule = "incoming") -> None:
        for field, rule in rules.items():
            _check_rule(field, rule)
        _check_rule("<default>", default)
        self.rules = dict(rules)
        self.default = default

    @overload
    def merge(self, existing: TModel, incoming: TModel) -> TModel: ...
    @overload
    def merge(self, existing: Mapping[str, Any], incoming: Side) -> dict[str, Any]: ...
    @overload
    def merge(self, existing: Side, incoming: Mapping[str, Any]) -> dict[str, Any]: ...
    def merge(self, existing: Side, incoming: Side) -> dict[str, Any] | BaseModel:
        """Return both sides merged field by field (a model when both are models of one class).

        Raises ``UnresolvableConflictError`` for a ``"refuse"`` field the sides
        disagree on, or when a nested strategy raises it.
        """
        return merge_sides(existing, incoming, self._merge_fields)

    def _merge_fields(self, existing: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
        merged = dict(existing)
        for field, value in incoming.items():
            if field not in existing:
                merged[field] = value
                continue
            outcome = _apply(self.rules.get(field, self.default), field, existing[field], value)
            if outcome is _LEFT_OUT:
                del merged[field]
            else:
                merged[field] = outcome
        return merged


_LEFT_OUT = object()
"""What a field becomes when its nested strategy leaves it out of its merged document."""


def _apply(rule: FieldRule, field: str, existing: Any, incoming: Any) -> Any:
    if isinstance(rule, str):
        return _take_side(rule, field, existing, incoming)
    if not (isinstance(existing, Mapping) and isinstance(incoming, Mapping)):
        return rule.merge({field: existing}, {field: incoming}).get(field, _LEFT_OUT)
    try:
        return rule.merge(existing, incoming)
    except UnresolvableConflictError as error:
        raise UnresolvableConflictError(
            f"{field}.{error.field_path}",
            error.existing_value,
            error.incoming_value,
            reason=error.reason,
        ) from error


def _take_side(rule: str, field: str, existing: Any, incoming: Any) -> Any:
    if rule == "existing":
        return existing
    if rule == "refuse" and not same_value(existing, incoming):
        raise UnresolvableConflictError(
            field, existing, incoming, reason="the sides disagree and the rule is 'refuse'"
        )
    return incoming


def _check_rule(field: str, rule: object) -> None:
    if isinstance(rule, str):
        if rule not in _SIDES:
            raise InvalidMergeRuleError(field, rule)
    elif not callable(getattr(rule, "merge", None)):
        raise InvalidMergeRuleError(field, rule)
