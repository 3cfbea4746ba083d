"""What every resource shares: the transport, request helpers, the bulk endpoint description."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Generic, TypeVar

import attrs

from .._transport import Transport
from .._wire.converter import unstructure
from .._wire.fields import READ_ONLY, Field, check_fields, check_id
from .._wire.protocol import Request, Response, structure_response
from ..errors import ValidationError

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class BulkEndpoint(Generic[T]):
    """How the bulk engine talks to one bulk upsert route.

    ``prepare(item, path)`` validates one input item (a model or a mapping)
    and returns its JSON body, raising ``ValidationError`` whose field starts
    with ``path`` (``clients[12].``); ``structure(data)`` turns one item of the
    response into ``T``.
    """

    path: str
    request_key: str
    response_key: str
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


def item_fields(item: Any, *, path: str) -> dict[str, Any]:
    """The fields of one input item: a model's set fields, or a mapping as given.

    A model sends what it holds: for a new item (no id) its None fields are
    left out, as a create omits what was not given; for an item with an id
    every field goes, None as null, as a full replacement must.
    """
    if isinstance(item, Mapping):
        return dict(item)
    if attrs.has(type(item)):
        data: dict[str, Any] = unstructure(item)
        if data.get("id") is None:
            data = {k: v for k, v in data.items() if v is not None}
        return data
    raise ValidationError(path.rstrip(".") or "item", f"expected a model or a mapping, got {type(item).__name__}")


def prepare_upsert(table: Mapping[str, Field], resource: str) -> Callable[[Any, str], dict[str, Any]]:
    """A ``BulkEndpoint.prepare`` for a resource: create rules without id, PUT rules with one."""
    read_only = READ_ONLY.get(resource, frozenset()) - {"id"}

    def prepare(item: Any, path: str) -> dict[str, Any]:
        fields = item_fields(item, path=path)
        item_id = fields.pop("id", None)
        for name in read_only:
            fields.pop(name, None)
        if item_id is None:
            return check_fields(table, fields, mode="create", path=path)
        body = {"id": check_id(f"{path}id", item_id)}
        # Bulk updates follow the PUT rules; optional fields not given are nulled by the server.
        body.update(check_fields(table, fields, mode="update", path=path))
        return body

    return prepare


def structurer(cls: type[T], url: str) -> Callable[[Any], T]:
    """A ``BulkEndpoint.structure`` for a model class."""

    def structure(data: Any) -> T:
        return structure_response(data, cls, method="POST", url=url, need_id=True)

    return structure


def bulk_endpoint(path: str, key: str, table: Mapping[str, Field], resource: str, model: type[T]) -> BulkEndpoint[T]:
    """The bulk upsert route ``path``, whose request and answer hold the items under ``key``."""
    return BulkEndpoint(
        path=path,
        request_key=key,
        response_key=key,
        prepare=prepare_upsert(table, resource),
        structure=structurer(model, path),
    )
