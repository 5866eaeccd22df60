"""Merge strategies: the spec's example, each strategy's rules, and their invariants.

The invariants are checked by hypothesis on JSON-like documents: merging a
document with itself returns it, inputs are never mutated, the result shares no
container with the inputs, ``DeepMergeStrategy`` keeps each id once and
``UnionStrategy`` is idempotent and loses no item of either side.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, model_validator

import cqrs_ddd_advanced_core
from cqrs_ddd_advanced_core.conflict import (
    ConflictResolutionError,
    DeepMergeStrategy,
    FieldMergeStrategy,
    InvalidMergeRuleError,
    LastWinsStrategy,
    MergeStrategy,
    TimestampStrategy,
    UnionStrategy,
    UnresolvableConflictError,
    resolution,
)
from cqrs_ddd_core.exceptions import CqrsDddError


class Customer(BaseModel):
    name: str
    email: str | None = None
    tags: list[str] = []
    address: dict[str, str] = {}
    updated_at: datetime = datetime(2024, 1, 1, tzinfo=UTC)


class Product(BaseModel):
    sku: str


class Booking(BaseModel):
    start: int
    end: int

    @model_validator(mode="after")
    def _starts_before_it_ends(self) -> Booking:
        if self.start > self.end:
            raise ValueError("a booking starts before it ends")
        return self


class HighestWins:
    """A custom strategy: per key, the higher number wins (the protocol is all it implements)."""

    def merge(self, existing: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
        merged = dict(existing)
        for key, value in incoming.items():
            merged[key] = max(merged.get(key, value), value)
        return merged


# ---------------------------------------------------------------- the spec's example


def test_the_spec_s_deep_merge_example_gives_exactly_the_result_it_prints() -> None:
    # given
    strategy = DeepMergeStrategy(
        list_identity_key="id",  # Merge lists by ID
        append_lists=False,
    )
    existing = {
        "customer": {"name": "John"},
        "items": [{"id": 1, "qty": 2}],
    }
    incoming = {
        "customer": {"email": "john@example.com"},
        "items": [{"id": 1, "qty": 3}],  # Same ID, update qty
    }
    # when
    merged = strategy.merge(existing, incoming)
    # then
    assert merged == {
        "customer": {"name": "John", "email": "john@example.com"},
        "items": [{"id": 1, "qty": 3}],
    }


def test_the_spec_s_module_path_and_the_package_root_export_the_same_strategies() -> None:
    for name in resolution.__all__:
        assert getattr(cqrs_ddd_advanced_core.conflict, name) is getattr(resolution, name)
        if name != "FieldRule":
            assert getattr(cqrs_ddd_advanced_core, name) is getattr(resolution, name)


def test_conflict_errors_derive_from_the_framework_s_root_error() -> None:
    assert issubclass(UnresolvableConflictError, ConflictResolutionError)
    assert issubclass(InvalidMergeRuleError, ConflictResolutionError)
    assert issubclass(ConflictResolutionError, CqrsDddError)


# ---------------------------------------------------------------- LastWinsStrategy


def test_last_wins_returns_the_incoming_side_whole() -> None:
    # given
    existing = {"name": "John", "email": "john@example.com"}
    incoming = {"name": "Johnny"}
    # when
    merged = LastWinsStrategy().merge(existing, incoming)
    # then
    assert merged == {"name": "Johnny"}


def test_last_wins_between_two_models_returns_a_model_of_their_class() -> None:
    # given
    existing = Customer(name="John", tags=["vip"])
    incoming = Customer(name="Johnny")
    # when
    merged = LastWinsStrategy().merge(existing, incoming)
    # then
    assert merged == Customer(name="Johnny")
    assert merged is not incoming


# ---------------------------------------------------------------- FieldMergeStrategy


def test_field_merge_takes_each_field_from_the_side_its_rule_names() -> None:
    # given
    strategy = FieldMergeStrategy({"name": "existing", "email": "incoming"})
    # when
    merged = strategy.merge(
        {"name": "John", "email": "old@example.com"},
        {"name": "Johnny", "email": "new@example.com"},
    )
    # then
    assert merged == {"name": "John", "email": "new@example.com"}


@pytest.mark.parametrize(("default", "expected"), [("incoming", "B"), ("existing", "A")])
def test_field_merge_follows_the_default_for_fields_without_a_rule(
    default: Literal["existing", "incoming"], expected: str
) -> None:
    # given
    strategy = FieldMergeStrategy({"name": "existing"}, default=default)
    # when
    merged = strategy.merge({"name": "John", "city": "A"}, {"name": "Johnny", "city": "B"})
    # then
    assert merged == {"name": "John", "city": expected}


def test_field_merge_keeps_a_field_only_one_side_has_whatever_its_rule() -> None:
    # given
    strategy = FieldMergeStrategy({"nickname": "incoming", "email": "existing"})
    # when
    merged = strategy.merge({"nickname": "Jo"}, {"email": "john@example.com"})
    # then
    assert merged == {"nickname": "Jo", "email": "john@example.com"}


def test_field_merge_hands_two_sub_documents_to_the_field_s_strategy() -> None:
    # given
    strategy = FieldMergeStrategy({"address": DeepMergeStrategy()}, default="existing")
    # when
    merged = strategy.merge(
        {"name": "John", "address": {"city": "Paris"}},
        {"name": "Johnny", "address": {"zip": "75001"}},
    )
    # then
    assert merged == {"name": "John", "address": {"city": "Paris", "zip": "75001"}}


def test_field_merge_hands_other_values_to_the_field_s_strategy_as_one_field_documents() -> None:
    # given
    strategy = FieldMergeStrategy({"tags": UnionStrategy(), "score": HighestWins()})
    # when
    merged = strategy.merge({"tags": ["vip"], "score": 7}, {"tags": ["new", "vip"], "score": 3})
    # then
    assert merged == {"tags": ["vip", "new"], "score": 7}


def test_a_custom_strategy_can_leave_the_field_out() -> None:
    # given
    class Forget:
        def merge(self, existing: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
            return {}

    strategy = FieldMergeStrategy({"draft": Forget()})
    # when
    merged = strategy.merge({"draft": "a", "name": "x"}, {"draft": "b", "name": "y"})
    # then
    assert merged == {"name": "y"}


def test_a_refused_field_the_sides_disagree_on_raises_naming_the_field_and_both_values() -> None:
    # given
    strategy = FieldMergeStrategy({"status": "refuse"})
    # when
    with pytest.raises(UnresolvableConflictError) as raised:
        strategy.merge({"status": "shipped"}, {"status": "cancelled"})
    # then
    error = raised.value
    assert (error.field_path, error.existing_value, error.incoming_value) == (
        "status",
        "shipped",
        "cancelled",
    )
    assert "'status'" in str(error)
    assert "'shipped'" in str(error)
    assert "'cancelled'" in str(error)


def test_a_refused_field_the_sides_agree_on_is_merged() -> None:
    # given
    strategy = FieldMergeStrategy({"status": "refuse"})
    # when
    merged = strategy.merge({"status": "paid", "note": "a"}, {"status": "paid", "note": "b"})
    # then
    assert merged == {"status": "paid", "note": "b"}


def test_a_refused_field_tells_true_from_one() -> None:
    # given
    strategy = FieldMergeStrategy({"flag": "refuse"})
    # when / then
    with pytest.raises(UnresolvableConflictError):
        strategy.merge({"flag": 1}, {"flag": True})


def test_a_conflict_inside_a_sub_document_names_the_full_field_path() -> None:
    # given
    strategy = FieldMergeStrategy({"address": FieldMergeStrategy({"city": "refuse"})})
    # when
    with pytest.raises(UnresolvableConflictError) as raised:
        strategy.merge({"address": {"city": "Paris"}}, {"address": {"city": "Lyon"}})
    # then
    assert raised.value.field_path == "address.city"
    assert (raised.value.existing_value, raised.value.incoming_value) == ("Paris", "Lyon")


@pytest.mark.parametrize("rule", ["newest", "Existing", 42, object()], ids=repr)
def test_a_rule_naming_neither_a_side_nor_a_strategy_is_rejected_when_built(rule: Any) -> None:
    # when
    with pytest.raises(InvalidMergeRuleError) as raised:
        FieldMergeStrategy({"status": rule})
    # then
    assert raised.value.field == "status"
    assert raised.value.rule is rule


def test_an_invalid_default_rule_is_rejected_when_built() -> None:
    with pytest.raises(InvalidMergeRuleError):
        FieldMergeStrategy({}, default="newest")  # type: ignore[arg-type]


def test_field_merge_between_two_models_returns_a_model_of_their_class() -> None:
    # given
    strategy = FieldMergeStrategy({"name": "existing", "tags": UnionStrategy()})
    # when
    merged = strategy.merge(
        Customer(name="John", tags=["vip"]),
        Customer(name="Johnny", email="j@example.com", tags=["new"]),
    )
    # then
    assert merged == Customer(name="John", email="j@example.com", tags=["vip", "new"])


# ---------------------------------------------------------------- DeepMergeStrategy


def test_deep_merge_merges_dicts_key_by_key_at_every_depth() -> None:
    # given
    existing = {"a": {"b": {"c": 1, "d": 2}}, "kept": True}
    incoming = {"a": {"b": {"d": 3, "e": 4}}, "new": "x"}
    # when
    merged = DeepMergeStrategy().merge(existing, incoming)
    # then
    assert merged == {"a": {"b": {"c": 1, "d": 3, "e": 4}}, "kept": True, "new": "x"}


def test_deep_merge_by_identity_key_keeps_existing_order_then_new_items() -> None:
    # given
    existing = {"items": [{"id": 2, "qty": 1}, {"id": 1, "qty": 1, "note": "gift"}]}
    incoming = {"items": [{"id": 3, "qty": 5}, {"id": 1, "qty": 2}]}
    # when
    merged = DeepMergeStrategy(list_identity_key="id").merge(existing, incoming)
    # then
    assert merged == {
        "items": [{"id": 2, "qty": 1}, {"id": 1, "qty": 2, "note": "gift"}, {"id": 3, "qty": 5}]
    }


def test_deep_merge_by_identity_key_keeps_items_the_incoming_list_lacks() -> None:
    # when
    merged = DeepMergeStrategy(list_identity_key="id").merge(
        {"items": [{"id": 1}, {"id": 2}]}, {"items": []}
    )
    # then
    assert merged == {"items": [{"id": 1}, {"id": 2}]}


def test_deep_merge_tells_boolean_ids_from_numbers() -> None:
    # when
    merged = DeepMergeStrategy(list_identity_key="id").merge(
        {"items": [{"id": 1}]}, {"items": [{"id": True}]}
    )
    # then
    assert merged == {"items": [{"id": 1}, {"id": True}]}
    assert [type(item["id"]) for item in merged["items"]] == [int, bool]


@pytest.mark.parametrize(
    "strategy",
    [DeepMergeStrategy(), DeepMergeStrategy(list_identity_key="id")],
    ids=["no identity key", "items without the key"],
)
def test_deep_merge_replaces_a_list_it_cannot_match_by_identity(
    strategy: DeepMergeStrategy,
) -> None:
    # when
    merged = strategy.merge({"tags": ["a", "b"]}, {"tags": ["c"]})
    # then
    assert merged == {"tags": ["c"]}


def test_deep_merge_with_append_lists_concatenates_lists() -> None:
    # given
    strategy = DeepMergeStrategy(list_identity_key="id", append_lists=True)
    # when
    merged = strategy.merge({"log": [{"id": 1}], "t": ("a",)}, {"log": [{"id": 1}], "t": ("b",)})
    # then
    assert merged == {"log": [{"id": 1}, {"id": 1}], "t": ("a", "b")}


def test_deep_merge_lets_an_incoming_none_overwrite_a_value() -> None:
    # when
    merged = DeepMergeStrategy().merge({"email": "john@example.com", "a": {"b": 1}}, {"a": None})
    # then
    assert merged == {"email": "john@example.com", "a": None}


def test_deep_merge_between_two_models_returns_a_validated_model_of_their_class() -> None:
    # when
    merged = DeepMergeStrategy().merge(
        Customer(name="John", address={"city": "Paris"}),
        Customer(name="Johnny", address={"zip": "75001"}),
    )
    # then
    assert isinstance(merged, Customer)
    assert merged.address == {"city": "Paris", "zip": "75001"}
    assert merged.name == "Johnny"


# ---------------------------------------------------------------- TimestampStrategy


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)),
        ("2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00Z"),
        (1_700_000_000, 1_700_000_000.5),
        (datetime(2024, 1, 1, 12, tzinfo=UTC), "2024-01-01T13:00:00+00:00"),
    ],
    ids=["datetimes", "ISO strings", "POSIX seconds", "mixed"],
)
def test_the_side_with_the_newer_timestamp_wins_whole(older: Any, newer: Any) -> None:
    # given
    strategy = TimestampStrategy("changed_at")
    old = {"name": "John", "email": "j@example.com", "changed_at": older}
    new = {"name": "Johnny", "changed_at": newer}
    # when / then
    assert strategy.merge(old, new) == new
    assert strategy.merge(new, old) == new


def test_on_a_timestamp_tie_the_incoming_side_wins() -> None:
    # when
    merged = TimestampStrategy().merge(
        {"name": "John", "updated_at": "2024-01-01T00:00:00+00:00"},
        {"name": "Johnny", "updated_at": datetime(2024, 1, 1, tzinfo=UTC)},
    )
    # then
    assert merged["name"] == "Johnny"


def test_naive_datetimes_are_read_as_utc() -> None:
    # when
    merged = TimestampStrategy().merge(
        {"name": "John", "updated_at": "2024-01-01T10:00:00+02:00"},
        {"name": "Johnny", "updated_at": datetime(2024, 1, 1, 9)},  # naive
    )
    # then
    assert merged["name"] == "Johnny"


@pytest.mark.parametrize("missing", [{}, {"updated_at": None}], ids=["no field", "None"])
def test_a_side_without_a_timestamp_loses_to_the_other(missing: dict[str, Any]) -> None:
    # given
    stamped = {"name": "John", "updated_at": "2024-01-01T00:00:00Z"}
    unstamped = {"name": "Johnny", **missing}
    # when / then
    assert TimestampStrategy().merge(stamped, unstamped) == stamped
    assert TimestampStrategy().merge(unstamped, stamped) == stamped


def test_when_neither_side_has_a_timestamp_the_conflict_is_unresolvable() -> None:
    # when
    with pytest.raises(UnresolvableConflictError) as raised:
        TimestampStrategy().merge({"name": "John"}, {"name": "Johnny"})
    # then
    assert raised.value.field_path == "updated_at"


@pytest.mark.parametrize("stamp", ["yesterday", True, [2024]], ids=repr)
def test_an_unreadable_timestamp_is_rejected_naming_the_field(stamp: Any) -> None:
    # when
    with pytest.raises(ConflictResolutionError) as raised:
        TimestampStrategy().merge({"updated_at": stamp}, {"updated_at": 1})
    # then
    assert "'updated_at'" in str(raised.value)


def test_per_field_timestamps_take_each_field_from_the_side_that_changed_it_last() -> None:
    # given
    strategy = TimestampStrategy(per_field_timestamps="field_timestamps")
    existing = {
        "name": "John",
        "email": "old@example.com",
        "updated_at": 20,
        "field_timestamps": {"name": 15, "email": 10},
    }
    incoming = {
        "name": "Johnny",
        "email": "new@example.com",
        "updated_at": 12,
        "field_timestamps": {"name": 5, "email": 12},
    }
    # when
    merged = strategy.merge(existing, incoming)
    # then
    assert merged == {
        "name": "John",
        "email": "new@example.com",
        "updated_at": 20,
        "field_timestamps": {"name": 15, "email": 12},
    }


def test_a_field_without_its_own_timestamps_goes_by_the_document_s_timestamp() -> None:
    # given
    strategy = TimestampStrategy(per_field_timestamps="field_timestamps")
    # when
    merged = strategy.merge(
        {"name": "John", "city": "Paris", "updated_at": 1, "field_timestamps": {"name": 9}},
        {"name": "Johnny", "city": "Lyon", "updated_at": 2, "field_timestamps": {}},
    )
    # then
    assert (merged["name"], merged["city"]) == ("John", "Lyon")


def test_a_changed_field_without_any_timestamp_is_an_unresolvable_conflict() -> None:
    # given
    strategy = TimestampStrategy(per_field_timestamps="field_timestamps")
    # when
    with pytest.raises(UnresolvableConflictError) as raised:
        strategy.merge({"name": "John", "city": "Paris"}, {"name": "John", "city": "Lyon"})
    # then
    assert (raised.value.field_path, raised.value.existing_value) == ("city", "Paris")


def test_timestamp_merge_between_two_models_returns_the_newer_model() -> None:
    # given
    older = Customer(name="John", updated_at=datetime(2024, 1, 1, tzinfo=UTC))
    newer = Customer(name="Johnny", updated_at=datetime(2024, 3, 1, tzinfo=UTC))
    # when
    merged = TimestampStrategy().merge(newer, older)
    # then
    assert merged == newer
    assert merged is not newer


# ---------------------------------------------------------------- UnionStrategy


def test_union_unites_lists_without_duplicates_existing_order_first() -> None:
    # when
    merged = UnionStrategy().merge({"tags": ["b", "a"]}, {"tags": ["c", "a", "d", "c"]})
    # then
    assert merged == {"tags": ["b", "a", "c", "d"]}


def test_union_compares_dicts_by_value_and_tells_booleans_from_numbers() -> None:
    # when
    merged = UnionStrategy().merge({"xs": [{"k": 1}, 1]}, {"xs": [{"k": 1}, True, {"k": 2}]})
    # then
    assert merged == {"xs": [{"k": 1}, 1, True, {"k": 2}]}
    assert [type(x) for x in merged["xs"]] == [dict, int, bool, dict]


def test_union_unites_sets_and_tuples_keeping_their_kind() -> None:
    # when
    merged = UnionStrategy().merge(
        {"s": {1, 2}, "t": (1, 2), "mixed": (1,)}, {"s": {2, 3}, "t": (3, 1), "mixed": [2]}
    )
    # then
    assert merged == {"s": {1, 2, 3}, "t": (1, 2, 3), "mixed": [1, 2]}


def test_union_recurses_into_dicts_and_lets_incoming_scalars_win() -> None:
    # when
    merged = UnionStrategy().merge(
        {"prefs": {"langs": ["fr"], "theme": "dark"}, "only_existing": 1},
        {"prefs": {"langs": ["en"], "theme": "light"}, "only_incoming": 2},
    )
    # then
    assert merged == {
        "prefs": {"langs": ["fr", "en"], "theme": "light"},
        "only_existing": 1,
        "only_incoming": 2,
    }


def test_union_between_two_models_returns_a_model_of_their_class() -> None:
    # when
    merged = UnionStrategy().merge(
        Customer(name="John", tags=["vip"]), Customer(name="John", tags=["new", "vip"])
    )
    # then
    assert merged == Customer(name="John", tags=["vip", "new"])


# ---------------------------------------------------------------- sides: dicts and models


def test_a_model_merged_with_a_dict_gives_a_dict() -> None:
    # when
    merged = DeepMergeStrategy().merge(Customer(name="John"), {"email": "j@example.com"})
    # then
    assert merged == {**Customer(name="John").model_dump(), "email": "j@example.com"}


def test_models_of_two_classes_are_not_merged() -> None:
    with pytest.raises(ConflictResolutionError, match="Customer and Product"):
        LastWinsStrategy().merge(Customer(name="John"), Product(sku="s-1"))


def test_a_merged_model_its_class_rejects_is_reported_as_a_conflict_resolution_error() -> None:
    # given: each side is valid, but not the start of one with the end of the other
    strategy = FieldMergeStrategy({"start": "incoming", "end": "existing"})
    # when / then
    with pytest.raises(ConflictResolutionError, match="merged Booking is invalid"):
        strategy.merge(Booking(start=1, end=5), Booking(start=6, end=9))


def test_a_side_that_is_neither_a_mapping_nor_a_model_is_rejected() -> None:
    with pytest.raises(ConflictResolutionError, match="list"):
        UnionStrategy().merge(["a"], {"a": 1})  # type: ignore[call-overload]


def test_merging_models_leaves_both_models_as_they_were() -> None:
    # given
    existing = Customer(name="John", tags=["vip"], address={"city": "Paris"})
    incoming = Customer(name="Johnny", tags=["new"], address={"zip": "75001"})
    before = (existing.model_copy(deep=True), incoming.model_copy(deep=True))
    # when
    merged = UnionStrategy().merge(existing, incoming)
    merged.tags.append("changed")
    merged.address["changed"] = "yes"
    # then
    assert (existing, incoming) == before


# ---------------------------------------------------------------- properties, checked by hypothesis

KEYS = st.sampled_from(["a", "b", "c"])
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.text("xyz", max_size=2)
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=10,
)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=4)


def entity_lists(*, unique: bool) -> st.SearchStrategy[list[dict[str, Any]]]:
    entities = st.fixed_dictionaries({"id": st.integers(0, 5)}, optional={"a": VALUES, "b": VALUES})
    if unique:
        return st.lists(entities, max_size=5, unique_by=lambda entity: entity["id"])
    return st.lists(entities, max_size=6)


def with_fields(
    documents: st.SearchStrategy[dict[str, Any]], **fields: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda document, extra: {**document, **extra}, documents, st.fixed_dictionaries(fields)
    )


DOCUMENTS_WITH_ITEMS = with_fields(DOCUMENTS, items=entity_lists(unique=True))
STAMPS = st.integers(0, 4) | st.sampled_from(["2024-01-01T00:00:00Z", "2024-06-01T00:00:00+00:00"])
TIMESTAMPED = with_fields(DOCUMENTS, updated_at=STAMPS)
FIELD_TIMESTAMPED = with_fields(
    DOCUMENTS, updated_at=STAMPS, field_timestamps=st.dictionaries(KEYS, st.integers(0, 4))
)


@dataclass(frozen=True, repr=False)
class Case:
    name: str
    strategy: MergeStrategy
    documents: st.SearchStrategy[dict[str, Any]]

    def __repr__(self) -> str:
        return self.name


SELF_MERGING_CASES = [
    Case("last wins", LastWinsStrategy(), DOCUMENTS_WITH_ITEMS),
    Case(
        "field merge",
        FieldMergeStrategy(
            {"a": "existing", "b": UnionStrategy(), "c": "refuse", "items": DeepMergeStrategy("id")}
        ),
        DOCUMENTS_WITH_ITEMS,
    ),
    Case("deep merge", DeepMergeStrategy(), DOCUMENTS_WITH_ITEMS),
    Case("deep merge by id", DeepMergeStrategy(list_identity_key="id"), DOCUMENTS_WITH_ITEMS),
    Case("timestamp", TimestampStrategy(), TIMESTAMPED),
    Case(
        "timestamp per field",
        TimestampStrategy(per_field_timestamps="field_timestamps"),
        FIELD_TIMESTAMPED,
    ),
    Case("union", UnionStrategy(), DOCUMENTS_WITH_ITEMS),
]
ALL_CASES = [
    *[case for case in SELF_MERGING_CASES if case.name != "field merge"],
    Case(  # "refuse" would raise on two unrelated documents
        "field merge",
        FieldMergeStrategy(
            {"a": "existing", "b": UnionStrategy(), "items": DeepMergeStrategy("id")}
        ),
        DOCUMENTS_WITH_ITEMS,
    ),
    Case("deep merge appending", DeepMergeStrategy("id", append_lists=True), DOCUMENTS_WITH_ITEMS),
]


def containers(value: Any) -> Iterator[object]:
    """Yield every mutable container inside ``value``, ``value`` included."""
    if isinstance(value, dict | list | set):
        yield value
    children = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list | tuple | set):
        for child in children:
            yield from containers(child)


def scribble_on(value: Any) -> None:
    """Change every mutable container inside ``value``."""
    for container in list(containers(value)):
        if isinstance(container, dict):
            container["scribbled"] = True
        elif isinstance(container, list):
            container.append("scribbled")
        elif isinstance(container, set):
            container.add("scribbled")


@pytest.mark.parametrize("case", SELF_MERGING_CASES, ids=lambda case: case.name)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_merging_a_document_with_itself_returns_it(case: Case, data: st.DataObject) -> None:
    # given
    document = data.draw(case.documents)
    # when
    merged = case.strategy.merge(document, copy.deepcopy(document))
    # then
    assert merged == document


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.name)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_merging_never_mutates_the_inputs(case: Case, data: st.DataObject) -> None:
    # given
    existing, incoming = data.draw(case.documents), data.draw(case.documents)
    before = copy.deepcopy((existing, incoming))
    # when
    case.strategy.merge(existing, incoming)
    # then
    assert (existing, incoming) == before


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.name)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_result_shares_no_container_with_the_inputs(case: Case, data: st.DataObject) -> None:
    # given
    existing, incoming = data.draw(case.documents), data.draw(case.documents)
    # when
    merged = case.strategy.merge(existing, incoming)
    # then: no container of the result is one of the inputs'
    input_ids = {id(container) for container in containers([existing, incoming])}
    assert not [c for c in containers(merged) if id(c) in input_ids]
    # and changing the inputs leaves the result as it was
    merged_before = copy.deepcopy(merged)
    scribble_on([existing, incoming])
    assert merged == merged_before
    # and changing the result leaves the inputs as they are
    inputs_before = copy.deepcopy((existing, incoming))
    scribble_on(merged)
    assert (existing, incoming) == inputs_before


@settings(max_examples=150, deadline=None)
@given(existing=entity_lists(unique=False), incoming=entity_lists(unique=False))
def test_deep_merge_by_identity_key_keeps_each_id_once_existing_order_first(
    existing: list[dict[str, Any]], incoming: list[dict[str, Any]]
) -> None:
    # when
    merged = DeepMergeStrategy(list_identity_key="id").merge(
        {"items": existing}, {"items": incoming}
    )
    # then
    ids = [item["id"] for item in merged["items"]]
    assert ids == list(dict.fromkeys(item["id"] for item in [*existing, *incoming]))


@settings(max_examples=150, deadline=None)
@given(existing=DOCUMENTS_WITH_ITEMS, incoming=DOCUMENTS_WITH_ITEMS)
def test_union_is_idempotent(existing: dict[str, Any], incoming: dict[str, Any]) -> None:
    # given
    strategy = UnionStrategy()
    # when
    merged = strategy.merge(existing, incoming)
    # then
    assert strategy.merge(merged, incoming) == merged


LIST_DOCUMENTS = st.dictionaries(KEYS, st.lists(VALUES, max_size=5), max_size=3)


@settings(max_examples=150, deadline=None)
@given(existing=LIST_DOCUMENTS, incoming=LIST_DOCUMENTS)
def test_union_contains_every_item_of_both_sides(
    existing: dict[str, list[Any]], incoming: dict[str, list[Any]]
) -> None:
    # when
    merged = UnionStrategy().merge(existing, incoming)
    # then
    assert set(merged) == set(existing) | set(incoming)
    for key, items in merged.items():
        for item in [*existing.get(key, []), *incoming.get(key, [])]:
            assert any(same_json(item, united) for united in items)
        assert items[: len(existing.get(key, []))] == existing.get(key, [])


def same_json(first: Any, second: Any) -> bool:
    """Equality that tells booleans from numbers, as JSON does."""
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(same_json(first[k], second[k]) for k in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(map(same_json, first, second))
    return type(first) is type(second) and bool(first == second)
