"""SpecificationBuilder and QueryOptions, run in memory on plain rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from cqrs_ddd_advanced_core.projections import QueryOptions, SpecificationBuilder
from cqrs_ddd_core import ValidationError
from cqrs_ddd_core.domain.specification import (
    AndSpecification,
    FieldSpecification,
    NotSpecification,
    OrSpecification,
)

ORDERS: list[dict[str, Any]] = [
    {"id": 1, "customer_id": "cust_123", "status": "pending", "total": 150, "created_at": 3},
    {"id": 2, "customer_id": "cust_123", "status": "shipped", "total": 300, "created_at": 5},
    {"id": 3, "customer_id": "cust_123", "status": "confirmed", "total": 90, "created_at": 7},
    {"id": 4, "customer_id": "cust_999", "status": "pending", "total": 500, "created_at": 9},
    {"id": 5, "customer_id": "cust_123", "status": "confirmed", "total": 120, "created_at": 11},
    {"id": 6, "customer_id": "cust_123", "status": "pending", "total": None, "created_at": 1},
]


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def matching(builder: SpecificationBuilder) -> list[int]:
    return ids(QueryOptions().with_specification(builder).with_ordering("id").apply(ORDERS))


def test_the_spec_quick_example_selects_the_customer_s_open_orders_newest_first() -> None:
    # given
    spec = (
        SpecificationBuilder()
        .where("customer_id", "==", "cust_123")
        .where("status", "in", ["pending", "confirmed"])
        .where("total", ">", 100)
    )
    options = (
        QueryOptions()
        .with_specification(spec)
        .with_ordering("created_at", desc=True)
        .with_pagination(limit=20, offset=0)
    )
    # when
    orders = options.apply(ORDERS)
    # then
    assert ids(orders) == [5, 1]


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("status", "==", "pending", [1, 4, 6]),
        ("status", "!=", "pending", [2, 3, 5]),
        ("total", "!=", 150, [2, 3, 4, 5, 6]),
        ("total", ">", 150, [2, 4]),
        ("total", ">=", 150, [1, 2, 4]),
        ("total", "<", 120, [3]),
        ("total", "<=", 120, [3, 5]),
        ("status", "in", ["shipped", "confirmed"], [2, 3, 5]),
        ("status", "not_in", ["shipped", "confirmed"], [1, 4, 6]),
        ("status", "contains", "ip", [2]),
        ("customer_id", "startswith", "cust_9", [4]),
        ("total", "is_null", True, [6]),
        ("total", "is_null", False, [1, 2, 3, 4, 5]),
    ],
)
def test_each_operator_selects_the_rows_it_names(
    field: str, operator: str, value: Any, expected: list[int]
) -> None:
    # when
    selected = matching(SpecificationBuilder().where(field, operator, value))
    # then
    assert selected == expected


def test_chained_where_calls_combine_with_and() -> None:
    # given
    builder = SpecificationBuilder().where("status", "==", "pending").where("total", ">", 200)
    # then
    assert matching(builder) == [4]
    assert isinstance(builder.build(), AndSpecification)


def test_where_returns_a_new_builder_and_leaves_the_receiver_unchanged() -> None:
    # given
    pending = SpecificationBuilder().where("status", "==", "pending")
    # when
    pending.where("total", ">", 200)
    # then
    assert matching(pending) == [1, 4, 6]


def test_or_groups_alternatives_and_an_and_group_narrows_them() -> None:
    # given
    shipped_or_big = SpecificationBuilder().or_(
        SpecificationBuilder().where("status", "==", "shipped"),
        SpecificationBuilder().where("total", ">=", 500),
    )
    # when
    narrowed = shipped_or_big.and_(SpecificationBuilder().where("customer_id", "==", "cust_123"))
    # then
    assert matching(shipped_or_big) == [2, 4]
    assert matching(narrowed) == [2]


def test_build_returns_a_tree_of_core_specifications_only() -> None:
    # given
    builder = (
        SpecificationBuilder()
        .where("status", "==", "pending")
        .or_(~SpecificationBuilder().where("total", ">", 100))
    )
    # when
    tree = builder.build()
    # then
    assert isinstance(tree, OrSpecification)
    first, second = tree.parts
    assert isinstance(first, FieldSpecification)
    assert isinstance(second, NotSpecification)
    assert isinstance(second.inner, FieldSpecification)


def test_not_of_a_comparison_is_met_by_rows_without_the_value() -> None:
    # given
    small = SpecificationBuilder().where("total", ">", 100).not_()
    # then
    assert matching(small) == [3, 6]


def test_an_empty_builder_is_met_by_every_row() -> None:
    assert matching(SpecificationBuilder()) == [1, 2, 3, 4, 5, 6]


def test_an_unknown_operator_is_rejected_with_a_typed_error() -> None:
    with pytest.raises(ValidationError, match="between"):
        SpecificationBuilder().where("total", "between", [1, 2])


def test_orderings_apply_in_order_with_none_first_ascending_and_last_descending() -> None:
    # given
    by_status_then_total = QueryOptions().with_ordering("status").with_ordering("total", desc=True)
    by_total = QueryOptions().with_ordering("total")
    # then
    assert ids(by_status_then_total.apply(ORDERS)) == [5, 3, 4, 1, 6, 2]
    assert ids(by_total.apply(ORDERS)) == [6, 3, 5, 1, 2, 4]


def test_pagination_skips_the_offset_and_keeps_at_most_the_limit() -> None:
    # given
    options = QueryOptions().with_ordering("id").with_pagination(limit=2, offset=3)
    # then
    assert ids(options.apply(ORDERS)) == [4, 5]
    assert ids(options.with_pagination(offset=4).apply(ORDERS)) == [5, 6]


def test_a_negative_limit_is_rejected_with_a_typed_error() -> None:
    with pytest.raises(ValidationError, match="limit"):
        QueryOptions().with_pagination(limit=-1)


def test_options_run_on_objects_as_well_as_mappings() -> None:
    # given
    @dataclass
    class Order:
        id: int
        total: int

    rows = [Order(1, 50), Order(2, 150), Order(3, 250)]
    options = (
        QueryOptions()
        .with_specification(SpecificationBuilder().where("total", ">", 100))
        .with_ordering("total", desc=True)
    )
    # then
    assert [order.id for order in options.apply(rows)] == [3, 2]
