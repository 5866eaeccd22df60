"""Specifications: named, composable predicates over domain objects.

A specification answers one question about a candidate (``is_satisfied_by``) and
composes with ``&`` (and), ``|`` (or) and ``~`` (not). Field comparisons
(:class:`FieldSpecification`) and their combinations form a tree that adapters
can translate to a query language; any other subclass is evaluated in memory only.
"""

from __future__ import annotations

import operator as _operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, Generic, TypeVar

from cqrs_ddd_core.exceptions import FieldIssue, ValidationError

T = TypeVar("T")


class Specification(ABC, Generic[T]):
    """A predicate over candidates of type ``T`` that composes with others."""

    @abstractmethod
    def is_satisfied_by(self, candidate: T) -> bool:
        """Return whether ``candidate`` meets this specification."""

    def and_(self, other: Specification[T]) -> Specification[T]:
        """Return a specification met when both this one and ``other`` are."""
        return AndSpecification(self, other)

    def or_(self, other: Specification[T]) -> Specification[T]:
        """Return a specification met when this one or ``other`` is."""
        return OrSpecification(self, other)

    def not_(self) -> Specification[T]:
        """Return a specification met exactly when this one is not."""
        return NotSpecification(self)

    def filter(self, candidates: Iterable[T]) -> list[T]:
        """Return the candidates that meet this specification, in their order."""
        return [candidate for candidate in candidates if self.is_satisfied_by(candidate)]

    def __and__(self, other: Specification[T]) -> Specification[T]:
        return self.and_(other)

    def __or__(self, other: Specification[T]) -> Specification[T]:
        return self.or_(other)

    def __invert__(self) -> Specification[T]:
        return self.not_()


class AndSpecification(Specification[T]):
    """Met when every one of its parts is met (an empty conjunction is always met)."""

    def __init__(self, *parts: Specification[T]) -> None:
        self.parts = _flatten(AndSpecification, parts)

    def is_satisfied_by(self, candidate: T) -> bool:
        """Return whether every part is met by ``candidate``."""
        return all(part.is_satisfied_by(candidate) for part in self.parts)

    def __repr__(self) -> str:
        return f"AndSpecification{self.parts!r}"


class OrSpecification(Specification[T]):
    """Met when at least one of its parts is met (an empty disjunction never is)."""

    def __init__(self, *parts: Specification[T]) -> None:
        self.parts = _flatten(OrSpecification, parts)

    def is_satisfied_by(self, candidate: T) -> bool:
        """Return whether any part is met by ``candidate``."""
        return any(part.is_satisfied_by(candidate) for part in self.parts)

    def __repr__(self) -> str:
        return f"OrSpecification{self.parts!r}"


class NotSpecification(Specification[T]):
    """Met exactly when the wrapped specification is not."""

    def __init__(self, inner: Specification[T]) -> None:
        self.inner = inner

    def is_satisfied_by(self, candidate: T) -> bool:
        """Return whether the wrapped specification rejects ``candidate``."""
        return not self.inner.is_satisfied_by(candidate)

    def __repr__(self) -> str:
        return f"NotSpecification({self.inner!r})"


def _flatten(
    kind: type[Specification[T]], parts: Iterable[Specification[T]]
) -> tuple[Specification[T], ...]:
    flat: list[Specification[T]] = []
    for part in parts:
        if type(part) is kind:
            flat.extend(part.parts)  # type: ignore[attr-defined]
        else:
            flat.append(part)
    return tuple(flat)


class Operator(StrEnum):
    """The comparison operators a :class:`FieldSpecification` understands."""

    EQ = "=="
    NE = "!="
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    STARTSWITH = "startswith"
    IS_NULL = "is_null"


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list | tuple | set | frozenset):
        return _is_member(expected, actual)
    return False


def _is_member(item: Any, collection: Any) -> bool:
    # an unhashable item (a list, a dict) is never in a set: answer, don't raise
    try:
        return bool(item in collection)
    except TypeError:
        return False


def _compare(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def checked(actual: Any, expected: Any) -> bool:
        if actual is None or expected is None:
            return False
        try:
            return compare(actual, expected)
        except TypeError:
            return False

    return checked


_EVALUATORS: Mapping[Operator, Callable[[Any, Any], bool]] = {
    Operator.EQ: _operator.eq,
    Operator.NE: _operator.ne,
    Operator.GT: _compare(_operator.gt),
    Operator.GE: _compare(_operator.ge),
    Operator.LT: _compare(_operator.lt),
    Operator.LE: _compare(_operator.le),
    Operator.IN: _is_member,
    Operator.NOT_IN: lambda actual, expected: not _is_member(actual, expected),
    Operator.CONTAINS: _contains,
    Operator.STARTSWITH: lambda actual, expected: (
        isinstance(actual, str) and isinstance(expected, str) and actual.startswith(expected)
    ),
    Operator.IS_NULL: lambda actual, expected: (actual is None) is bool(expected),
}


class FieldSpecification(Specification[Any]):
    """Compares one field of a candidate with a value: ``field <operator> value``.

    ``field`` may be dotted (``customer.name``) to reach into nested objects or
    mappings. Ordering comparisons with a missing value or incomparable types are
    not met (as in SQL, where NULL compares as unknown). ``contains`` is a
    substring test on strings and a membership test on lists; ``is_null`` takes a
    boolean (``True``: the field is null). Unknown operators, and ``in``/``not_in``
    without a collection, raise :class:`~cqrs_ddd_core.exceptions.ValidationError`
    at construction.
    """

    def __init__(self, field: str, operator: str | Operator, value: Any = None) -> None:
        if not field or not isinstance(field, str):
            raise ValidationError(
                "specification", [FieldIssue("field", "must be a non-empty name")]
            )
        try:
            self.operator = Operator(operator)
        except ValueError:
            known = ", ".join(op.value for op in Operator)
            raise ValidationError(
                "specification",
                [FieldIssue(field, f"unknown operator {operator!r} (known: {known})")],
            ) from None
        if self.operator in (Operator.IN, Operator.NOT_IN) and not isinstance(
            value, list | tuple | set | frozenset
        ):
            raise ValidationError(
                "specification",
                [FieldIssue(field, f"operator {self.operator.value!r} needs a list of values")],
            )
        if self.operator is Operator.IS_NULL and value is None:
            value = True
        self.field = field
        self.value = value

    def is_satisfied_by(self, candidate: Any) -> bool:
        """Return whether the candidate's field compares as required with the value."""
        return _EVALUATORS[self.operator](resolve_field(candidate, self.field), self.value)

    def __repr__(self) -> str:
        return f"FieldSpecification({self.field!r}, {self.operator.value!r}, {self.value!r})"


_MISSING = object()


def resolve_field(candidate: Any, path: str) -> Any:
    """Return the value at a dotted ``path`` of an object or mapping, or None if absent."""
    current: Any = candidate
    for name in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(name, _MISSING)
        else:
            current = getattr(current, name, _MISSING)
        if current is _MISSING:
            return None
    return current


class PredicateSpecification(Specification[T]):
    """Wraps a plain function as a specification (evaluated in memory only)."""

    def __init__(self, predicate: Callable[[T], bool], name: str | None = None) -> None:
        self.predicate = predicate
        self.name = name or getattr(predicate, "__name__", "predicate")

    def is_satisfied_by(self, candidate: T) -> bool:
        """Return what the wrapped function says of ``candidate``."""
        return bool(self.predicate(candidate))

    def __repr__(self) -> str:
        return f"PredicateSpecification({self.name})"
