"""Field tables of the API's request bodies and the checks made before sending.

Sans-I/O: pure functions. Every check that fails raises
:class:`kayse_async.errors.ValidationError` naming the field as the API spells
it, so nothing invalid ever reaches the server (it would spend a request of a
500-per-hour budget, and a bulk batch is rejected whole for one bad item).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, Literal

import attrs

from ..errors import ValidationError


class Kind(Enum):
    """The JSON type a field takes."""

    STR = "string"
    INT = "integer"
    ID = "positive integer id"
    COUNT = "integer >= 0"
    BOOL = "boolean"
    DATE = "date"
    OBJECT = "object"
    INT_LIST = "array of integers"
    STR_LIST = "array of strings"
    CALLBACK_DELAYS = "array of {minutes, hours, days}"


@attrs.frozen
class Field:
    """One field of a request body: its kind and whether a create needs it."""

    kind: Kind
    required: bool = False


_S, _I, _B, _D, _O, _IL, _SL = Kind.STR, Kind.INT, Kind.BOOL, Kind.DATE, Kind.OBJECT, Kind.INT_LIST, Kind.STR_LIST


def _table(**fields: tuple[Kind, bool] | Kind) -> dict[str, Field]:
    return {name: Field(*spec) if isinstance(spec, tuple) else Field(spec) for name, spec in fields.items()}


CLIENT_FIELDS = _table(
    email=_S,
    mobile=_S,
    external_source=(_S, True),
    external_source_id=(_S, True),
    first_name=(_S, True),
    last_name=(_S, True),
    gender=_S,
    date_of_birth=_D,
    city=_S,
    state=_S,
    postal_code=_S,
    address_line1=_S,
    address_line2=_S,
    date_of_death=_D,
    meta=_O,
    case_ids=_IL,
    voice_calls_opted_out=_B,
)
"""``/v1/clients``: the create and update tables of the reference, with ``case_ids`` (see reference notes)."""

CASE_FIELDS = _table(
    case_number=(_S, True),
    external_source=(_S, True),
    external_source_id=(_S, True),
    external_source_data=_O,
    name=_S,
    court_name=_S,
    jurisdiction=_S,
    description=_S,
    status=(_S, True),
    type=(_S, True),
    is_obo=_B,
    created_date=_D,
    court_date=_D,
    end_date=_D,
    client_ids=_IL,
    opt_out_voice_calls=_B,
)
"""``/v1/cases``: the create table of the reference."""

CASE_LIST_FIELDS = _table(
    name=(_S, True),
    description=_S,
    filter=_O,
    include_ids=_IL,
    exclude_ids=_IL,
    is_obo=_B,
)
"""``/v1/case_lists``: the create table of the reference."""

CAMPAIGN_FIELDS = _table(
    name=(_S, True),
    agent_id=(_S, True),
    case_list_id=(Kind.ID, True),
    start_time=_S,
    end_time=_S,
    callback_delays=Kind.CALLBACK_DELAYS,
    days=_SL,
    send_sms_before_call_delay_minutes=Kind.COUNT,
    send_sms_before_call=(_B, True),
    sms_before_call_text=(_S, True),
    send_sms_after_successful_call=_B,
    sms_after_successful_call_text=_S,
    send_sms_after_failed_call=_B,
    sms_after_failed_call_text=_S,
    is_obo=_B,
    calls_scheduled_externally=_B,
)
"""``/v1/campaigns``: the create table, with the types its example shows (see reference notes)."""

READ_ONLY: dict[str, frozenset[str]] = {
    "clients": frozenset({"id"}),
    "cases": frozenset({"id"}),
    "case_lists": frozenset({"id", "case_ids"}),
    "campaigns": frozenset({"id", "case_list_name", "agent", "stats"}),
}
"""Fields the server returns but a request body does not carry (``id`` travels in the path)."""

WEEKDAYS = frozenset({"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"})
MAX_BULK_DELETE_IDS = 500
MAX_PAGE_SIZE = 100
MAX_INT = 2**63 - 1
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

Mode = Literal["create", "update"]
_NONE: frozenset[str] = frozenset()
_SPLITS: dict[int, tuple[Mapping[str, Field], tuple[str, ...], tuple[str, ...]]] = {}


def _split(table: Mapping[str, Field]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The required and the optional names of a table, cached (the entry holds the table: its id stays its own)."""
    entry = _SPLITS.get(id(table))
    if entry is None or entry[0] is not table:
        required = tuple(name for name, spec in table.items() if spec.required)
        optional = tuple(name for name, spec in table.items() if not spec.required)
        entry = _SPLITS[id(table)] = (table, required, optional)
    return entry[1], entry[2]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_id(name: str, value: Any) -> int:
    """Check that ``value`` is a positive integer id (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, f"expected an integer id, got {_type_name(value)}")
    if not 0 < value <= MAX_INT:
        raise ValidationError(name, f"expected a positive id, got {value}")
    return value


def _check_date(path: str, value: Any) -> str:
    if isinstance(value, dt.datetime):
        raise ValidationError(path, "expected a date (YYYY-MM-DD), got a datetime; pass value.date()")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        if not _DATE_RE.fullmatch(value):
            raise ValidationError(path, f"expected a date as YYYY-MM-DD, got {value[:40]!r}")
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValidationError(path, f"not a valid calendar date: {value!r}") from None
        return value
    raise ValidationError(path, f"expected a date (YYYY-MM-DD), got {_type_name(value)}")


def _check_json(path: str, value: Any, depth: int = 0) -> Any:
    """Check that ``value`` is JSON-ready (what the ``object`` fields and unknown fields carry)."""
    if depth > 64:
        raise ValidationError(path, "nested too deeply")
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(path, "NaN and infinity are not valid JSON numbers")
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(path, f"object keys must be strings, got {_type_name(key)}")
            out[key] = _check_json(f"{path}.{key}", item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_check_json(f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value)]
    raise ValidationError(path, f"{_type_name(value)} is not JSON-serialisable")


def _check_kind(path: str, kind: Kind, value: Any) -> Any:
    if kind is Kind.STR:
        if not isinstance(value, str):
            raise ValidationError(path, f"expected a string, got {_type_name(value)}")
        return value
    if kind is Kind.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(path, f"expected an integer, got {_type_name(value)}")
        if abs(value) > MAX_INT:
            raise ValidationError(path, "integer out of range")
        return value
    if kind is Kind.ID:
        return check_id(path, value)
    if kind is Kind.COUNT:
        number = _check_kind(path, Kind.INT, value)
        if number < 0:
            raise ValidationError(path, f"must not be negative, got {number}")
        return number
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise ValidationError(path, f"expected true or false, got {_type_name(value)}")
        return value
    if kind is Kind.DATE:
        return _check_date(path, value)
    if kind is Kind.OBJECT:
        if not isinstance(value, Mapping):
            raise ValidationError(path, f"expected an object, got {_type_name(value)}")
        return _check_json(path, value)
    if kind is Kind.INT_LIST:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple | set | frozenset):
            raise ValidationError(path, f"expected an array of integers, got {_type_name(value)}")
        return [check_id(f"{path}[{i}]", item) for i, item in enumerate(value)]
    if kind is Kind.STR_LIST:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
            raise ValidationError(path, f"expected an array of strings, got {_type_name(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ValidationError(f"{path}[{i}]", f"expected a string, got {_type_name(item)}")
        return list(value)
    # Kind.CALLBACK_DELAYS
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
        raise ValidationError(path, f"expected an array of {{minutes, hours, days}}, got {_type_name(value)}")
    delays: list[Any] = []
    for i, item in enumerate(value):
        if attrs.has(type(item)):
            item = {"minutes": item.minutes, "hours": item.hours, "days": item.days, **getattr(item, "extra", {})}
        if not isinstance(item, Mapping):
            raise ValidationError(f"{path}[{i}]", f"expected an object, got {_type_name(item)}")
        entry = dict(_check_json(f"{path}[{i}]", item))
        for unit in ("minutes", "hours", "days"):
            if unit in entry:
                _check_kind(f"{path}[{i}].{unit}", Kind.COUNT, entry[unit])
        delays.append(entry)
    return delays


def check_fields(
    table: Mapping[str, Field],
    fields: Mapping[str, Any],
    *,
    mode: Mode,
    path: str = "",
    resource: str = "",
) -> dict[str, Any]:
    """Check a request body against ``table`` and return it JSON-ready.

    ``mode="create"``: every required field must be given, not null, and a
    required string must not be empty; fields not given are not sent.
    ``mode="update"`` (PUT, a full replacement): every optional field not
    given is sent as null, because the server nulls what is omitted;
    required fields not given are left out, and the server keeps them.

    Fields the table does not know are passed through (checked to be JSON),
    so that a field the server added after this SDK was written still
    travels. ``path`` prefixes field names in errors (``clients[3].``).
    """
    read_only = READ_ONLY.get(resource, _NONE)
    body: dict[str, Any] = {}
    for name, value in fields.items():
        spec = table.get(name)
        if spec is None:
            if not isinstance(name, str):
                raise ValidationError(f"{path}{name!r}", "field names must be strings")
            if name not in read_only:
                body[name] = _check_json(f"{path}{name}", value)
            continue
        kind = spec.kind
        # Fast paths for the common well-typed values; anything else goes the long way round.
        if kind is _S and type(value) is str:
            if spec.required and (not value or value.isspace()):
                raise ValidationError(f"{path}{name}", "is required and must not be empty")
            body[name] = value
        elif value is None:
            if spec.required:
                raise ValidationError(f"{path}{name}", "is required and must not be null")
            body[name] = None
        elif kind is _IL and type(value) is list and all(type(i) is int and 0 < i <= MAX_INT for i in value):
            body[name] = list(value)
        else:
            checked = _check_kind(f"{path}{name}", kind, value)
            if spec.required and kind is Kind.STR and not checked.strip():
                raise ValidationError(f"{path}{name}", "is required and must not be empty")
            body[name] = checked
    required, optional = _split(table)
    if mode == "create":
        for name in required:
            if name not in body:
                raise ValidationError(f"{path}{name}", "is required")
    else:
        for name in optional:
            if name not in body:
                body[name] = None
    if "days" in body and body["days"] is not None and table is CAMPAIGN_FIELDS:
        for i, day in enumerate(body["days"]):
            if day not in WEEKDAYS:
                raise ValidationError(f"{path}days[{i}]", f"expected a weekday name (Monday..Sunday), got {day!r}")
    if table is CASE_LIST_FIELDS and body.get("filter") is None:
        for name in ("include_ids", "exclude_ids"):
            if body.get(name):
                raise ValidationError(f"{path}{name}", "requires filter to be present")
    return body


def check_bulk_delete_ids(ids: Any) -> list[int]:
    """Check and deduplicate the ids of a bulk delete, keeping their first order."""
    if isinstance(ids, str | bytes | Mapping):
        raise ValidationError("ids", f"expected an iterable of integer ids, got {_type_name(ids)}")
    try:
        items = list(ids)
    except TypeError:
        raise ValidationError("ids", f"expected an iterable of integer ids, got {_type_name(ids)}") from None
    if not items:
        raise ValidationError("ids", "must not be empty")
    seen: dict[int, None] = {}
    for i, item in enumerate(items):
        seen.setdefault(check_id(f"ids[{i}]", item), None)
    return list(seen)


def check_page_size(page_size: Any) -> int:
    """Check a ``page_size`` query parameter (1 to 100)."""
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise ValidationError("page_size", f"expected an integer, got {_type_name(page_size)}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationError("page_size", f"must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def check_text(name: str, value: Any) -> str:
    """Check a required, non-empty string argument (an SMS message, an email subject)."""
    if not isinstance(value, str):
        raise ValidationError(name, f"expected a string, got {_type_name(value)}")
    if not value.strip():
        raise ValidationError(name, "must not be empty")
    return value
