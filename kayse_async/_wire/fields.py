"""The one source of the API's request fields (a :class:`Table` of :class:`Field` rows per body), and the checks.

The resources check with these tables, the emulator builds its rules and metadata from them, and
tests hold ``params``, the models and the reference's tables to them (docs/reference-notes.md).
A failed check raises :class:`kayse_async.errors.ValidationError` naming the field as the API spells
it: nothing invalid spends a request, or makes the server refuse a whole bulk batch.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, Literal

import attrs

from ..errors import ValidationError
from ..models import FieldSchema, ObjectSchema


class Kind(Enum):
    """The kind of value a field takes."""

    STR = "string"
    ID = "positive integer id"
    COUNT = "integer >= 0"
    BOOL = "boolean"
    DATE = "date (YYYY-MM-DD)"
    OBJECT = "object"
    ID_LIST = "array of integer ids"
    WEEKDAYS = "array of weekday names"
    CALLBACK_DELAYS = "array of {minutes, hours, days}"


TYPE_NAMES: dict[Kind, tuple[str, str | None]] = {
    Kind.STR: ("string", None),
    Kind.ID: ("uint", None),
    Kind.COUNT: ("uint", None),
    Kind.BOOL: ("bool", None),
    Kind.DATE: ("date", None),
    Kind.OBJECT: ("object", None),
    Kind.ID_LIST: ("array", "uint"),
    Kind.WEEKDAYS: ("array", "string"),
    Kind.CALLBACK_DELAYS: ("array", "object"),
}
"""Each kind as ``GET /v1/metadata/objects`` names it: the type, and the type of an array's items."""


@attrs.frozen
class Field:
    """One field of a request body."""

    name: str
    kind: Kind
    description: str = ""
    required: bool = False
    """A create must give it, never null (nor blank, for a string); a full replacement that omits it keeps it."""
    put: bool = True
    """The reference's PUT table lists it, so a full replacement that omits it clears it. A field outside
    that table is sent on an update only with a value the caller gave, never as null."""
    needs: str | None = None
    """A field that must hold a value when this one holds a non-empty one."""


class Table:
    """The fields of one request body; ``read_only`` are what the answers hold beside them."""

    def __init__(self, name: str, *fields: Field, read_only: Iterable[str] = (), updates: bool = True) -> None:
        self.name = name
        self.fields = fields
        self.by_name = {field.name: field for field in fields}
        self.read_only = frozenset(read_only)
        self.updates = updates
        """Whether items of this resource can be updated (a PUT, or a bulk item with an id)."""
        self.required = tuple(field.name for field in fields if field.required)
        self.nulled = tuple(field.name for field in fields if field.put and not field.required)
        """The fields a full replacement sends as null when the caller leaves them out."""
        self.pairs = tuple((field.name, field.needs) for field in fields if field.needs)

    def __repr__(self) -> str:
        return f"<Table {self.name}>"


_S, _D, _B, _O, _IDS = Kind.STR, Kind.DATE, Kind.BOOL, Kind.OBJECT, Kind.ID_LIST

CLIENTS = Table(
    "clients",
    Field("email", _S, "Client's email address"),
    Field("mobile", _S, "Client's mobile phone number"),
    Field("external_source", _S, 'Source system identifier (e.g., "manual", "import")', required=True),
    Field("external_source_id", _S, "Unique identifier from external source", required=True),
    Field("first_name", _S, "Client's first name", required=True),
    Field("last_name", _S, "Client's last name", required=True),
    Field("gender", _S, "Client's gender", put=False),
    Field("date_of_birth", _D, "Client's date of birth (YYYY-MM-DD format)"),
    Field("city", _S, "City of residence"),
    Field("state", _S, "State of residence"),
    Field("postal_code", _S, "Postal/ZIP code"),
    Field("address_line1", _S, "Primary address line"),
    Field("address_line2", _S, "Secondary address line"),
    Field(
        "voice_calls_opted_out",
        _B,
        "When true, opts the client out of voice calls and applies the flag across linked cases/clients",
        put=False,
    ),
    Field("date_of_death", _D, "Date of death (YYYY-MM-DD format)"),
    Field("meta", _O, "Additional metadata as key-value pairs"),
    Field("case_ids", _IDS, "Associated case IDs (replaces links on create/update)"),
)
"""``/v1/clients`` and ``/v1/clients/bulk``."""

CASES = Table(
    "cases",
    Field("case_number", _S, "Unique case identifier", required=True),
    Field("external_source", _S, "Source system identifier (a static list defined in-app)", required=True),
    Field("external_source_id", _S, "Unique identifier from external source", required=True),
    Field("external_source_data", _O, "Additional data from external source as key-value pairs"),
    Field("name", _S, "Case name/title"),
    Field("court_name", _S, "Name of the court"),
    Field("jurisdiction", _S, "Legal jurisdiction"),
    Field("description", _S, "Case description"),
    Field("status", _S, 'Case status (e.g., "active", "closed", "pending")', required=True),
    Field("type", _S, 'Case type (e.g., "civil", "criminal", "family")', required=True),
    Field("is_obo", _B, 'Whether case is "on behalf of" another party'),
    Field("created_date", _D, "Case creation date (YYYY-MM-DD format)"),
    Field("court_date", _D, "Next court date (YYYY-MM-DD format)"),
    Field("end_date", _D, "Case end date (YYYY-MM-DD format)"),
    Field("client_ids", _IDS, "Associated client IDs (replaces links on create/update)", put=False),
    Field("opt_out_voice_calls", _B, "When true, marks all linked clients voice-calls opted out", put=False),
)
"""``/v1/cases`` and ``/v1/cases/bulk``."""

CASE_LISTS = Table(
    "case_lists",
    Field("name", _S, "Case list name", required=True),
    Field("description", _S, "Optional description shown in the UI"),
    Field("filter", _O, "Case filter object using the same keys as /v1/cases (status_ids, case_type_ids, etc.)"),
    Field("include_ids", _IDS, "Explicit case IDs to include. Requires filter to be present", needs="filter"),
    Field("exclude_ids", _IDS, "Explicit case IDs to exclude. Requires filter to be present", needs="filter"),
    Field("is_obo", _B, 'When set, propagates the "on behalf of" flag to member cases'),
    read_only=("case_ids",),
)
"""``/v1/case_lists`` and ``/v1/case_lists/bulk`` (no PUT: a bulk item with an id replaces the list)."""

CAMPAIGNS = Table(
    "campaigns",
    Field("name", _S, "Campaign name", required=True),
    Field("agent_id", _S, "ID of AI agent that's being used by the campaign", required=True),
    Field("case_list_id", Kind.ID, "ID of the case list this campaign operates on", required=True),
    Field("start_time", _S, "Time to start the campaign execution (kept as given)"),
    Field("end_time", _S, "Time to end the campaign execution (kept as given)"),
    Field("callback_delays", Kind.CALLBACK_DELAYS, "Delays used to retry calls on failure"),
    Field("days", Kind.WEEKDAYS, "Weekdays on which campaign should be executed"),
    Field("send_sms_before_call_delay_minutes", Kind.COUNT, "Number of minutes to send sms before call"),
    Field("send_sms_before_call", _B, "Whether to send sms before call", required=True),
    Field("sms_before_call_text", _S, "Sms before call message text", required=True),
    Field("send_sms_after_successful_call", _B, "Whether to send sms after successful call"),
    Field("sms_after_successful_call_text", _S, "Sms after successful call message text"),
    Field("send_sms_after_failed_call", _B, "Whether to send sms after failed call"),
    Field("sms_after_failed_call_text", _S, "Sms after failed call message text"),
    Field("is_obo", _B, "Identifies whether campaign is based on obo clients"),
    Field("calls_scheduled_externally", _B, "Identifies whether calls are scheduled from outside Kayse"),
    read_only=("case_list_name", "agent", "stats"),
    updates=False,
)
"""``/v1/campaigns``, with the types its example shows (see docs/reference-notes.md)."""

_CASE_ID = Field("case_id", Kind.ID, "Unique case identifier", required=True)
_CLIENT_ID = Field("client_id", Kind.ID, "Unique client identifier (must be linked to the case)", required=True)
_MESSAGE = Field("message", _S, "Message to be sent, may contain Kayse template variables", required=True)
SMS = Table("sms", _CASE_ID, _CLIENT_ID, _MESSAGE)
"""``/v1/cases/communication/sms``."""
EMAIL = Table(
    "email", _CASE_ID, _CLIENT_ID, Field("subject", _S, "Subject of the email to be sent", required=True), _MESSAGE
)
"""``/v1/cases/communication/email``."""
CALLS = Table("calls", Field("campaign_id", Kind.ID, "Unique campaign identifier", required=True), _CASE_ID)
"""``/v1/calls`` on the calls host."""

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_PAGE_SIZE = 100
MAX_INT = 2**63 - 1
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

Mode = Literal["create", "update", "upsert"]
"""How an item is sent: created (``POST``), replaced (``PUT``, or a bulk item with an id), or chosen by its id."""


def schema(table: Table) -> ObjectSchema:
    """The fields of ``table`` in the form ``GET /v1/metadata/objects`` answers with."""
    described: list[FieldSchema] = []
    for field in table.fields:
        type_name, items = TYPE_NAMES[field.kind]
        described.append(
            FieldSchema(
                name=field.name,
                type=type_name,
                required=field.required,
                description=field.description,
                extra={"items": items} if items else {},
            )
        )
    return ObjectSchema(name=table.name, fields=described)


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


def check_json(path: str, value: Any, depth: int = 0) -> Any:
    """Check that ``value`` is JSON-ready (what ``object`` fields and unknown fields carry); dates become strings."""
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
            out[key] = check_json(f"{path}.{key}", item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [check_json(f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value)]
    raise ValidationError(path, f"{_type_name(value)} is not JSON-serialisable")


def _array(path: str, value: Any, what: str) -> list[Any] | tuple[Any, ...]:
    if isinstance(value, list | tuple):
        return value
    raise ValidationError(path, f"expected an array of {what}, got {_type_name(value)}")


def _check_count(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(path, f"expected an integer, got {_type_name(value)}")
    if value < 0:
        raise ValidationError(path, f"must not be negative, got {value}")
    if value > MAX_INT:
        raise ValidationError(path, "integer out of range")
    return value


def _check_delay(path: str, item: Any) -> dict[str, Any]:
    if attrs.has(type(item)):
        item = {"minutes": item.minutes, "hours": item.hours, "days": item.days, **getattr(item, "extra", {})}
    if not isinstance(item, Mapping):
        raise ValidationError(path, f"expected an object, got {_type_name(item)}")
    entry: dict[str, Any] = check_json(path, item)
    for unit in ("minutes", "hours", "days"):
        if unit in entry:
            _check_count(f"{path}.{unit}", entry[unit])
    return entry


def _check_kind(path: str, kind: Kind, value: Any) -> Any:
    if kind is Kind.STR:
        if not isinstance(value, str):
            raise ValidationError(path, f"expected a string, got {_type_name(value)}")
        return value
    if kind is Kind.ID:
        return check_id(path, value)
    if kind is Kind.COUNT:
        return _check_count(path, value)
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise ValidationError(path, f"expected true or false, got {_type_name(value)}")
        return value
    if kind is Kind.DATE:
        return _check_date(path, value)
    if kind is Kind.OBJECT:
        if not isinstance(value, Mapping):
            raise ValidationError(path, f"expected an object, got {_type_name(value)}")
        return check_json(path, value)
    if kind is Kind.ID_LIST:
        if isinstance(value, set | frozenset):
            value = list(value)
        return [check_id(f"{path}[{i}]", item) for i, item in enumerate(_array(path, value, "integers"))]
    if kind is Kind.WEEKDAYS:
        days = _array(path, value, "weekday names")
        for i, day in enumerate(days):
            if day not in WEEKDAYS:
                got = repr(day) if isinstance(day, str) else _type_name(day)
                raise ValidationError(f"{path}[{i}]", f"expected a weekday name (Monday..Sunday), got {got}")
        return list(days)
    # Kind.CALLBACK_DELAYS
    return [_check_delay(f"{path}[{i}]", item) for i, item in enumerate(_array(path, value, "{minutes, hours, days}"))]


def _unknown(table: Table, name: Any, path: str) -> ValidationError:
    if not isinstance(name, str):
        return ValidationError(f"{path}{name!r}", "field names must be strings")
    if name in table.read_only:
        return ValidationError(f"{path}{name}", f"is set by the server; {table.name} requests do not carry it")
    close = difflib.get_close_matches(name, table.by_name, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ValidationError(
        f"{path}{name}",
        f"is not a field of {table.name}{hint}; a field this SDK does not know yet goes in extra_body",
    )


def check_fields(
    table: Table, fields: Mapping[str, Any], *, mode: Literal["create", "update"], path: str = ""
) -> dict[str, Any]:
    """Check the fields a caller gave by name against ``table`` and return the body, JSON-ready.

    ``mode="create"``: every required field given, not null, a required string not blank; fields not
    given are not sent. ``mode="update"`` (a full replacement): optional PUT-table fields not given
    go as null, required ones not given are left out, and a field outside the PUT table goes only
    with a value. ``path`` prefixes field names in errors (``clients[3].``).
    """
    body: dict[str, Any] = {}
    by_name = table.by_name
    for name, value in fields.items():
        spec = by_name.get(name)
        if spec is None:
            raise _unknown(table, name, path)
        kind = spec.kind
        # Fast paths for the common well-typed values; anything else goes the long way round.
        if kind is _S and type(value) is str:
            if spec.required and (not value or value.isspace()):
                raise ValidationError(f"{path}{name}", "is required and must not be empty")
            body[name] = value
        elif value is None:
            if spec.required:
                raise ValidationError(f"{path}{name}", "is required and must not be null")
            if mode == "create" or spec.put:
                body[name] = None
        elif kind is _IDS and type(value) is list and all(type(i) is int and 0 < i <= MAX_INT for i in value):
            body[name] = list(value)
        else:
            checked = _check_kind(f"{path}{name}", kind, value)
            if spec.required and kind is _S and not checked.strip():
                raise ValidationError(f"{path}{name}", "is required and must not be empty")
            body[name] = checked
    if mode == "create":
        for name in table.required:
            if name not in body:
                raise ValidationError(f"{path}{name}", "is required")
    else:
        for name in table.nulled:
            if name not in body:
                body[name] = None
    for name, needed in table.pairs:
        if body.get(name) and body.get(needed) is None:
            raise ValidationError(f"{path}{name}", f"requires {needed} to be present")
    return body


_MODEL_NAMES: dict[tuple[type, str], tuple[tuple[str, ...], frozenset[str]]] = {}


def _model_names(cls: type, table: Table) -> tuple[tuple[str, ...], frozenset[str]]:
    """The attributes of a model class that a request of ``table`` carries, and all its attributes (cached)."""
    found = _MODEL_NAMES.get((cls, table.name))
    if found is None:
        names = [attribute.name for attribute in attrs.fields(cls)]
        sent = tuple(name for name in names if name in table.by_name or name == "id")
        found = _MODEL_NAMES[cls, table.name] = (sent, frozenset(names))
    return found


def item_fields(table: Table, item: Any, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The named fields of an item (a mapping as given) and its extra fields (a model's ``extra``).

    A model's None means "not given"; what only answers carry (a case list's ``case_ids``) stays behind.
    """
    if isinstance(item, Mapping):
        return dict(item), {}
    if attrs.has(type(item)):
        sent, names = _model_names(type(item), table)
        fields = {name: value for name in sent if (value := getattr(item, name)) is not None}
        extra: Mapping[str, Any] = getattr(item, "extra", None) or {}
        return fields, {key: value for key, value in extra.items() if key not in names and value is not None}
    raise ValidationError(path.rstrip(".") or "item", f"expected a model or a mapping, got {type(item).__name__}")


def prepare(
    table: Table,
    item: Any,
    *,
    mode: Mode = "upsert",
    path: str = "",
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body that sending ``item`` (a model or a mapping of field names) under ``mode`` carries.

    ``"create"`` refuses an ``id``; ``"update"`` (a full replacement) leaves it out (it is in the
    path); ``"upsert"`` creates without one and replaces with one (leading the body). ``extra_body``
    adds fields this SDK does not know yet, checked to be JSON only.
    """
    fields, extra = item_fields(table, item, path)
    item_id = fields.pop("id", None)
    if mode == "create" or (mode == "upsert" and item_id is None):
        if item_id is not None:
            raise ValidationError(f"{path}id", "is given by the server; an item with an id is an update")
        body = check_fields(table, fields, mode="create", path=path)
    elif not table.updates:
        raise ValidationError(f"{path}id", f"{table.name} cannot be updated")
    else:
        body = check_fields(table, fields, mode="update", path=path)
        if mode == "upsert":
            body = {"id": check_id(f"{path}id", item_id), **body}
    for name, value in extra.items():
        body[name] = check_json(f"{path}{name}", value)
    for name, value in (extra_body or {}).items():
        if name in table.by_name or name == "id":
            raise ValidationError(f"extra_body.{name}", f"is a field of {table.name}: pass it by name")
        body[name] = check_json(f"extra_body.{name}", value)
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


def check_page(name: str, value: Any, maximum: int = MAX_INT) -> int:
    """Check a ``page`` or ``page_size`` query parameter (1 to ``maximum``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, f"expected an integer, got {_type_name(value)}")
    if not 1 <= value <= maximum:
        raise ValidationError(name, f"must be between 1 and {maximum}, got {value}")
    return value
