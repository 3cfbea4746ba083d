"""The emulator's request rules: its own checks, applied to the SDK's field tables.

Which fields each body holds comes from ``kayse_async._wire.fields``; how a value is judged is written
here again, apart from the SDK's checks, so the emulator still catches the SDK sending what the API
refuses (see docs/emulator.md). The OpenAPI document (tests/emulator/openapi_gen.py) derives from these.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any, Final, cast

import attrs

from .._wire import fields as sdk
from .._wire.converter import unstructure

MAX_INT: Final = 2**63 - 1
"""The largest integer the emulator accepts: the API's integers are 64-bit."""

MAX_BULK_DELETE: Final = 500
MAX_PAGE_SIZE: Final = 100
DEFAULT_PAGE_SIZE: Final = 25
WEEKDAYS: Final = sdk.WEEKDAYS

_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


class Reject(Exception):
    """An error response: HTTP status, a message and the field it concerns. Messages name the field and
    the rule, never the values of the request (they may be personal data or secrets)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"message": self.message, "field": self.field}


def bad(field: str | None, message: str) -> Reject:
    """A 400 naming ``field``."""
    return Reject(400, message, field)


def _check_string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise bad(path, f"{path} must be a string")
    return value


def _check_id(value: object, path: str, minimum: int = 1) -> int:
    # bool is a subclass of int in Python, never in JSON.
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad(path, f"{path} must be an integer")
    if not minimum <= value <= MAX_INT:
        raise bad(path, f"{path} must be a {'positive' if minimum else 'non-negative'} 64-bit integer")
    return value


def _check_bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise bad(path, f"{path} must be a boolean")
    return value


def _check_date(value: object, path: str) -> str:
    message = f"{path} must be a date in YYYY-MM-DD format"
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise bad(path, message)
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise bad(path, message) from None
    return value


def _check_weekday(value: object, path: str) -> object:
    if value not in WEEKDAYS:
        raise bad(path, f"{path} must be one of {', '.join(WEEKDAYS)}")
    return value


MAX_DEPTH: Final = 32
"""How deeply free-form objects (``meta``, ``external_source_data``) may nest."""


def _depth(value: object) -> int:
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        deepest = max(deepest, level)
        children: Iterable[object] = ()
        if isinstance(item, dict):
            children = cast("dict[str, object]", item).values()
        elif isinstance(item, list):
            children = cast("list[object]", item)
        pending.extend((child, level + 1) for child in children)
    return deepest


def _check_object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(path, f"{path} must be an object")
    if _depth(value) > MAX_DEPTH:
        raise bad(path, f"{path} nests more than {MAX_DEPTH} levels deep")
    return dict(value)  # pyright: ignore[reportUnknownArgumentType]


Kind = Callable[[object, str], Any]
"""A field's type: the check of a non-null value at a path, returning it cleaned (or raising a 400)."""


def _list_of(kind: Kind, what: str) -> Kind:
    def check(value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise bad(path, f"{path} must be an array of {what}")
        return [kind(item, f"{path}[{index}]") for index, item in enumerate(cast("list[object]", value))]

    return check


def _check_id_list(value: object, path: str) -> list[int]:
    # Repeated ids are harmless: keep the first occurrence of each.
    return list(dict.fromkeys(_list_of(_check_id, "integers")(value, path)))


STRING: Final[Kind] = _check_string
ID: Final[Kind] = _check_id
COUNT: Final[Kind] = functools.partial(_check_id, minimum=0)
BOOL: Final[Kind] = _check_bool
DATE: Final[Kind] = _check_date
OBJECT: Final[Kind] = _check_object
ID_LIST: Final[Kind] = _check_id_list
STRING_LIST: Final = _list_of(_check_string, "strings")
WEEKDAY_LIST: Final = _list_of(_check_weekday, "weekday names")


@attrs.frozen
class Field:
    """One field of a request body; ``put``: a full replacement that omits it clears it."""

    name: str
    kind: Kind
    required: bool = False
    description: str = ""
    put: bool = True


def _object_kind(fields: tuple[Field, ...], *, defaults: Mapping[str, Any] | None = None) -> Kind:
    """A nested object with its own table; every nested field is optional and may be null."""

    def check(value: object, path: str) -> dict[str, Any]:
        cleaned = check_fields(_check_object(value, path), fields, prefix=f"{path}.", require=False)
        return {**(defaults or {}), **{k: v for k, v in cleaned.items() if v is not None}}

    return check


def check_fields(
    data: Mapping[str, Any],
    fields: tuple[Field, ...],
    *,
    prefix: str = "",
    require: bool,
    extra: Set[str] = frozenset(),
) -> dict[str, Any]:
    """Check ``data`` against a table in table order; return the fields it gave, cleaned.

    With ``require`` the required fields must be present; given, they may not be null (nor an empty
    string). ``extra`` names fields outside the table taken as any JSON value; other keys are refused.
    """
    cleaned: dict[str, Any] = {}
    for field in fields:
        path = prefix + field.name
        if field.name not in data:
            if require and field.required:
                raise bad(path, f"{path} is required")
            continue
        value = data[field.name]
        if value is None:
            if field.required:
                raise bad(path, f"{path} must not be null")
            cleaned[field.name] = None
            continue
        checked = field.kind(value, path)
        if field.required and isinstance(checked, str) and not checked.strip():
            raise bad(path, f"{path} must not be empty")
        cleaned[field.name] = checked
    known = {field.name for field in fields}
    for key in data:
        if key not in known and key not in extra:
            raise bad(prefix + key, f"unknown field {prefix}{key}")
    cleaned.update({name: data[name] for name in extra if name in data})
    return cleaned


# ---------------------------------------------------------------------------------------------
# The tables: the SDK's, with the emulator's own checks; see docs/emulator.md for the choices made.

FILTER_FIELDS: Final = (
    Field("status_ids", ID_LIST, description="Status ids (see the emulator's lookups); any of them matches"),
    Field("case_type_ids", ID_LIST, description="Case type ids (see the emulator's lookups); any of them matches"),
    Field("statuses", STRING_LIST, description="Case statuses; any of them matches"),
    Field("types", STRING_LIST, description="Case types; any of them matches"),
    Field("is_obo", BOOL, description="Only cases whose is_obo flag is this value"),
    Field("jurisdiction", STRING, description="Only cases of this jurisdiction (exact match)"),
)
FILTER: Final = _object_kind(FILTER_FIELDS)

DELAY_FIELDS: Final = tuple(Field(unit, COUNT, description=unit.title()) for unit in ("minutes", "hours", "days"))
CALLBACK_DELAYS: Final = _list_of(_object_kind(DELAY_FIELDS, defaults={"minutes": 0, "hours": 0, "days": 0}), "objects")

KINDS: Final[dict[sdk.Kind, Kind]] = {
    sdk.Kind.STR: STRING,
    sdk.Kind.ID: ID,
    sdk.Kind.COUNT: COUNT,
    sdk.Kind.BOOL: BOOL,
    sdk.Kind.DATE: DATE,
    sdk.Kind.OBJECT: OBJECT,
    sdk.Kind.ID_LIST: ID_LIST,
    sdk.Kind.WEEKDAYS: WEEKDAY_LIST,
    sdk.Kind.CALLBACK_DELAYS: CALLBACK_DELAYS,
}
"""The emulator's check of each kind of the SDK's tables."""


def _adopt(table: sdk.Table, **kinds: Kind) -> tuple[Field, ...]:
    """The fields of one of the SDK's tables, checked by the emulator's code (``kinds``: closer checks by name)."""
    return tuple(
        Field(field.name, kinds.get(field.name, KINDS[field.kind]), field.required, field.description, field.put)
        for field in table.fields
    )


CLIENT_FIELDS: Final = _adopt(sdk.CLIENTS)
CLIENT_ALIAS: Final = Field("case_id", ID, description="Single associated case ID (alias of case_ids)")
CASE_FIELDS: Final = _adopt(sdk.CASES)
CASE_LIST_FIELDS: Final = _adopt(sdk.CASE_LISTS, filter=FILTER)
CAMPAIGN_FIELDS: Final = _adopt(sdk.CAMPAIGNS)
SMS_FIELDS: Final = _adopt(sdk.SMS)
EMAIL_FIELDS: Final = _adopt(sdk.EMAIL)
CALL_FIELDS: Final = _adopt(sdk.CALLS)
BULK_DELETE_FIELDS: Final = (
    Field("ids", ID_LIST, True, f"Case IDs to delete (1 to {MAX_BULK_DELETE} per request)"),
    Field("with_clients", BOOL, description="When true, also deletes clients linked only to the deleted cases"),
)


def metadata_objects() -> list[dict[str, Any]]:
    """The body of ``GET /v1/metadata/objects``: the tables of cases, clients and case lists."""
    return [unstructure(sdk.schema(table)) for table in (sdk.CASES, sdk.CLIENTS, sdk.CASE_LISTS)]


# ---------------------------------------------------------------------------------------------
# Whole bodies.


def require_object(value: object, path: str | None = None) -> dict[str, Any]:
    """``value`` as a JSON object, or a 400."""
    if not isinstance(value, dict):
        where = "request body" if path is None else path
        raise bad(path, f"{where} must be a JSON object")
    return value  # pyright: ignore[reportUnknownVariableType]


def check_client(
    data: Mapping[str, Any], *, prefix: str = "", require: bool, extra_fields: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A client body; ``case_id`` (the reference's single-id spelling of ``case_ids``) is kept apart;
    ``extra_fields`` are fields a newer server knows (any JSON value)."""
    cleaned = check_fields(data, CLIENT_FIELDS, prefix=prefix, require=require, extra={"case_id"} | extra_fields)
    if "case_id" in data:
        if "case_ids" in data:
            raise bad(prefix + "case_id", f"{prefix}case_id cannot be given together with {prefix}case_ids")
        value = data["case_id"]
        cleaned["case_id"] = None if value is None else _check_id(value, prefix + "case_id")
    return cleaned


def check_case(
    data: Mapping[str, Any], *, prefix: str = "", require: bool, extra_fields: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A case body; ``extra_fields`` are fields a newer server knows (any JSON value)."""
    return check_fields(data, CASE_FIELDS, prefix=prefix, require=require, extra=extra_fields)


def check_case_list(data: Mapping[str, Any], *, prefix: str = "", require: bool) -> dict[str, Any]:
    """A case list body: include_ids and exclude_ids need a filter."""
    cleaned = check_fields(data, CASE_LIST_FIELDS, prefix=prefix, require=require)
    if cleaned.get("filter") is None:
        for name in ("include_ids", "exclude_ids"):
            if cleaned.get(name):
                raise bad(prefix + name, f"{prefix}{name} requires filter to be present")
    return cleaned


def check_items(
    body: object, container: str, check: Callable[..., dict[str, Any]], *, max_batch: int | None
) -> list[tuple[int | None, dict[str, Any]]]:
    """A bulk upsert body ``{container: [item, ...]}``: (id or None, cleaned fields) per item, every item
    checked. Items with an id are updates (required fields may be omitted), items without are creates."""
    data = require_object(body)
    for key in data:
        if key != container:
            raise bad(key, f"unknown field {key}")
    if container not in data:
        raise bad(container, f"{container} is required")
    items: object = data[container]
    if not isinstance(items, list):
        raise bad(container, f"{container} must be an array of objects")
    if not items:
        raise bad(container, f"{container} must not be empty")
    items = cast("list[object]", items)
    if max_batch is not None and len(items) > max_batch:
        raise Reject(413, f"batch too large: at most {max_batch} items", container)
    result: list[tuple[int | None, dict[str, Any]]] = []
    seen: set[int] = set()
    for index, raw in enumerate(items):
        path = f"{container}[{index}]"
        item = dict(require_object(raw, path))
        raw_id = item.pop("id", None)
        item_id = None if raw_id is None else _check_id(raw_id, f"{path}.id")
        if item_id is not None:
            if item_id in seen:
                raise bad(f"{path}.id", f"{path}.id appears twice in the batch")
            seen.add(item_id)
        result.append((item_id, check(item, prefix=f"{path}.", require=item_id is None)))
    return result


def check_bulk_delete(body: object) -> tuple[list[int], bool]:
    """The ids (1 to 500, repeats removed) and with_clients of a bulk_delete body."""
    cleaned = check_fields(require_object(body), BULK_DELETE_FIELDS, require=True)
    ids: list[int] = cleaned["ids"]
    if not ids:
        raise bad("ids", "ids must not be empty")
    if len(ids) > MAX_BULK_DELETE:
        raise bad("ids", f"ids must hold at most {MAX_BULK_DELETE} ids")
    return ids, bool(cleaned.get("with_clients"))


@attrs.frozen
class Page:
    """The query of ``GET /v1/case_lists``."""

    key: str | None
    page: int
    page_size: int
    hide_empty: bool


def _query_int(query: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise bad(name, f"{name} must be an integer")
    if not 1 <= int(text) <= maximum:
        raise bad(name, f"{name} must be between 1 and {maximum}")
    return int(text)


def check_case_list_query(query: Mapping[str, str]) -> Page:
    """Check the query of ``GET /v1/case_lists``; unknown parameters are ignored."""
    hide = query.get("hide_empty", "false").lower()
    if hide not in ("true", "1", "false", "0"):
        raise bad("hide_empty", "hide_empty must be true or false")
    return Page(
        key=query.get("key") or None,
        page=_query_int(query, "page", 1, MAX_INT),
        page_size=_query_int(query, "page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        hide_empty=hide in ("true", "1"),
    )
