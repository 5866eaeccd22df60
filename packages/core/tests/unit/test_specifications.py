from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cqrs_ddd_core.domain import (
    AndSpecification,
    FieldSpecification,
    NotSpecification,
    Operator,
    OrSpecification,
    PredicateSpecification,
    Specification,
    resolve_field,
)
from cqrs_ddd_core.exceptions import ValidationError


@dataclass(frozen=True)
class Address:
    city: str
    postcode: str | None = None


@dataclass(frozen=True)
class Customer:
    name: str
    age: int | None = None
    tags: list[str] = field(default_factory=list)
    address: Address | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def satisfied(operator: str, value: Any, actual: Any) -> bool:
    return FieldSpecification("x", operator, value).is_satisfied_by({"x": actual})


# ------------------------------------------------------------------ operators


@pytest.mark.parametrize(
    ("operator", "value", "actual", "expected"),
    [
        ("==", 3, 3, True),
        ("==", 3, 4, False),
        ("==", "a", "a", True),
        ("==", None, None, True),
        ("==", None, 0, False),
        ("!=", 3, 4, True),
        ("!=", 3, 3, False),
        ("!=", None, 0, True),
    ],
)
def test_equality_operators_compare_the_field_with_the_value(
    operator: str, value: Any, actual: Any, expected: bool
) -> None:
    assert satisfied(operator, value, actual) is expected


@pytest.mark.parametrize(
    ("operator", "value", "actual", "expected"),
    [
        (">", 3, 4, True),
        (">", 3, 3, False),
        (">=", 3, 3, True),
        (">=", 3, 2, False),
        ("<", 3, 2, True),
        ("<", 3, 3, False),
        ("<=", 3, 3, True),
        ("<=", 3, 4, False),
        (">", "apple", "banana", True),
        ("<", 2.5, 2, True),
    ],
)
def test_ordering_operators_compare_the_field_with_the_value(
    operator: str, value: Any, actual: Any, expected: bool
) -> None:
    assert satisfied(operator, value, actual) is expected


@pytest.mark.parametrize(
    ("operator", "value", "actual", "expected"),
    [
        ("in", [1, 2, 3], 2, True),
        ("in", [1, 2, 3], 5, False),
        ("in", ("a", "b"), "b", True),
        ("in", {"a", "b"}, "c", False),
        ("in", frozenset({None}), None, True),
        ("not_in", [1, 2, 3], 5, True),
        ("not_in", [1, 2, 3], 2, False),
        ("not_in", [], 2, True),
    ],
)
def test_in_and_not_in_test_the_fields_membership_in_a_collection(
    operator: str, value: Any, actual: Any, expected: bool
) -> None:
    assert satisfied(operator, value, actual) is expected


@pytest.mark.parametrize(
    ("value", "actual", "expected"),
    [("ell", "hello", True), ("", "hello", True), ("xyz", "hello", False), ("l", "", False)],
)
def test_contains_on_a_string_field_is_a_substring_test(
    value: str, actual: str, expected: bool
) -> None:
    assert satisfied("contains", value, actual) is expected


@pytest.mark.parametrize(
    ("value", "actual", "expected"),
    [
        ("b", ["a", "b"], True),
        ("c", ["a", "b"], False),
        ("a", ["ab"], False),
        (2, (1, 2), True),
        (None, [None], True),
    ],
)
def test_contains_on_a_list_field_is_a_membership_test(
    value: Any, actual: Any, expected: bool
) -> None:
    assert satisfied("contains", value, actual) is expected


@pytest.mark.parametrize(("value", "actual"), [(1, "a1b"), ("a", None), (5, 5), ("k", {"k": 1})])
def test_contains_on_anything_else_is_not_satisfied_and_never_raises(
    value: Any, actual: Any
) -> None:
    assert satisfied("contains", value, actual) is False


@pytest.mark.parametrize(
    ("value", "actual", "expected"),
    [
        ("he", "hello", True),
        ("", "hello", True),
        ("lo", "hello", False),
        ("he", None, False),
        ("1", 12, False),
        (1, "1", False),
    ],
)
def test_startswith_matches_a_prefix_of_a_string_field_only(
    value: Any, actual: Any, expected: bool
) -> None:
    assert satisfied("startswith", value, actual) is expected


@pytest.mark.parametrize(
    ("value", "actual", "expected"),
    [
        (True, None, True),
        (True, 0, False),
        (True, "", False),
        (True, False, False),
        (False, 0, True),
        (False, None, False),
    ],
)
def test_is_null_matches_on_whether_the_field_is_none(
    value: bool, actual: Any, expected: bool
) -> None:
    assert satisfied("is_null", value, actual) is expected


def test_is_null_without_a_value_means_the_field_is_null() -> None:
    # given
    spec = FieldSpecification("x", "is_null")
    # then
    assert spec.value is True
    assert spec.is_satisfied_by({"x": None})
    assert not spec.is_satisfied_by({"x": 1})


def test_an_operator_may_be_given_as_the_enum_or_its_text() -> None:
    assert FieldSpecification("age", Operator.GE, 18).operator is Operator.GE
    assert FieldSpecification("age", ">=", 18).operator is Operator.GE


# ------------------------------------------------------------------ field paths


def test_a_dotted_field_reaches_into_nested_objects() -> None:
    # given
    customer = Customer(name="Ana", address=Address(city="Lisbon"))
    # then
    assert FieldSpecification("address.city", "==", "Lisbon").is_satisfied_by(customer)
    assert not FieldSpecification("address.city", "==", "Porto").is_satisfied_by(customer)


def test_a_dotted_field_reaches_into_mappings_and_mixes_them_with_objects() -> None:
    # given
    customer = Customer(name="Ana", extra={"loyalty": {"tier": "gold", "card": Address("Rome")}})
    # then
    assert resolve_field(customer, "extra.loyalty.tier") == "gold"
    assert resolve_field(customer, "extra.loyalty.card.city") == "Rome"
    assert resolve_field({"a": {"b": {"c": 1}}}, "a.b.c") == 1
    assert FieldSpecification("extra.loyalty.tier", "in", ["gold", "silver"]).is_satisfied_by(
        customer
    )


@pytest.mark.parametrize(
    ("candidate", "path"),
    [
        (Customer(name="Ana"), "nickname"),
        (Customer(name="Ana"), "address.city"),
        (Customer(name="Ana", address=Address("Rome")), "address.street"),
        (Customer(name="Ana"), "extra.loyalty.tier"),
        ({"a": {"b": 1}}, "a.c"),
        ({"a": 1}, "a.b.c"),
        ({}, "anything"),
    ],
)
def test_a_missing_field_resolves_to_none(candidate: Any, path: str) -> None:
    # then
    assert resolve_field(candidate, path) is None
    assert FieldSpecification(path, "is_null", True).is_satisfied_by(candidate)
    assert FieldSpecification(path, "==", None).is_satisfied_by(candidate)


def test_a_field_present_but_none_resolves_to_none() -> None:
    assert resolve_field({"a": None}, "a") is None
    assert resolve_field(Customer(name="Ana", age=None), "age") is None


@pytest.mark.parametrize("operator", [">", ">=", "<", "<="])
@pytest.mark.parametrize(
    ("value", "actual"),
    [(3, None), (None, 3), (None, None), (3, "abc"), ("abc", 3), (3, {"a": 1}), ([1], 1)],
)
def test_an_ordering_comparison_with_none_or_an_incomparable_type_is_not_satisfied(
    operator: str, value: Any, actual: Any
) -> None:
    assert satisfied(operator, value, actual) is False


def test_an_ordering_comparison_on_a_missing_field_is_not_satisfied() -> None:
    assert not FieldSpecification("age", ">", 18).is_satisfied_by(Customer(name="Ana"))
    assert not FieldSpecification("age", "<=", 18).is_satisfied_by({"name": "Ana"})


# ------------------------------------------------------------------ construction errors


def test_an_unknown_operator_is_rejected_naming_the_field_and_listing_the_operators() -> None:
    # when
    with pytest.raises(ValidationError) as caught:
        FieldSpecification("price", "~=", 3)
    # then
    error = caught.value
    assert error.fields == ("price",)
    assert "'~='" in str(error)
    for operator in Operator:
        assert operator.value in str(error)


@pytest.mark.parametrize("operator", ["in", "not_in"])
@pytest.mark.parametrize("value", ["abc", 3, None, {"a": 1}])
def test_in_and_not_in_without_a_collection_are_rejected_naming_the_field(
    operator: str, value: Any
) -> None:
    # when
    with pytest.raises(ValidationError) as caught:
        FieldSpecification("status", operator, value)
    # then
    assert caught.value.fields == ("status",)
    assert f"'{operator}'" in str(caught.value)


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_specification_without_a_field_name_is_rejected(name: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        FieldSpecification(name, "==", 1)
    assert caught.value.fields == ("field",)


# ------------------------------------------------------------------ composition, examples

adult = FieldSpecification("age", ">=", 18)
in_lisbon = FieldSpecification("address.city", "==", "Lisbon")
ana = Customer(name="Ana", age=30, address=Address("Lisbon"))
bo = Customer(name="Bo", age=12, address=Address("Lisbon"))
cy = Customer(name="Cy", age=40, address=Address("Porto"))
dee = Customer(name="Dee", age=None)


def test_operators_and_methods_build_the_same_kinds_of_composite() -> None:
    assert isinstance(adult & in_lisbon, AndSpecification)
    assert isinstance(adult.and_(in_lisbon), AndSpecification)
    assert isinstance(adult | in_lisbon, OrSpecification)
    assert isinstance(adult.or_(in_lisbon), OrSpecification)
    assert isinstance(~adult, NotSpecification)
    assert isinstance(adult.not_(), NotSpecification)


def test_composites_evaluate_their_parts() -> None:
    # then
    assert (adult & in_lisbon).filter([ana, bo, cy, dee]) == [ana]
    assert (adult | in_lisbon).filter([ana, bo, cy, dee]) == [ana, bo, cy]
    assert (~adult).filter([ana, bo, cy, dee]) == [bo, dee]


def test_filter_keeps_the_satisfied_candidates_in_their_order() -> None:
    assert adult.filter([cy, bo, dee, ana]) == [cy, ana]
    assert adult.filter(iter([cy, ana])) == [cy, ana]
    assert adult.filter([]) == []


def test_nested_conjunctions_and_disjunctions_are_flattened() -> None:
    # given
    city = FieldSpecification("address.city", "is_null", False)
    # when
    conjunction = (adult & in_lisbon) & city
    disjunction = adult | (in_lisbon | city)
    # then
    assert isinstance(conjunction, AndSpecification)
    assert conjunction.parts == (adult, in_lisbon, city)
    assert isinstance(disjunction, OrSpecification)
    assert disjunction.parts == (adult, in_lisbon, city)


def test_a_disjunction_inside_a_conjunction_is_kept_as_one_part() -> None:
    # when
    spec = AndSpecification(adult, OrSpecification(in_lisbon, adult))
    # then
    assert len(spec.parts) == 2
    assert isinstance(spec.parts[1], OrSpecification)


def test_an_empty_conjunction_is_always_met_and_an_empty_disjunction_never() -> None:
    assert AndSpecification[Customer]().is_satisfied_by(ana)
    assert not OrSpecification[Customer]().is_satisfied_by(ana)


def test_a_predicate_specification_wraps_a_function_and_composes() -> None:
    # given
    def has_short_name(customer: Customer) -> bool:
        return len(customer.name) <= 2

    short = PredicateSpecification(has_short_name)
    # then
    assert short.name == "has_short_name"
    assert (short & adult).filter([ana, bo, cy, dee]) == [cy]
    assert PredicateSpecification(has_short_name, name="short").name == "short"


def test_a_predicate_specification_returns_a_bool_for_a_truthy_result() -> None:
    # given
    def tags_of_customer(customer: Customer) -> list[str]:
        return customer.tags

    tags_of = PredicateSpecification(tags_of_customer)  # type: ignore[arg-type]
    # then
    assert tags_of.is_satisfied_by(Customer(name="Ana", tags=["vip"])) is True
    assert tags_of.is_satisfied_by(Customer(name="Ana")) is False


def test_a_custom_specification_subclass_composes_with_field_specifications() -> None:
    # given
    class NamedAfterA(Specification[Customer]):
        def is_satisfied_by(self, candidate: Customer) -> bool:
            return candidate.name.startswith("A")

    # then
    assert (NamedAfterA() | ~adult).filter([ana, bo, cy, dee]) == [ana, bo, dee]


# ------------------------------------------------------------------ composition, properties

FIELDS = ["n", "m", "s", "absent"]
small_ints = st.integers(min_value=-3, max_value=3)
short_strings = st.sampled_from(["", "a", "ab", "b"])
scalars = st.none() | small_ints | short_strings

candidates = st.fixed_dictionaries(
    {"n": st.none() | small_ints},
    optional={"m": st.none() | small_ints, "s": st.none() | short_strings},
)

comparisons = st.builds(
    FieldSpecification,
    st.sampled_from(FIELDS),
    st.sampled_from(["==", "!=", ">", ">=", "<", "<="]),
    scalars,
)
memberships = st.builds(
    FieldSpecification,
    st.sampled_from(FIELDS),
    st.sampled_from(["in", "not_in"]),
    st.lists(scalars, max_size=3),
)
text_tests = st.builds(
    FieldSpecification,
    st.sampled_from(FIELDS),
    st.sampled_from(["contains", "startswith"]),
    short_strings,
)
null_tests = st.builds(
    FieldSpecification, st.sampled_from(FIELDS), st.just("is_null"), st.booleans()
)
leaves = comparisons | memberships | text_tests | null_tests


def _composites(children: st.SearchStrategy[Specification[Any]]) -> Any:
    return (
        st.tuples(children, children).map(lambda pair: pair[0] & pair[1])
        | st.tuples(children, children).map(lambda pair: pair[0] | pair[1])
        | children.map(lambda child: ~child)
        | st.lists(children, max_size=3).map(lambda parts: AndSpecification(*parts))
        | st.lists(children, max_size=3).map(lambda parts: OrSpecification(*parts))
    )


specs: st.SearchStrategy[Specification[Any]] = st.recursive(leaves, _composites, max_leaves=8)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@PROPERTY_SETTINGS
@given(a=specs, b=specs, x=candidates)
def test_a_conjunction_is_met_exactly_when_both_parts_are(
    a: Specification[Any], b: Specification[Any], x: dict[str, Any]
) -> None:
    assert (a & b).is_satisfied_by(x) == (a.is_satisfied_by(x) and b.is_satisfied_by(x))


@PROPERTY_SETTINGS
@given(a=specs, b=specs, x=candidates)
def test_a_disjunction_is_met_exactly_when_either_part_is(
    a: Specification[Any], b: Specification[Any], x: dict[str, Any]
) -> None:
    assert (a | b).is_satisfied_by(x) == (a.is_satisfied_by(x) or b.is_satisfied_by(x))


@PROPERTY_SETTINGS
@given(a=specs, x=candidates)
def test_a_negation_is_met_exactly_when_its_inner_specification_is_not(
    a: Specification[Any], x: dict[str, Any]
) -> None:
    assert (~a).is_satisfied_by(x) == (not a.is_satisfied_by(x))


@PROPERTY_SETTINGS
@given(a=specs, b=specs, x=candidates)
def test_de_morgans_laws_hold(
    a: Specification[Any], b: Specification[Any], x: dict[str, Any]
) -> None:
    assert (~(a & b)).is_satisfied_by(x) == (~a | ~b).is_satisfied_by(x)
    assert (~(a | b)).is_satisfied_by(x) == (~a & ~b).is_satisfied_by(x)


@PROPERTY_SETTINGS
@given(a=specs, x=candidates)
def test_a_double_negation_means_the_specification_itself(
    a: Specification[Any], x: dict[str, Any]
) -> None:
    assert (~~a).is_satisfied_by(x) == a.is_satisfied_by(x)


@PROPERTY_SETTINGS
@given(a=specs, xs=st.lists(candidates, max_size=8))
def test_filter_keeps_exactly_the_satisfied_candidates_in_their_order(
    a: Specification[Any], xs: list[dict[str, Any]]
) -> None:
    # when
    kept = a.filter(xs)
    # then
    assert kept == [x for x in xs if a.is_satisfied_by(x)]
    assert len(kept) + len((~a).filter(xs)) == len(xs)


@PROPERTY_SETTINGS
@given(parts=st.lists(specs, min_size=1, max_size=4), split=st.integers(0, 4), x=candidates)
def test_regrouping_conjunctions_and_disjunctions_does_not_change_their_meaning(
    parts: list[Specification[Any]], split: int, x: dict[str, Any]
) -> None:
    # given
    left, right = parts[:split], parts[split:]
    # when
    grouped_and = AndSpecification(AndSpecification(*left), AndSpecification(*right))
    grouped_or = OrSpecification(OrSpecification(*left), OrSpecification(*right))
    # then
    assert grouped_and.is_satisfied_by(x) == all(p.is_satisfied_by(x) for p in parts)
    assert grouped_or.is_satisfied_by(x) == any(p.is_satisfied_by(x) for p in parts)


@PROPERTY_SETTINGS
@given(a=specs, b=specs)
def test_a_composite_never_holds_a_directly_nested_composite_of_its_own_kind(
    a: Specification[Any], b: Specification[Any]
) -> None:
    # when
    conjunction = a & b
    disjunction = a | b
    # then
    assert isinstance(conjunction, AndSpecification)
    assert isinstance(disjunction, OrSpecification)
    assert not any(type(part) is AndSpecification for part in conjunction.parts)
    assert not any(type(part) is OrSpecification for part in disjunction.parts)


def test_membership_with_unhashable_values_answers_instead_of_raising() -> None:
    assert not FieldSpecification("tags", "in", {"a"}).is_satisfied_by({"tags": ["a"]})
    assert FieldSpecification("tags", "not_in", {"a"}).is_satisfied_by({"tags": ["a"]})
    assert not FieldSpecification("tags", "contains", ["a"]).is_satisfied_by({"tags": {"a", "b"}})
