"""The one converter: round trips for every model, unknown fields kept, dates."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kayse_async import models
from kayse_async._wire.converter import MODEL_CLASSES, structure, unstructure

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
unknown_fields = st.dictionaries(st.text(min_size=1, max_size=12).map(lambda s: "x_" + s), json_values, max_size=3)


def strategy_for(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Instances of a model with every field drawn from its type (extra: unknown fields)."""
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    hints = attrs.resolve_types(cls)
    for field in attrs.fields(hints):
        kwargs[field.name] = strategy_for_type(field.type) if field.name != "extra" else unknown_fields
    return st.builds(cls, **kwargs)


def strategy_for_type(tp: Any) -> st.SearchStrategy[Any]:
    import typing

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        return st.one_of(*[strategy_for_type(a) for a in args])
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(0, 2**53)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if tp is str:
        return st.text(max_size=30)
    if tp is dt.date:
        return st.dates()
    if origin is list:
        return st.lists(strategy_for_type(args[0]), max_size=3)
    if origin is dict:
        if args[1] is Any:
            return st.dictionaries(st.text(max_size=8), json_values, max_size=3)
        return st.dictionaries(st.text(max_size=8), strategy_for_type(args[1]), max_size=2)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if attrs.has(tp):
        return strategy_for(tp)
    raise NotImplementedError(tp)


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_model_survives_json_round_trip(cls: type[Any], data: st.DataObject) -> None:
    value = data.draw(strategy_for(cls))
    wire = json.loads(json.dumps(unstructure(value)))
    assert structure(wire, cls) == value


def test_unknown_server_fields_are_kept_and_sent_back() -> None:
    wire = {"id": 7, "first_name": "Ada", "loyalty_tier": "gold", "extra": {"nested": True}}
    client = structure(wire, models.Client)
    assert client.extra == {"loyalty_tier": "gold", "extra": {"nested": True}}
    out = unstructure(client)
    assert out["loyalty_tier"] == "gold"
    assert out["extra"] == {"nested": True}
    assert out["first_name"] == "Ada"


def test_known_fields_win_over_extra_entries_of_the_same_name() -> None:
    client = models.Client(id=1, first_name="Real", extra={"first_name": "Stale"})
    assert unstructure(client)["first_name"] == "Real"


def test_unstructure_sends_every_field_with_null_for_unset() -> None:
    out = unstructure(models.Case(id=3, case_number="C-1"))
    assert out["court_date"] is None
    assert set(out) >= {f.name for f in attrs.fields(models.Case) if f.name != "extra"}


def test_dates_are_iso_strings_both_ways() -> None:
    client = structure({"date_of_birth": "1990-01-15", "date_of_death": "2020-02-03T00:00:00Z"}, models.Client)
    assert client.date_of_birth == dt.date(1990, 1, 15)
    assert client.date_of_death == dt.date(2020, 2, 3)
    assert unstructure(client)["date_of_birth"] == "1990-01-15"


def test_campaign_nested_objects_are_structured() -> None:
    campaign = structure(
        {
            "name": "c",
            "agent": {"id": 1, "name": "karen"},
            "stats": {"call_id_123": {"total_calls": 132}},
            "callback_delays": [{"minutes": 1, "hours": 0, "days": 0}],
        },
        models.Campaign,
    )
    assert campaign.agent == models.Agent(id=1, name="karen")
    assert campaign.stats == {"call_id_123": models.CampaignStats(total_calls=132)}
    assert campaign.callback_delays == [models.CallbackDelay(minutes=1)]


def test_structure_refuses_a_non_object() -> None:
    with pytest.raises(TypeError, match="expected a JSON object for Client"):
        structure([1, 2], models.Client)


def test_a_model_built_slot_by_slot_equals_one_built_by_init() -> None:
    data = {
        "id": 7,
        "first_name": "Ann",
        "date_of_birth": "1990-01-15",
        "case_ids": [1, 2],
        "meta": {"a": 1},
        "voice_calls_opted_out": False,
        "new_field": "kept",
    }
    built = structure(data, models.Client)
    assert built == models.Client(
        id=7,
        first_name="Ann",
        date_of_birth=dt.date(1990, 1, 15),
        case_ids=[1, 2],
        meta={"a": 1},
        voice_calls_opted_out=False,
        extra={"new_field": "kept"},
    )
    # The containers are the model's own copies, not the response's.
    assert built.case_ids is not data["case_ids"]
    assert built.meta is not data["meta"]
    # A field left out takes its default, and each instance gets its own extra dict.
    first, second = structure({"id": 1}, models.Client), structure({"id": 2}, models.Client)
    assert first.email is None
    assert first.extra == {}
    assert first.extra is not second.extra


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"date_of_birth": "1990-13-01"}, "date_of_birth: month must be in 1..12"),
        ({"date_of_birth": 19900101}, "date_of_birth: expected a YYYY-MM-DD date"),
        ({"case_ids": [1, "2"]}, "case_ids: expected an array of integers"),
        ({"case_ids": "1,2"}, "case_ids: expected an array"),
        ({"meta": ["not", "an", "object"]}, "meta: expected a JSON object, got list"),
    ],
)
def test_the_inline_paths_fall_back_to_the_hooks_and_their_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        structure(data, models.Client)


def test_a_timestamp_for_a_date_is_cut_to_its_date_by_the_hook() -> None:
    assert structure({"date_of_birth": "1990-01-15T10:00:00Z"}, models.Client).date_of_birth == dt.date(1990, 1, 15)


def test_a_class_with_a_validator_is_built_through_init() -> None:
    from kayse_async._wire.converter import _structure_hook_keeping_extra, builder_class, converter

    @attrs.frozen
    class Checked:
        n: int = attrs.field(validator=attrs.validators.gt(0))
        extra: dict[str, Any] = attrs.field(factory=dict)

    @attrs.frozen
    class Required:
        n: int
        extra: dict[str, Any] = attrs.field(factory=dict)

    assert builder_class(Checked) is None
    hook = _structure_hook_keeping_extra(converter, Checked)
    assert hook({"n": 3, "x": 1}, Checked) == Checked(n=3, extra={"x": 1})
    with pytest.raises(ValueError, match="'n' must be > 0"):
        hook({"n": 0}, Checked)
    # Slot by slot, a required field that is missing is still an error.
    assert builder_class(Required) is not None
    with pytest.raises(TypeError, match="n: missing"):
        _structure_hook_keeping_extra(converter, Required)({}, Required)


def test_any_mapping_is_read_without_being_changed() -> None:
    """A mapping other than a dict is read through a copy: a defaultdict does not grow the fields it lacks."""
    import collections
    import types

    source: collections.defaultdict[str, Any] = collections.defaultdict(lambda: "grown", {"id": 3, "email": "a@b.c"})
    built = structure(source, models.Client)
    assert dict(source) == {"id": 3, "email": "a@b.c"}
    assert (built.id, built.email, built.first_name, built.extra) == (3, "a@b.c", None, {})
    proxied = structure(types.MappingProxyType({"id": 4, "odd": 1}), models.Client)
    assert (proxied.id, proxied.extra) == (4, {"odd": 1})


def test_a_model_filled_slot_by_slot_is_a_plain_frozen_instance_of_its_class() -> None:
    """The builder subclass is gone once the object is filled: type, equality, frozenness, weak references."""
    import weakref

    from kayse_async._wire.converter import builder_class

    data = {"id": 5, "first_name": "Ann", "date_of_birth": "1990-01-15", "case_ids": [1, 2], "new": "kept"}
    built = structure(data, models.Client)
    by_init = models.Client(
        id=5, first_name="Ann", date_of_birth=dt.date(1990, 1, 15), case_ids=[1, 2], extra={"new": "kept"}
    )
    assert type(built) is models.Client
    assert built == by_init
    assert repr(built) == repr(by_init)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.first_name = "Bob"  # type: ignore[misc]
    assert weakref.ref(built)() is built
    # One builder per class, made once.
    assert builder_class(models.Client) is builder_class(models.Client)
