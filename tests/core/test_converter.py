"""The one converter: round trips for every model, unknown fields kept, dates, lenient reading, to_dict/to_json."""

from __future__ import annotations

import ast
import collections
import datetime as dt
import json
import logging
import pathlib
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kayse_async import errors, models
from kayse_async._wire import converter as converter_module
from kayse_async._wire.converter import EXTRA, structure, unstructure
from kayse_async._wire.protocol import structure_response
from kayse_async.models._base import Model

MODEL_CLASSES = [
    cls
    for cls in (getattr(models, name) for name in models.__all__)
    if isinstance(cls, type) and attrs.has(cls) and EXTRA in attrs.fields_dict(cls)
]

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
    for field in attrs.fields(attrs.resolve_types(cls)):
        kwargs[field.name] = strategy_for_type(field.type) if field.name != EXTRA else unknown_fields
    return st.builds(cls, **kwargs)


def strategy_for_type(tp: Any) -> st.SearchStrategy[Any]:
    """Values of an annotation, as a model holds them."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[strategy_for_type(a) for a in args])
    simple: dict[Any, st.SearchStrategy[Any]] = {
        type(None): st.none(),
        bool: st.booleans(),
        int: st.integers(0, 2**53),
        float: st.floats(allow_nan=False, allow_infinity=False, width=32),
        str: st.text(max_size=30),
        dt.date: st.dates(),
    }
    if tp in simple:
        return simple[tp]
    if origin is list:
        return st.lists(strategy_for_type(args[0]), max_size=3)
    if origin is dict:
        values = json_values if args[1] is Any else strategy_for_type(args[1])
        return st.dictionaries(st.text(max_size=8), values, max_size=2)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if attrs.has(tp):
        return strategy_for(tp)
    raise NotImplementedError(tp)


def fits(value: Any, tp: Any) -> bool:
    """Whether a JSON value fits an annotation: the test's own reading of the lenient rule's "allowed"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if tp is float:
        return type(value) in (float, int)
    if tp in (type(None), bool, int, str):
        return type(value) is tp
    if tp is dt.date:
        try:
            dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            return False
        return True
    if origin is list:
        return type(value) is list and all(fits(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, Mapping) and (args[1] is Any or all(fits(v, args[1]) for v in value.values()))
    if origin is typing.Literal:
        return value in args
    return isinstance(value, Mapping)  # a model reads any object


def same_on_the_wire(out: Any, sent: Any) -> bool:
    """``out`` (from to_dict) gives back ``sent``: equal, where a nested model may add its unset fields as null."""
    if isinstance(out, dict) and isinstance(sent, dict):
        return all(k in out and same_on_the_wire(out[k], v) for k, v in sent.items()) and all(
            out[k] is None for k in out.keys() - sent.keys()
        )
    if isinstance(out, list) and isinstance(sent, list):
        return len(out) == len(sent) and all(same_on_the_wire(a, b) for a, b in zip(out, sent, strict=True))
    return bool(type(out) is type(sent) and out == sent)


@pytest.fixture
def fresh_process_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The converter's memory of the fields it has warned about, emptied as in a new process."""
    monkeypatch.setattr(converter_module, "_warned", set())


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_model_survives_json_round_trip(cls: type[Any], data: st.DataObject) -> None:
    """Any instance of any model goes to JSON text and back unchanged."""
    value = data.draw(strategy_for(cls))
    assert structure(json.loads(value.to_json()), cls) == value


DEVIANTS: dict[str, Any] = {
    "a string": "12",
    "an integer": 12,
    "a float": 1.5,
    "true": True,
    "null": None,
    "a list": [1, "a"],
    "an object": {"a": 1},
    "a date in another format": "15/01/1990",
    "an empty string": "",
}


@pytest.mark.usefixtures("fresh_process_memory")
@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_every_field_of_every_model_reads_any_json_type_and_keeps_it(
    cls: type[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Each field fed each plausibly-deviant type: no raise, the value kept and sent back, one WARNING per field."""
    fields = [f for f in attrs.fields(attrs.resolve_types(cls)) if f.name != EXTRA]
    with caplog.at_level(logging.WARNING, logger="kayse_async"):
        for _round in range(2):
            for field in fields:
                for what, value in DEVIANTS.items():
                    obj = structure({field.name: value}, cls)
                    where = f"{cls.__name__}.{field.name} given {what}"
                    assert same_on_the_wire(obj.to_dict()[field.name], value), where
                    allowed = fits(value, field.type)
                    if allowed or field.default is attrs.NOTHING:
                        assert field.name not in obj.extra, where
                    else:
                        assert obj.extra[field.name] == value, where
                        default = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
                        assert getattr(obj, field.name) == default, where
    warned = collections.Counter(r.getMessage().split(":")[0] for r in caplog.records if r.name == "kayse_async")
    assert warned == {f"{cls.__name__}.{field.name}": 1 for field in fields}


def test_the_warning_names_the_field_and_the_type_but_never_the_value(
    fresh_process_memory: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The WARNING says which field and what JSON type came, and where it was kept; a value may be personal data."""
    with caplog.at_level(logging.WARNING, logger="kayse_async"):
        client = structure({"id": 7, "first_name": {"secret": "Ann Smith"}}, models.Client)
    assert client.first_name is None
    assert client.extra == {"first_name": {"secret": "Ann Smith"}}
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "Client.first_name: the server sent a value of type dict, which does not fit str | None; "
        "kept as sent in extra['first_name']"
    )


def test_the_reference_s_contradictory_ids_are_kept_in_their_fields(
    fresh_process_memory: None, caplog: pytest.LogCaptureFixture
) -> None:
    """case_id "3", case_list_id "123", an agent id "abc": in the fields (annotated int | str), without a warning."""
    with caplog.at_level(logging.WARNING, logger="kayse_async"):
        call = structure({"campaign_id": 1, "client_id": 2, "case_id": "3"}, models.ScheduledCall)
        campaign = structure(
            {"id": 5, "name": "c", "case_list_id": "123", "agent_id": 9, "agent": {"id": "abc"}}, models.Campaign
        )
    assert call.case_id == "3"
    assert (campaign.case_list_id, campaign.agent_id, campaign.agent) == ("123", 9, models.Agent(id="abc"))
    assert not caplog.records


def test_a_campaign_of_the_table_s_types_is_read_with_those_values_in_extra(fresh_process_memory: None) -> None:
    """days "Monday" and a flag "true" (the table's String): the fields stay None, the values go back out as sent."""
    campaign = structure({"id": 5, "days": "Monday", "send_sms_before_call": "true"}, models.Campaign)
    assert (campaign.days, campaign.send_sms_before_call) == (None, None)
    assert campaign.extra == {"days": "Monday", "send_sms_before_call": "true"}
    assert campaign.to_dict()["days"] == "Monday"
    assert campaign.to_dict()["send_sms_before_call"] == "true"


def test_a_value_set_since_wins_over_the_one_kept_in_extra(fresh_process_memory: None) -> None:
    """A field given a value after reading (attrs.evolve) is sent with it, not with the unreadable one."""
    client = structure({"id": 1, "first_name": 5}, models.Client)
    assert attrs.evolve(client, first_name="Ann").to_dict()["first_name"] == "Ann"


def test_unknown_server_fields_are_kept_and_sent_back() -> None:
    """A field the SDK does not know (even one named "extra") is kept in extra and sent back."""
    wire = {"id": 7, "first_name": "Ada", "loyalty_tier": "gold", "extra": {"nested": True}}
    client = structure(wire, models.Client)
    assert client.extra == {"loyalty_tier": "gold", "extra": {"nested": True}}
    out = unstructure(client)
    assert out["loyalty_tier"] == "gold"
    assert out["extra"] == {"nested": True}
    assert out["first_name"] == "Ada"


def test_known_fields_win_over_extra_entries_of_the_same_name() -> None:
    """A field holding a value is sent with it, whatever extra holds under its name."""
    client = models.Client(id=1, first_name="Real", extra={"first_name": "Stale"})
    assert unstructure(client)["first_name"] == "Real"


def test_unstructure_sends_every_field_with_null_for_unset() -> None:
    """The wire form of a model has every field, None as null (what a PUT needs)."""
    out = unstructure(models.Case(id=3, case_number="C-1"))
    assert out["court_date"] is None
    assert set(out) >= {f.name for f in attrs.fields(models.Case) if f.name != EXTRA}


def test_dates_are_iso_strings_both_ways() -> None:
    """Dates read from "YYYY-MM-DD" (a timestamp cut to its date) and go out as "YYYY-MM-DD"."""
    client = structure({"date_of_birth": "1990-01-15", "date_of_death": "2020-02-03T00:00:00Z"}, models.Client)
    assert client.date_of_birth == dt.date(1990, 1, 15)
    assert client.date_of_death == dt.date(2020, 2, 3)
    assert unstructure(client)["date_of_birth"] == "1990-01-15"


def test_campaign_nested_objects_are_structured() -> None:
    """The agent, the stats by call and the callback delays become their models."""
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


@pytest.mark.parametrize("data", [[1, 2], "x", 3, None])
def test_structure_refuses_a_non_object(data: Any) -> None:
    """Only a value that is not a JSON object at all is refused."""
    with pytest.raises(TypeError, match="expected a JSON object for Client"):
        structure(data, models.Client)


def test_any_mapping_is_read_without_being_changed() -> None:
    """A mapping other than a dict is read as it is: a defaultdict does not grow the fields it lacks."""
    source: collections.defaultdict[str, Any] = collections.defaultdict(lambda: "grown", {"id": 3, "email": "a@b.c"})
    built = structure(source, models.Client)
    assert dict(source) == {"id": 3, "email": "a@b.c"}
    assert (built.id, built.email, built.first_name, built.extra) == (3, "a@b.c", None, {})
    proxied = structure(types.MappingProxyType({"id": 4, "odd": 1}), models.Client)
    assert (proxied.id, proxied.extra) == (4, {"odd": 1})


def test_containers_are_the_model_s_own_copies() -> None:
    """Lists and objects are copied both ways: changing a response or a to_dict() changes no model."""
    data = {"id": 7, "case_ids": [1, 2], "meta": {"a": 1}, "new": {"b": 2}}
    built = structure(data, models.Client)
    assert built.case_ids == [1, 2]
    assert built.case_ids is not data["case_ids"]
    assert built.meta == {"a": 1}
    assert built.meta is not data["meta"]
    out = built.to_dict()
    assert out["meta"] == {"a": 1}
    assert out["meta"] is not built.meta
    assert out["case_ids"] is not built.case_ids
    first, second = structure({"id": 1}, models.Client), structure({"id": 2}, models.Client)
    assert first.extra == {}
    assert first.extra is not second.extra


@attrs.frozen(kw_only=True, cache_hash=True)
class Ticket(Model):
    """A model using attrs features that a model built outside ``__init__`` could not have."""

    id: int
    title: str = attrs.field(converter=str.strip)
    slug: str = attrs.field(default=attrs.Factory(lambda self: f"ticket-{self.id}", takes_self=True))
    priority: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        if self.title == "":
            raise ValueError("a ticket needs a title")


def test_a_model_may_use_every_attrs_feature_through_the_converter() -> None:
    """Factory(takes_self=True), cache_hash, converters, validators and post-init all run when the converter builds."""
    ticket = structure({"id": 3, "title": "  Call back  ", "origin": "web"}, Ticket)
    assert (ticket.slug, ticket.title, ticket.priority, ticket.extra) == ("ticket-3", "Call back", 1, {"origin": "web"})
    assert hash(ticket) == hash(ticket) == hash(Ticket(id=3, title="Call back"))
    assert ticket.to_dict() == {"id": 3, "title": "Call back", "slug": "ticket-3", "priority": 1, "origin": "web"}
    with pytest.raises(ValueError, match="must be >= 0"):
        structure({"id": 3, "title": "t", "priority": -1}, Ticket)
    with pytest.raises(ValueError, match="needs a title"):
        structure({"id": 3, "title": "   "}, Ticket)


def test_to_dict_and_to_json_give_the_wire_form_of_every_model() -> None:
    """to_dict() is the converter's wire form, to_json() the same as text; json.dumps(model.to_dict()) works."""
    client = structure({"id": 7, "date_of_birth": "1990-01-15", "loyalty": "gold"}, models.Client)
    assert client.to_dict() == unstructure(client)
    assert client.to_dict()["date_of_birth"] == "1990-01-15"
    assert client.to_dict()["loyalty"] == "gold"
    assert json.loads(client.to_json()) == client.to_dict()
    assert client.to_json(indent=2).startswith('{\n  "id": 7')
    with pytest.raises(TypeError):
        json.dumps(client)
    snapshot = models.QuotaSnapshot(limit=500, remaining=3, resets_at=dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC))
    wire = {"limit": 500, "remaining": 3, "resets_at": "2030-01-02T03:04:00+00:00", "window": None}
    assert snapshot.to_dict() == wire
    for cls in [*MODEL_CLASSES, models.QuotaSnapshot]:
        assert issubclass(cls, Model), cls


def test_models_import_nothing_of_ours_when_loaded() -> None:
    """The models' modules import only each other at load time (the converter only inside to_dict)."""
    folder = pathlib.Path(models.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{path.name} imports {'.' * node.level}{node.module} at load time"


@pytest.mark.parametrize(
    ("data", "cls", "need_id", "says"),
    [
        ([1, 2], models.Client, False, "expected a JSON object for Client"),
        ({"id": "nine"}, models.Case, True, "expected a JSON object with an integer id for Case"),
        ({"name": "no id"}, models.Client, True, "integer id"),
        ({"fields": []}, list[models.ObjectSchema], False, "expected an array"),
        ([{"name": "x"}, 3], list[models.ObjectSchema], False, "expected a JSON object for ObjectSchema"),
    ],
)
def test_only_an_unusable_answer_is_a_response_format_error(data: Any, cls: Any, need_id: bool, says: str) -> None:
    """Not an object, or no integer id where one is needed: ResponseFormatError (an APIError) with an excerpt."""
    with pytest.raises(errors.ResponseFormatError, match=says) as caught:
        structure_response(data, cls, method="POST", url="/v1/x", status=201, need_id=need_id)
    assert isinstance(caught.value, errors.APIError)
    assert caught.value.status == 201
    assert caught.value.body == data
    assert json.dumps(data)[:20] in str(caught.value)
