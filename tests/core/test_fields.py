"""The field tables and the checks made before sending; the typed keywords and the models agree with the tables."""

from __future__ import annotations

import collections.abc
import datetime as dt
import types
import typing
from typing import Any

import attrs
import pytest

from kayse_async import models
from kayse_async._wire import params
from kayse_async._wire.fields import (
    CAMPAIGNS,
    CASE_LISTS,
    CASES,
    CLIENTS,
    Kind,
    Table,
    check_bulk_delete_ids,
    check_fields,
    check_page,
    prepare,
    schema,
)
from kayse_async.errors import ValidationError

CLIENT = {"external_source": "manual", "external_source_id": "e1", "first_name": "A", "last_name": "B"}
CAMPAIGN = {"name": "n", "agent_id": "a", "case_list_id": 1, "send_sms_before_call": False, "sms_before_call_text": "t"}


def test_create_sends_only_given_fields() -> None:
    """A create sends the fields given and nothing else."""
    assert check_fields(CLIENTS, {**CLIENT, "city": "NYC"}, mode="create") == {**CLIENT, "city": "NYC"}


def test_update_nulls_only_the_optional_fields_of_the_put_table() -> None:
    """A full replacement nulls the PUT table's optional fields left out, and never the fields outside it."""
    body = check_fields(CLIENTS, {"city": "LA"}, mode="update")
    assert body["city"] == "LA"
    assert body["email"] is None
    assert body["case_ids"] is None
    assert "first_name" not in body  # required: the server keeps it
    assert "voice_calls_opted_out" not in body
    assert "gender" not in body
    cases = check_fields(CASES, {"status": "closed"}, mode="update")
    assert "client_ids" not in cases
    assert "opt_out_voice_calls" not in cases
    assert cases["court_date"] is None


def test_update_never_sends_null_for_a_field_outside_the_put_table() -> None:
    """None for an opt-out flag on an update means 'leave it': nothing is sent; a value is sent."""
    assert "voice_calls_opted_out" not in check_fields(CLIENTS, {"voice_calls_opted_out": None}, mode="update")
    assert check_fields(CLIENTS, {"voice_calls_opted_out": False}, mode="update")["voice_calls_opted_out"] is False
    assert "opt_out_voice_calls" not in check_fields(CASES, {"opt_out_voice_calls": None}, mode="update")


@pytest.mark.parametrize("missing", sorted(CLIENT))
def test_create_names_each_missing_required_field(missing: str) -> None:
    """Each required field left out of a create is named."""
    fields = {k: v for k, v in CLIENT.items() if k != missing}
    with pytest.raises(ValidationError) as info:
        check_fields(CLIENTS, fields, mode="create")
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
    """A value of the wrong kind is refused, naming the field and why."""
    with pytest.raises(ValidationError, match=reason) as info:
        check_fields(CLIENTS, {**CLIENT, field: value}, mode="create")
    assert info.value.field.startswith(field)


def test_dates_are_accepted_as_date_objects_and_strings() -> None:
    """datetime.date objects are sent as YYYY-MM-DD; valid strings as given."""
    fields = {**CLIENT, "date_of_birth": dt.date(1990, 1, 15), "date_of_death": "2020-01-01"}
    body = check_fields(CLIENTS, fields, mode="create")
    assert (body["date_of_birth"], body["date_of_death"]) == ("1990-01-15", "2020-01-01")


def test_unknown_names_are_refused_with_a_suggestion() -> None:
    """A name outside the table is refused before sending, with the closest known name."""
    with pytest.raises(ValidationError, match="did you mean first_name") as info:
        check_fields(CLIENTS, {**CLIENT, "frist_name": "x"}, mode="create")
    assert info.value.field == "frist_name"
    with pytest.raises(ValidationError, match="set by the server") as info:
        check_fields(CASE_LISTS, {"name": "L", "case_ids": [1]}, mode="create")
    assert info.value.field == "case_ids"


def test_extra_body_carries_unknown_fields_checked_as_json() -> None:
    """extra_body adds fields the SDK does not know (JSON only), and refuses a known field's name."""
    assert prepare(CLIENTS, CLIENT, mode="create", extra_body={"tier": {"a": [1]}})["tier"] == {"a": [1]}
    with pytest.raises(ValidationError, match="not JSON") as info:
        prepare(CLIENTS, CLIENT, mode="create", extra_body={"tier": object()})
    assert info.value.field == "extra_body.tier"
    with pytest.raises(ValidationError, match="pass it by name") as info:
        prepare(CLIENTS, CLIENT, mode="create", extra_body={"city": "x"})
    assert info.value.field == "extra_body.city"


def test_path_prefix_names_the_item_of_a_bulk_payload() -> None:
    """A bulk item's errors name it by index."""
    with pytest.raises(ValidationError) as info:
        prepare(CASES, {"case_number": "C"}, path="cases[3].")
    assert info.value.field == "cases[3].external_source"


def test_prepare_modes() -> None:
    """create refuses an id, update leaves it out, upsert leads with it; campaigns have no update."""
    with pytest.raises(ValidationError) as info:
        prepare(CLIENTS, {**CLIENT, "id": 4}, mode="create")
    assert info.value.field == "id"
    assert "id" not in prepare(CLIENTS, {"id": 4, "city": "X"}, mode="update")
    assert next(iter(prepare(CLIENTS, {"id": 4, "city": "X"}))) == "id"
    assert "id" not in prepare(CLIENTS, CLIENT)
    with pytest.raises(ValidationError, match="cannot be updated"):
        prepare(CAMPAIGNS, {**CAMPAIGN, "id": 3})


def test_a_model_sends_what_it_holds_and_keeps_what_only_answers_carry() -> None:
    """A model: None fields are not given, extra fields travel, answer-only fields stay behind."""
    client = models.Client(id=7, first_name="A", voice_calls_opted_out=None, extra={"tier": "gold", "gone": None})
    body = prepare(CLIENTS, client)
    assert body["id"] == 7
    assert body["first_name"] == "A"
    assert body["tier"] == "gold"
    assert "voice_calls_opted_out" not in body
    assert "gone" not in body
    assert body["email"] is None
    listed = models.CaseList(name="L", filter={}, case_ids=[1, 2])
    assert prepare(CASE_LISTS, listed) == {"name": "L", "filter": {}}


def test_rules_belong_to_the_fields_not_to_a_table_object() -> None:
    """A copy of a table checks the same rules: weekdays and 'needs a filter' are properties of the fields."""
    campaigns, lists = Table("copy", *CAMPAIGNS.fields), Table("copy", *CASE_LISTS.fields)
    with pytest.raises(ValidationError) as info:
        check_fields(campaigns, {**CAMPAIGN, "days": ["Monday", "Funday"]}, mode="create")
    assert info.value.field == "days[1]"
    with pytest.raises(ValidationError, match="requires filter") as info:
        check_fields(lists, {"name": "L", "include_ids": [1]}, mode="create")
    assert info.value.field == "include_ids"
    assert check_fields(lists, {"name": "L", "filter": {}, "include_ids": [1]}, mode="create")["include_ids"] == [1]


def test_campaign_callback_delays_and_ids_are_checked() -> None:
    """Callback delays are counts; case_list_id is an integer id."""
    with pytest.raises(ValidationError) as info:
        check_fields(CAMPAIGNS, {**CAMPAIGN, "callback_delays": [{"minutes": -1}]}, mode="create")
    assert info.value.field == "callback_delays[0].minutes"
    with pytest.raises(ValidationError) as info:
        check_fields(CAMPAIGNS, {**CAMPAIGN, "case_list_id": "123"}, mode="create")
    assert info.value.field == "case_list_id"


def test_bulk_delete_ids_are_deduplicated_in_order_and_checked() -> None:
    """Bulk delete ids keep their first order, once each; bad ones are named by index."""
    assert check_bulk_delete_ids([3, 1, 3, 2, 1]) == [3, 1, 2]
    for bad, field in (([], "ids"), ([1, "2"], "ids[1]"), ("12", "ids"), ([1, -4], "ids[1]")):
        with pytest.raises(ValidationError) as info:
            check_bulk_delete_ids(bad)
        assert info.value.field == field


@pytest.mark.parametrize("size", [0, 101, True, 2.5])
def test_page_size_out_of_range_is_refused(size: Any) -> None:
    """page_size is an integer from 1 to 100."""
    with pytest.raises(ValidationError, match="page_size"):
        check_page("page_size", size, 100)


def test_schema_describes_the_table_as_the_metadata_endpoint_does() -> None:
    """schema() gives every field with the metadata endpoint's type names (arrays with their items)."""
    described = {field.name: field for field in schema(CAMPAIGNS).fields}
    assert list(described) == [field.name for field in CAMPAIGNS.fields]
    assert (described["case_list_id"].type, described["case_list_id"].required) == ("uint", True)
    assert (described["days"].type, described["days"].extra) == ("array", {"items": "string"})
    assert described["is_obo"].type == "bool"
    assert not described["is_obo"].required


# The typed keywords and the models, checked against the tables.

_PARAM_TYPES: dict[Kind, Any] = {
    Kind.STR: str,
    Kind.ID: int,
    Kind.COUNT: int,
    Kind.BOOL: bool,
    Kind.DATE: params.Date,
    Kind.OBJECT: collections.abc.Mapping[str, Any],
    Kind.ID_LIST: collections.abc.Sequence[int],
    Kind.WEEKDAYS: collections.abc.Sequence[str],
    Kind.CALLBACK_DELAYS: collections.abc.Sequence[models.CallbackDelay | params.CallbackDelayFields],
}
"""The keyword type of each kind (optional keywords also take None)."""

_MODEL_TYPES: dict[Kind, Any] = {
    Kind.STR: str,
    Kind.ID: int,
    Kind.COUNT: int,
    Kind.BOOL: bool,
    Kind.DATE: dt.date,
    Kind.OBJECT: dict[str, Any],
    Kind.ID_LIST: list[int],
    Kind.WEEKDAYS: list[str],
    Kind.CALLBACK_DELAYS: list[models.CallbackDelay],
}
"""The type a model's attribute holds for each kind (beside None, and what a lenient reading adds)."""

_PARAMS = [
    (CLIENTS, params.ClientCreate, True),
    (CLIENTS, params.ClientUpdate, False),
    (CASES, params.CaseCreate, True),
    (CASES, params.CaseUpdate, False),
    (CASE_LISTS, params.CaseListCreate, True),
    (CAMPAIGNS, params.CampaignCreate, True),
]


def _union(annotation: Any) -> set[Any]:
    args = typing.get_args(annotation)
    return set(args) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else {annotation}


@pytest.mark.parametrize(("table", "typed", "create"), _PARAMS, ids=lambda p: getattr(p, "__name__", ""))
def test_typed_keywords_match_the_table(table: Table, typed: Any, create: bool) -> None:
    """Each TypedDict has the extras, the table's names, its required flags (creates) and each kind's keyword type."""
    hints = typing.get_type_hints(typed, include_extras=True)  # Required[...] kept (annotations are strings)
    extras = typing.get_type_hints(params.Extras)
    assert {name: hints.pop(name) for name in extras} == extras  # every create, update and patch takes them
    assert set(hints) == set(table.by_name)
    marked = {name for name, hint in hints.items() if typing.get_origin(hint) is typing.Required}
    assert marked == ({field.name for field in table.fields if field.required} if create else set())
    hints = {name: typing.get_args(hint)[0] if name in marked else hint for name, hint in hints.items()}
    for field in table.fields:
        expected = _union(_PARAM_TYPES[field.kind]) | ({type(None)} if not field.required else set())
        assert _union(hints[field.name]) == expected, f"{typed.__name__}.{field.name}: {hints[field.name]}"


@pytest.mark.parametrize(
    ("table", "model"),
    [(CLIENTS, models.Client), (CASES, models.Case), (CASE_LISTS, models.CaseList), (CAMPAIGNS, models.Campaign)],
    ids=lambda p: getattr(p, "name", ""),
)
def test_models_hold_every_table_field_with_its_type(table: Table, model: type[Any]) -> None:
    """A model's attributes are the table's fields, the answer-only fields, id and extra; each of its kind's type."""
    names = [attribute.name for attribute in attrs.fields(model)]
    assert set(names) == {*table.by_name, *table.read_only, "id", "extra"}
    hints = typing.get_type_hints(model)
    for field in table.fields:
        assert _MODEL_TYPES[field.kind] in _union(hints[field.name]), f"{model.__name__}.{field.name}"
