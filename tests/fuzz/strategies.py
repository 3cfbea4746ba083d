"""Hypothesis strategies for every request payload, each value drawn with its own verdict.

A payload is drawn together with what a correct SDK must do with it: either
send exactly ``expected`` (the JSON body), or refuse it with a
``ValidationError`` naming one of the ``bad`` fields, sending nothing. The
verdicts come from the reference's tables and the shared decisions, written
out here independently of the SDK's own field tables.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

import attrs
from hypothesis import strategies as st

MAX_INT = 2**63 - 1
Kind = Literal["str", "date", "bool", "object", "ids", "id", "count", "strs", "weekdays", "delays", "filter"]

CLIENT: dict[str, tuple[Kind, bool]] = {
    "email": ("str", False),
    "mobile": ("str", False),
    "external_source": ("str", True),
    "external_source_id": ("str", True),
    "first_name": ("str", True),
    "last_name": ("str", True),
    "gender": ("str", False),
    "date_of_birth": ("date", False),
    "city": ("str", False),
    "state": ("str", False),
    "postal_code": ("str", False),
    "address_line1": ("str", False),
    "address_line2": ("str", False),
    "date_of_death": ("date", False),
    "meta": ("object", False),
    "case_ids": ("ids", False),
    "voice_calls_opted_out": ("bool", False),
}
CASE: dict[str, tuple[Kind, bool]] = {
    "case_number": ("str", True),
    "external_source": ("str", True),
    "external_source_id": ("str", True),
    "external_source_data": ("object", False),
    "name": ("str", False),
    "court_name": ("str", False),
    "jurisdiction": ("str", False),
    "description": ("str", False),
    "status": ("str", True),
    "type": ("str", True),
    "is_obo": ("bool", False),
    "created_date": ("date", False),
    "court_date": ("date", False),
    "end_date": ("date", False),
    "client_ids": ("ids", False),
    "opt_out_voice_calls": ("bool", False),
}
CASE_LIST: dict[str, tuple[Kind, bool]] = {
    "name": ("str", True),
    "description": ("str", False),
    "filter": ("filter", False),
    "include_ids": ("ids", False),
    "exclude_ids": ("ids", False),
    "is_obo": ("bool", False),
}
CAMPAIGN: dict[str, tuple[Kind, bool]] = {
    "name": ("str", True),
    "agent_id": ("str", True),
    "case_list_id": ("id", True),
    "start_time": ("str", False),
    "end_time": ("str", False),
    "callback_delays": ("delays", False),
    "days": ("weekdays", False),
    "send_sms_before_call_delay_minutes": ("count", False),
    "send_sms_before_call": ("bool", True),
    "sms_before_call_text": ("str", True),
    "send_sms_after_successful_call": ("bool", False),
    "sms_after_successful_call_text": ("str", False),
    "send_sms_after_failed_call": ("bool", False),
    "sms_after_failed_call_text": ("str", False),
    "is_obo": ("bool", False),
    "calls_scheduled_externally": ("bool", False),
}
OUTSIDE_PUT = frozenset({"gender", "voice_calls_opted_out", "client_ids", "opt_out_voice_calls"})
"""Optional fields the reference's PUT tables do not list: an update sends them only with a value."""
SMS: dict[str, tuple[Kind, bool]] = {"case_id": ("id", True), "client_id": ("id", True), "message": ("str", True)}
EMAIL: dict[str, tuple[Kind, bool]] = {**SMS, "subject": ("str", True)}
CALL: dict[str, tuple[Kind, bool]] = {"campaign_id": ("id", True), "case_id": ("id", True)}


class _Huge(str):
    """A string too long to print: shown by its length in failure reports."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self):,} x {self[0]!r}>"


HUGE = _Huge("Ω" * 300_000)
"""A huge string (600 kB of UTF-8): valid, and must travel intact."""
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@attrs.frozen
class Drawn:
    """A drawn payload and its verdict: ``bad`` empty means it must be sent as ``expected``."""

    fields: dict[str, Any]
    expected: dict[str, Any]
    bad: frozenset[str]


_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
"""Any JSON value (what ``meta`` and unknown fields may carry)."""

_any_wrong = (
    st.integers()
    | st.floats(allow_nan=True)
    | st.booleans()
    | st.binary(max_size=5)
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    | st.dates()
    | st.text(max_size=5)
    | st.just(object())
)


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"d": value}
    return value


def _bad_date_strings() -> st.SearchStrategy[str]:
    fixed = st.sampled_from(
        [
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024/01/15",
            "20240115",
            "2024-1-5",
            " 2024-01-15",
            "2024-01-15 ",
            "2024-01-15T00:00:00",
            "2024-01-15Z",
            "\u0661\u0669\u0669\u0660-\u0660\u0661-\u0660\u0662",  # Arabic-Indic digits match \\d
            "\uff12\uff10\uff12\uff14-\uff10\uff11-\uff11\uff15",  # fullwidth digits
            "",
            "yesterday",
        ]
    )
    return fixed | st.text(max_size=12).filter(lambda s: not _is_iso_date(s))


def _is_iso_date(text: str) -> bool:
    if len(text) != 10 or not text.isascii():
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return text[4] == "-" and text[7] == "-"


def valid(kind: Kind, required: bool) -> st.SearchStrategy[tuple[Any, Any]]:
    """(value given, JSON expected) for a valid value of ``kind``."""
    if kind == "str":
        text = st.text(max_size=40) | st.just(HUGE) | st.just("Zoë 山田 🚀 \u200b\u202e")
        if required:
            text = text.filter(lambda s: bool(s.strip()))
        return text.map(lambda s: (s, s))
    if kind == "date":
        return st.dates().flatmap(lambda d: st.sampled_from([(d, d.isoformat()), (d.isoformat(), d.isoformat())]))
    if kind == "bool":
        return st.booleans().map(lambda b: (b, b))
    if kind == "object":
        return st.dictionaries(st.text(max_size=10), JSON, max_size=5).map(lambda d: (d, d))
    if kind == "ids":
        ids = st.lists(st.integers(1, MAX_INT), max_size=8)
        return ids.flatmap(lambda xs: st.sampled_from([(xs, xs), (tuple(xs), xs)]))
    if kind == "id":
        return st.integers(1, MAX_INT).map(lambda i: (i, i))
    if kind == "count":
        return st.integers(0, 10_000).map(lambda i: (i, i))
    if kind == "strs":
        return st.lists(st.text(max_size=8), max_size=4).map(lambda xs: (xs, xs))
    if kind == "filter":
        words = st.lists(st.text(max_size=8), max_size=3)
        optional = {"statuses": words, "types": words, "is_obo": st.booleans(), "jurisdiction": st.text(max_size=8)}
        return st.fixed_dictionaries({}, optional=optional).map(lambda d: (d, d))
    if kind == "weekdays":
        return st.lists(st.sampled_from(WEEKDAYS), max_size=7).map(lambda xs: (xs, xs))
    # delays
    unit = st.integers(0, 10_000)
    delay = st.fixed_dictionaries({}, optional={"minutes": unit, "hours": unit, "days": unit})
    return st.lists(delay, max_size=3).map(lambda xs: (xs, xs))


def invalid(kind: Kind, required: bool, *, signs: bool = True) -> st.SearchStrategy[Any]:
    """A value of the wrong type or shape for ``kind`` (None too, when the field is required).

    ``signs=False`` leaves out integers of the wrong sign (0 or -1 for an id, -1 for a count).
    """
    options: list[st.SearchStrategy[Any]] = []
    if required:
        options.append(st.none())
    if kind == "str":
        options.append(_any_wrong.filter(lambda v: not isinstance(v, str)))
        if required:
            options.append(st.sampled_from(["", " ", "\t\n", "\u3000"]))
    elif kind == "date":
        options += [
            _bad_date_strings(),
            st.datetimes(),
            _any_wrong.filter(lambda v: not isinstance(v, str | dt.date)),
        ]
    elif kind == "bool":
        options += [st.sampled_from([0, 1, "true", "false", "yes", 1.0]), st.integers()]
    elif kind == "object":
        options += [
            _any_wrong.filter(lambda v: not isinstance(v, dict)),
            st.just({1: "non-string key"}),
            st.just({"x": math.nan}),
            st.just({"x": [math.inf]}),
            st.just({"x": {1, 2}}),
            st.just({"x": b"bytes"}),
            st.just(_deep(200)),
        ]
    elif kind in ("ids", "id", "count"):
        bad_ints: list[Any] = [True, False, 1.0, "1", None, MAX_INT + 1, 2**64]
        if signs or kind == "ids":
            bad_ints.append(-1)
            if kind != "count":
                bad_ints.append(0)
        bad_item = st.sampled_from(bad_ints)
        if kind == "ids":
            options += [
                st.sampled_from(["12", "", {"a": 1}, 7, 1.5, b"12"]),
                st.tuples(
                    st.lists(st.integers(1, 99), max_size=3), bad_item, st.lists(st.integers(1, 99), max_size=3)
                ).map(lambda t: [*t[0], t[1], *t[2]]),
            ]
        else:
            options += [bad_item.filter(lambda v: v is not None), st.sampled_from(["7", [1], {"id": 1}])]
    elif kind == "strs":
        options += [st.just("Monday"), st.lists(st.integers(), min_size=1, max_size=2)]
    elif kind == "filter":
        options += [_any_wrong.filter(lambda v: not isinstance(v, dict)), st.just({"x": math.nan})]
    elif kind == "weekdays":
        options += [
            st.just("Monday"),
            st.lists(st.sampled_from(["monday", "Mon", "Funday", ""]), min_size=1, max_size=2),
            st.lists(st.integers(), min_size=1, max_size=2),
        ]
    else:  # delays
        options += [
            st.just({"minutes": 5}),
            st.just([5]),
            st.just([{"minutes": -1}]),
            st.just([{"hours": "2"}]),
            st.just([{"days": True}]),
            st.just([{"minutes": 1.5}]),
        ]
    return st.one_of(options)


@st.composite
def payload(
    draw: st.DrawFn,
    table: dict[str, tuple[Kind, bool]],
    *,
    mode: Literal["create", "update"] = "create",
    unknown: bool = True,
    signs: bool = True,
) -> Drawn:
    """A payload for ``table``: mostly whole and valid, often with one to three fields spoiled.

    ``mode="update"`` follows the PUT rules: a required field may be left
    out (the server keeps it), every optional field of the PUT table left
    out is sent as null, and a field outside it goes only with a value.
    """
    names = list(table)
    spoiled = set(draw(st.lists(st.sampled_from(names), unique=True, max_size=3))) if draw(st.booleans()) else set()
    fields: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    bad: set[str] = set()
    for name in names:
        kind, required = table[name]
        must_check = required and mode == "create"
        if name in spoiled:
            if must_check and draw(st.booleans()):
                bad.add(name)  # left out
                continue
            fields[name] = draw(invalid(kind, required, signs=signs))
            bad.add(name)
            continue
        present = draw(st.booleans()) if not must_check else True
        nulled = mode == "create" or name not in OUTSIDE_PUT
        if not present:
            if mode == "update" and not required and nulled:
                expected[name] = None
            continue
        if not required and draw(st.integers(0, 5)) == 0:
            fields[name] = None
            if nulled:
                expected[name] = None
            continue
        value, json_value = draw(valid(kind, required))
        fields[name] = value
        expected[name] = json_value
    if "filter" in table and fields.get("filter") is None and "filter" not in bad:
        # A case list's explicit ids need a filter beside them.
        bad.update(name for name in ("include_ids", "exclude_ids") if fields.get(name))
    if unknown and draw(st.integers(0, 4)) == 0:
        # A name this SDK does not know is refused (such a field goes in extra_body).
        fields["x_new_field"] = draw(JSON | st.sampled_from([{1, 2}, b"raw", math.nan, object(), dt.time(1, 2)]))
        bad.add("x_new_field")
    return Drawn(fields, expected, frozenset(bad))
