"""What every resource shares: the transport, request helpers, the check and schema, the bulk endpoint."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from .._transport import Transport
from .._wire.fields import Mode, Table, prepare, schema
from .._wire.protocol import KEY_HEADERS, Request, Response, structure_response
from ..errors import ValidationError
from ..models import ObjectSchema

T = TypeVar("T")
Fields = Mapping[str, Any]

_EXTRAS = ("extra_body", "extra_query", "extra_headers")


@attrs.frozen(kw_only=True)
class BulkEndpoint(Generic[T]):
    """How the bulk engine talks to one bulk upsert route.

    ``prepare(item, path)`` checks one input item and returns its JSON body (a ``ValidationError``'s
    field starts with ``path``, ``clients[12].``); ``structure(data)`` turns one answered item into ``T``.
    """

    path: str
    key: str
    prepare: Callable[[Any, str], dict[str, Any]]
    structure: Callable[[Any], T]


class Resource:
    """Base of the resource classes: holds the transport."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def _send(self, request: Request, *, max_wait: float | None = None) -> Coroutine[Any, Any, Response]:
        # The transport's coroutine itself, for the caller to await: no extra layer per request.
        return self._transport.request(request, max_wait=max_wait)


class TableResource(Resource):
    """A resource whose requests carry the fields of one table: it checks items and describes its fields."""

    _table: ClassVar[Table]

    @classmethod
    def check(cls, item: object, *, mode: Mode = "upsert") -> dict[str, Any]:
        """The JSON body sending ``item`` (a model or a mapping) would carry, checked as the call would; sends nothing.

        ``mode``: ``"create"``, ``"update"`` (a full replacement, no ``id``) or ``"upsert"`` (a
        ``bulk_upsert`` item). Raises ``errors.ValidationError`` as the call would.
        """
        return prepare(cls._table, item, mode=mode)

    @classmethod
    def schema(cls) -> ObjectSchema:
        """The fields this SDK sends for this resource, in the form ``kayse.metadata.objects()`` uses; no request."""
        return schema(cls._table)


def without_extras(fields: Fields) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields a caller named, and the extras among them (``extra_body``, ``extra_query``, ``extra_headers``)."""
    named = dict(fields)
    return named, {name: named.pop(name) for name in _EXTRAS if name in named}


def _strings(name: str, values: Any) -> dict[str, str] | None:
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise ValidationError(name, f"expected a mapping of strings, got {type(values).__name__}")
    for key, value in values.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValidationError(f"{name}.{key}", "names and values must be strings")
    return dict(values)


def outgoing(method: str, path: str, body: dict[str, Any], extras: Fields, *, idempotent: bool = False) -> Request:
    """A request carrying ``body`` and the caller's ``extra_query`` and ``extra_headers``, checked."""
    headers = _strings("extra_headers", extras.get("extra_headers"))
    for name in headers or ():
        if name.lower() in KEY_HEADERS:
            raise ValidationError(f"extra_headers.{name}", "the API key headers are set by the client")
    query = _strings("extra_query", extras.get("extra_query"))
    return Request(method=method, path=path, json=body, params=query, headers=headers, idempotent=idempotent)


def bulk_endpoint(path: str, key: str, table: Table, model: type[T]) -> BulkEndpoint[T]:
    """The bulk upsert route ``path``, whose request and answer hold the items under ``key``."""

    def prepare_item(item: Any, item_path: str) -> dict[str, Any]:
        return prepare(table, item, mode="upsert", path=item_path)

    def structure(data: Any) -> T:
        return structure_response(data, model, method="POST", url=path, need_id=True)

    return BulkEndpoint(path=path, key=key, prepare=prepare_item, structure=structure)
