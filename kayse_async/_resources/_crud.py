"""Create, get, update, patch, delete and bulk upsert: what clients and cases share."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, ClassVar, Generic, TypeVar

from .. import _bulk
from .._defaults import CHUNK_SIZE, CONCURRENCY
from .._wire.fields import check_id, item_fields, prepare
from .._wire.protocol import Request, Response, structure_response
from ..errors import ValidationError
from ..models import BulkItem, BulkResult
from ._base import BulkEndpoint, Fields, TableResource, bulk_endpoint, outgoing, without_extras

T = TypeVar("T")


class CrudResource(TableResource, Generic[T]):
    """A resource with the five single-item calls and the bulk upsert."""

    _path: ClassVar[str]
    _name: ClassVar[str]
    _id_name: ClassVar[str]
    _model: ClassVar[type[Any]]

    def _bulk_endpoint(self) -> BulkEndpoint[T]:
        return bulk_endpoint(f"{self._path}/bulk", self._name, self._table, self._model)

    def _one(self, response: Response, request: Request) -> T:
        model: type[T] = self._model
        return structure_response(
            response.data, model, method=request.method, url=request.path, status=response.status, need_id=True
        )

    async def _create(self, fields: Fields) -> T:
        named, extras = without_extras(fields)
        body = prepare(self._table, named, mode="create", extra_body=extras.get("extra_body"))
        request = outgoing("POST", self._path, body, extras)
        return self._one(await self._send(request), request)

    async def _get(self, item_id: int) -> T:
        request = Request(method="GET", path=f"{self._path}/{check_id(self._id_name, item_id)}", idempotent=True)
        return self._one(await self._send(request), request)

    async def _update(self, item_id: int, fields: Fields) -> T:
        checked_id = check_id(self._id_name, item_id)
        named, extras = without_extras(_without_own_id(fields, checked_id))
        body = prepare(self._table, named, mode="update", extra_body=extras.get("extra_body"))
        request = outgoing("PUT", f"{self._path}/{checked_id}", body, extras, idempotent=True)
        return self._one(await self._send(request), request)

    async def _patch(self, item_id: int, changes: Fields) -> T:
        checked_id = check_id(self._id_name, item_id)
        named, extras = without_extras(_without_own_id(changes, checked_id))
        path, extra_body = f"{self._path}/{checked_id}", extras.get("extra_body")
        # Check the changes alone first, so that a bad change costs no GET.
        outgoing("PUT", path, prepare(self._table, named, mode="update", extra_body=extra_body), extras)
        fields, unknown = item_fields(self._table, await self._get(checked_id), "")
        # Sent back: what the PUT clears when left out. Fields outside the PUT table stay as stored.
        by_name = self._table.by_name
        kept = {name: value for name, value in fields.items() if name in by_name and by_name[name].put}
        body = prepare(self._table, {**kept, **named}, mode="update", extra_body={**unknown, **(extra_body or {})})
        request = outgoing("PUT", path, body, extras, idempotent=True)
        return self._one(await self._send(request), request)

    async def _delete(self, item_id: int) -> None:
        request = Request(
            method="DELETE",
            path=f"{self._path}/{check_id(self._id_name, item_id)}",
            idempotent=True,
            gone_ok_on_retry=True,
        )
        await self._send(request)

    async def bulk_upsert(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        chunk_size: int = CHUNK_SIZE,
        concurrency: int = CONCURRENCY,
        raise_on_error: bool = True,
        bisect_budget: int = 0,
        journal: str | None = None,
        progress: _bulk.ProgressCallback | None = None,
        max_wait: float | None = None,
    ) -> BulkResult[T]:
        """Create (items without ``id``) or update (items with ``id``) any number of items.

        Items (models or mappings, from any iterable or async iterable) are read lazily, checked one
        by one, and sent ``chunk_size`` per request, ``concurrency`` requests at once, through the
        quota. The result holds one ``BulkItem`` per input item, in input order; unless
        ``raise_on_error`` is False, ``errors.BulkError`` (carrying it) is raised at the end if any
        item failed. ``bisect_budget``: extra requests to split a refused batch and store its good
        items; ``journal``: a file of completed chunks, so that a rerun skips them instead of
        creating duplicates; ``progress``: called after every chunk with a ``BulkProgress``.
        """
        options = _bulk.BulkOptions(
            chunk_size=chunk_size,
            concurrency=concurrency,
            bisect_budget=bisect_budget,
            journal=journal,
            progress=progress,
            max_wait=max_wait,
        )
        return await _bulk.upsert(self._transport, self._bulk_endpoint(), items, options, raise_on_error=raise_on_error)

    def bulk_upsert_iter(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        chunk_size: int = CHUNK_SIZE,
        concurrency: int = CONCURRENCY,
        bisect_budget: int = 0,
        journal: str | None = None,
        progress: _bulk.ProgressCallback | None = None,
        max_wait: float | None = None,
    ) -> AsyncIterator[BulkItem[T]]:
        """Like :meth:`bulk_upsert`, streamed: yields one ``BulkItem`` per input item, in input order.

        Memory stays bounded by ``chunk_size`` x ``concurrency``; nothing is raised for failed items.
        """
        options = _bulk.BulkOptions(
            chunk_size=chunk_size,
            concurrency=concurrency,
            bisect_budget=bisect_budget,
            journal=journal,
            progress=progress,
            max_wait=max_wait,
        )
        return _bulk.upsert_iter(self._transport, self._bulk_endpoint(), items, options)


def _without_own_id(fields: Fields, item_id: int) -> Fields:
    """``fields`` without an ``id`` equal to the path's; a different one is an error (ids cannot change)."""
    if "id" not in fields:
        return fields
    value = fields["id"]
    if value is not None and value != item_id:
        raise ValidationError("id", f"does not match the id in the path (got {value!r}); ids cannot be changed")
    return {name: value for name, value in fields.items() if name != "id"}
