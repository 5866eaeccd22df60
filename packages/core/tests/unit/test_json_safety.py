from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from cqrs_ddd_core.domain import AggregateRoot, DomainEvent
from cqrs_ddd_core.exceptions import EventSerializationError, ValidationError
from cqrs_ddd_core.serialization import encode_event, encode_state, json_safety_issues
from cqrs_ddd_core.serialization.json_safety import MAX_DEPTH, MAX_INTEGER_DIGITS


class SensorRead(DomainEvent):
    reading: float = 0.0
    label: str = "ok"
    blob: dict[str, Any] = {}
    items: list[Any] = []


NON_FINITE_FLOATS = [
    pytest.param(float("nan"), "nan", id="nan"),
    pytest.param(float("inf"), "inf", id="+inf"),
    pytest.param(float("-inf"), "-inf", id="-inf"),
]
UNSAFE_STRINGS = [
    pytest.param("before\x00after", "NUL", id="nul"),
    pytest.param("lone \ud800 surrogate", "surrogate", id="lone-surrogate"),
]


def nested_dicts(levels: int, leaf: Any = None) -> Any:
    """Return ``leaf`` under ``levels`` dicts, each holding the next under key "a"."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def nested_lists(levels: int, leaf: Any = None) -> Any:
    """Return ``leaf`` under ``levels`` one-element lists."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


# ------------------------------------------------------------------ encode_event


@pytest.mark.parametrize(("value", "shown"), NON_FINITE_FLOATS)
def test_a_non_finite_float_field_is_rejected_naming_the_event_and_field(
    value: float, shown: str
) -> None:
    # when
    with pytest.raises(EventSerializationError) as caught:
        encode_event(SensorRead(reading=value))
    # then
    error = caught.value
    assert error.event_type == "SensorRead"
    assert error.field == "reading"
    assert shown in error.reason
    assert "'SensorRead'" in str(error)
    assert "'reading'" in str(error)


@pytest.mark.parametrize(("value", "named"), UNSAFE_STRINGS)
def test_a_string_field_that_is_not_portable_is_rejected_naming_the_field(
    value: str, named: str
) -> None:
    # when
    with pytest.raises(EventSerializationError) as caught:
        encode_event(SensorRead(label=value))
    # then
    assert caught.value.event_type == "SensorRead"
    assert caught.value.field == "label"
    assert named in caught.value.reason


@pytest.mark.parametrize(("value", "named"), UNSAFE_STRINGS)
def test_an_unsafe_string_deep_in_a_payload_is_rejected_naming_its_path(
    value: str, named: str
) -> None:
    # given
    event = SensorRead(blob={"rows": [{"name": "fine"}, {"name": "fine"}, {"name": value}]})
    # when
    with pytest.raises(EventSerializationError) as caught:
        encode_event(event)
    # then
    assert caught.value.field == "blob.rows[2].name"
    assert named in caught.value.reason
    assert "blob.rows[2].name" in str(caught.value)


def test_an_unsafe_dict_key_in_a_payload_is_rejected_naming_the_dict() -> None:
    # when
    with pytest.raises(EventSerializationError) as caught:
        encode_event(SensorRead(blob={"inner": {"k\x00": 1}}))
    # then
    assert caught.value.field == "blob.inner"
    assert "key" in caught.value.reason


@pytest.mark.parametrize(("value", "named"), UNSAFE_STRINGS)
def test_an_unsafe_string_in_metadata_is_rejected_naming_its_path(value: str, named: str) -> None:
    # when
    with pytest.raises(EventSerializationError) as caught:
        encode_event(SensorRead(metadata={"source": {"note": value}}))
    # then
    assert caught.value.event_type == "SensorRead"
    assert caught.value.field == "metadata.source.note"
    assert named in caught.value.reason


@pytest.mark.parametrize(("value", "shown"), NON_FINITE_FLOATS)
def test_a_non_finite_float_in_metadata_is_rejected_naming_its_path(
    value: float, shown: str
) -> None:
    # when
    with pytest.raises(EventSerializationError) as caught:
        encode_event(SensorRead(metadata={"calibration": value}))
    # then
    assert caught.value.field == "metadata.calibration"
    assert shown in caught.value.reason


@pytest.mark.parametrize(("value", "shown"), NON_FINITE_FLOATS)
def test_a_non_finite_float_in_a_free_form_payload_value_is_rejected(
    value: float, shown: str
) -> None:
    # when
    with pytest.raises(EventSerializationError) as caught:
        encode_event(SensorRead(items=[1.5, value]))
    # then
    assert caught.value.field == "items[1]"
    assert shown in caught.value.reason


@pytest.mark.parametrize("nest", [nested_dicts, nested_lists])
def test_a_payload_nested_deeper_than_the_limit_is_rejected_naming_the_field(
    nest: Any,
) -> None:
    # given a field nested well past MAX_DEPTH (yet within what pydantic can dump)
    event = SensorRead(blob={"deep": nest(MAX_DEPTH + 20)})
    # when
    with pytest.raises(EventSerializationError) as caught:
        encode_event(event)
    # then
    assert caught.value.event_type == "SensorRead"
    assert caught.value.field.startswith("blob.deep")
    assert f"nests deeper than {MAX_DEPTH} levels" in caught.value.reason


def test_metadata_nested_deeper_than_the_limit_is_rejected_naming_metadata() -> None:
    # when
    with pytest.raises(EventSerializationError) as caught:
        encode_event(SensorRead(metadata={"deep": nested_dicts(MAX_DEPTH + 20)}))
    # then
    assert caught.value.field.startswith("metadata.deep")
    assert "nests deeper" in caught.value.reason


@pytest.mark.parametrize("nest", [nested_dicts, nested_lists])
def test_a_payload_nested_ten_thousand_levels_deep_is_rejected_with_a_typed_error(
    nest: Any,
) -> None:
    # given
    event = SensorRead(blob={"deep": nest(10_000)})
    # when / then
    with pytest.raises(EventSerializationError):
        encode_event(event)


def test_a_moderately_nested_payload_is_accepted() -> None:
    # given
    event = SensorRead(blob={"deep": nested_dicts(20, leaf=[1, "two", None, 3.5])})
    # when
    document = encode_event(event)
    # then
    assert document["payload"]["blob"] == {"deep": nested_dicts(20, leaf=[1, "two", None, 3.5])}


# ------------------------------------------------------------------ json_safety_issues


def test_a_portable_document_has_no_issues() -> None:
    # given
    document = {
        "event_type": "SensorRead",
        "version": 3,
        "metadata": {},
        "payload": {
            "reading": -0.0,
            "big": 2**70,
            "ok": True,
            "none": None,
            "text": "Grüße 東京 🚚 \t\n",
            "items": [1, 2.5e-300, [], {}, [{"name": "x"}]],
        },
    }
    # then
    assert list(json_safety_issues(document)) == []


def test_an_issue_is_reported_at_its_json_path() -> None:
    # given
    document = {"payload": {"items": [{"name": "a"}, {"name": "b"}, {"name": "c\x00"}]}}
    # when
    issues = list(json_safety_issues(document))
    # then
    assert issues == [("$.payload.items[2].name", "contains the NUL character")]


def test_every_issue_in_a_document_is_reported() -> None:
    # given
    document = {
        "a": float("nan"),
        "b": [1, float("inf"), "x\ud800"],
        "c": {"d": float("-inf")},
    }
    # when
    paths = {path for path, _ in json_safety_issues(document)}
    # then
    assert paths == {"$.a", "$.b[1]", "$.b[2]", "$.c.d"}


@pytest.mark.parametrize(("value", "shown"), NON_FINITE_FLOATS)
def test_a_non_finite_float_is_reported_with_its_value(value: float, shown: str) -> None:
    # when
    issues = list(json_safety_issues({"x": value}))
    # then
    assert issues == [("$.x", f"is {shown}, which JSON cannot represent")]


@pytest.mark.parametrize("key", [1, 2.5, None, ("a", "b")])
def test_a_non_string_dict_key_is_reported_at_its_dict(key: object) -> None:
    # when
    issues = list(json_safety_issues({"payload": {key: "value", "fine": 1}}))
    # then
    assert issues == [("$.payload", f"has a non-string key {key!r}")]


@pytest.mark.parametrize(("key", "named"), [("a\x00b", "NUL"), ("\udfff", "surrogate")])
def test_an_unsafe_string_key_is_reported_at_its_dict(key: str, named: str) -> None:
    # when
    issues = list(json_safety_issues({"payload": {key: 1}}))
    # then
    assert len(issues) == 1
    path, reason = issues[0]
    assert path == "$.payload"
    assert reason.startswith("has a key that")
    assert named in reason


@pytest.mark.parametrize("value", [Decimal("1.5"), {1, 2}, object(), b"bytes"])
def test_a_value_that_is_not_json_is_reported_with_its_type(value: object) -> None:
    # when
    issues = list(json_safety_issues({"x": value}))
    # then
    assert issues == [("$.x", f"holds a {type(value).__name__}, which is not a JSON value")]


def test_a_value_at_the_depth_limit_is_accepted_and_one_level_deeper_is_reported() -> None:
    # given
    at_limit = nested_lists(MAX_DEPTH, leaf=1)
    past_limit = nested_lists(MAX_DEPTH + 1, leaf=1)
    # then
    assert list(json_safety_issues(at_limit)) == []
    assert list(json_safety_issues(past_limit)) == [
        ("$" + "[0]" * (MAX_DEPTH + 1), f"nests deeper than {MAX_DEPTH} levels")
    ]


def test_a_custom_depth_limit_and_root_path_are_honoured() -> None:
    # when
    issues = list(json_safety_issues({"a": {"b": 1}}, path="$.metadata", max_depth=1))
    # then
    assert issues == [("$.metadata.a.b", "nests deeper than 1 levels")]


@pytest.mark.parametrize("nest", [nested_dicts, nested_lists])
def test_ten_thousand_levels_of_nesting_are_reported_once_without_exhausting_the_stack(
    nest: Any,
) -> None:
    # given
    hostile = {"payload": {"blob": nest(10_000, leaf="end")}}
    # when
    issues = list(json_safety_issues(hostile))
    # then
    assert len(issues) == 1
    path, reason = issues[0]
    assert reason == f"nests deeper than {MAX_DEPTH} levels"
    assert path.startswith("$.payload.blob")


# ------------------------------------------------------------------ keys at any depth


class Tagged(BaseModel):
    tags: dict[Any, Any] = {}


@dataclasses.dataclass
class Labelled:
    labels: dict[Any, Any]


class Carrier(DomainEvent):
    model: Tagged = Tagged()
    record: Any = None
    grouped: frozenset[Any] = frozenset()


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (Carrier(model=Tagged(tags={1: "a"})), "model.tags"),
        (Carrier(record=Labelled(labels={2.5: "x"})), "record.labels"),
        (Carrier(record=[Tagged(tags={None: 1})]), "record[0].tags"),
        (Carrier(grouped=frozenset({("a", 1)})), None),
    ],
    ids=["nested-model", "dataclass", "model-in-list", "set-without-mappings"],
)
def test_keys_that_are_not_strings_are_refused_at_any_depth(
    event: Carrier, field: str | None
) -> None:
    if field is None:
        assert encode_event(event)["payload"]["grouped"] == [["a", 1]]
        return
    with pytest.raises(EventSerializationError) as caught:
        encode_event(event)
    assert (caught.value.field, caught.value.reason) == (field, "has a key that is not a string")


def test_an_integer_of_4300_digits_is_kept_and_one_of_4301_refused() -> None:
    largest = 10**MAX_INTEGER_DIGITS - 1
    assert encode_event(SensorRead(items=[largest]))["payload"]["items"] == [largest]
    with pytest.raises(EventSerializationError) as caught:
        encode_event(SensorRead(items=[-(largest + 1)]))
    assert caught.value.field == "items[0]"
    assert "4300 digits" in caught.value.reason


class Account(AggregateRoot):
    notes: dict[Any, Any] = {}


def test_a_state_with_a_key_that_is_not_a_string_or_an_overlong_id_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        encode_state(Account(id="a" * 256, notes={"ok": {3: "three"}}))
    assert caught.value.fields == ("id", "$.notes.ok")
    assert encode_state(Account(id="a-1", notes={"ok": {"3": "three"}}))["notes"] == {
        "ok": {"3": "three"}
    }


def test_a_non_finite_float_is_refused_where_the_dump_would_write_null() -> None:
    # pydantic writes NaN and infinities as null unless a model says otherwise:
    # an aggregate's state, or a model nested in an event, would read back changed
    with pytest.raises(ValidationError) as state:
        encode_state(Account(id="a-1", notes={"ratio": float("inf")}))
    with pytest.raises(EventSerializationError) as nested:
        encode_event(Carrier(model=Tagged(tags={"ratio": float("nan")})))
    assert state.value.fields == ("$.notes.ratio",)
    assert (nested.value.field, "nan" in nested.value.reason) == ("model.tags.ratio", True)
