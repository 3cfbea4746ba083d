"""Checks made before sending: required fields, types, dates, ids, page sizes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kayse_async._wire.fields import (
    CAMPAIGN_FIELDS,
    CASE_FIELDS,
    CASE_LIST_FIELDS,
    CLIENT_FIELDS,
    check_bulk_delete_ids,
    check_fields,
    check_page_size,
)
from kayse_async.errors import ValidationError

CLIENT = {"external_source": "manual", "external_source_id": "e1", "first_name": "A", "last_name": "B"}


def test_create_sends_only_given_fields() -> None:
    assert check_fields(CLIENT_FIELDS, {**CLIENT, "city": "NYC"}, mode="create") == {**CLIENT, "city": "NYC"}


def test_update_sends_null_for_every_optional_field_not_given() -> None:
    body = check_fields(CLIENT_FIELDS, {"city": "LA"}, mode="update")
    assert body["city"] == "LA"
    assert body["email"] is None
    assert body["case_ids"] is None
    assert "first_name" not in body  # required: the server keeps it


@pytest.mark.parametrize("missing", sorted(CLIENT))
def test_create_names_each_missing_required_field(missing: str) -> None:
    fields = {k: v for k, v in CLIENT.items() if k != missing}
    with pytest.raises(ValidationError) as info:
        check_fields(CLIENT_FIELDS, fields, mode="create")
    assert info.value.field == missing


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("first_name", 5, "expected a string, got int"),
        ("first_name", "  ", "must not be empty"),
        ("first_name", None, "must not be null"),
        ("date_of_birth", "15/01/1990", "YYYY-MM-DD"),
        ("date_of_birth", "1990-02-30", "not a valid calendar date"),
        ("date_of_birth", dt.datetime(1990, 1, 1), "got a datetime"),
        ("case_ids", [1, True], r"case_ids\[1\]: expected an integer id, got bool"),
        ("case_ids", "1,2", "expected an array of integers"),
        ("case_ids", [0], "positive"),
        ("meta", [1], "expected an object"),
        ("meta", {"a": float("nan")}, "NaN"),
        ("voice_calls_opted_out", 1, "expected true or false"),
    ],
)
def test_bad_values_name_the_field_and_the_reason(field: str, value: Any, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as info:
        check_fields(CLIENT_FIELDS, {**CLIENT, field: value}, mode="create")
    assert info.value.field.startswith(field)


def test_dates_are_accepted_as_date_objects_and_strings() -> None:
    body = check_fields(
        CLIENT_FIELDS, {**CLIENT, "date_of_birth": dt.date(1990, 1, 15), "date_of_death": "2020-01-01"}, mode="create"
    )
    assert body["date_of_birth"] == "1990-01-15"
    assert body["date_of_death"] == "2020-01-01"


def test_unknown_fields_travel_when_json() -> None:
    assert check_fields(CLIENT_FIELDS, {**CLIENT, "new_field": {"a": [1]}}, mode="create")["new_field"] == {"a": [1]}
    with pytest.raises(ValidationError, match="new_field: object is not JSON"):
        check_fields(CLIENT_FIELDS, {**CLIENT, "new_field": object()}, mode="create")


def test_path_prefix_names_the_item_of_a_bulk_payload() -> None:
    with pytest.raises(ValidationError) as info:
        check_fields(CASE_FIELDS, {"case_number": "C"}, mode="create", path="cases[3].")
    assert info.value.field == "cases[3].external_source"


def test_case_list_include_ids_need_a_filter() -> None:
    with pytest.raises(ValidationError, match="requires filter") as info:
        check_fields(CASE_LIST_FIELDS, {"name": "L", "include_ids": [1]}, mode="create")
    assert info.value.field == "include_ids"
    assert check_fields(CASE_LIST_FIELDS, {"name": "L", "filter": {}, "include_ids": [1]}, mode="create")[
        "include_ids"
    ] == [1]


def test_campaign_weekdays_and_callback_delays_are_checked() -> None:
    base = {"name": "n", "agent_id": "a", "case_list_id": 1, "send_sms_before_call": False, "sms_before_call_text": "t"}
    with pytest.raises(ValidationError) as info:
        check_fields(CAMPAIGN_FIELDS, {**base, "days": ["Funday"]}, mode="create")
    assert info.value.field == "days[0]"
    with pytest.raises(ValidationError) as info:
        check_fields(CAMPAIGN_FIELDS, {**base, "callback_delays": [{"minutes": -1}]}, mode="create")
    assert info.value.field == "callback_delays[0].minutes"
    with pytest.raises(ValidationError) as info:
        check_fields(CAMPAIGN_FIELDS, {**base, "case_list_id": "123"}, mode="create")
    assert info.value.field == "case_list_id"


def test_bulk_delete_ids_are_deduplicated_in_order_and_checked() -> None:
    assert check_bulk_delete_ids([3, 1, 3, 2, 1]) == [3, 1, 2]
    for bad, field in (([], "ids"), ([1, "2"], "ids[1]"), ("12", "ids"), ([1, -4], "ids[1]")):
        with pytest.raises(ValidationError) as info:
            check_bulk_delete_ids(bad)
        assert info.value.field == field


@pytest.mark.parametrize("size", [0, 101, True, 2.5])
def test_page_size_out_of_range_is_refused(size: Any) -> None:
    with pytest.raises(ValidationError, match="page_size"):
        check_page_size(size)
