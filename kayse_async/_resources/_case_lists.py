"""``/v1/case_lists``: saved case filters."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, Unpack

from .. import _bulk
from .._defaults import CHUNK_SIZE, CONCURRENCY, PAGE_SIZE
from .._wire.fields import CASE_LIST_FIELDS, check_fields, check_page_size
from .._wire.params import CaseListCreate
from .._wire.protocol import Request, structure_response
from ..errors import APIError, ValidationError
from ..models import CaseList, CaseListUpsert
from ._base import Resource, bulk_endpoint

_PATH = "/v1/case_lists"
_MAX_PAGES = 1_000_000


class CaseLists(Resource):
    """Saved case filters that power campaigns: ``kayse.case_lists``."""

    def list(
        self,
        *,
        key: str | None = None,
        hide_empty: bool | None = None,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[CaseList]:
        """Every case list, walking the pages in turn (``GET /v1/case_lists``).

        ``key`` searches the names; ``hide_empty`` keeps only lists that hold
        cases now. Pages are fetched as the iteration needs them, one request
        each; breaking out of the loop stops there.
        """
        if key is not None and not isinstance(key, str):
            raise ValidationError("key", f"expected a string, got {type(key).__name__}")
        if hide_empty is not None and not isinstance(hide_empty, bool):
            raise ValidationError("hide_empty", f"expected true or false, got {type(hide_empty).__name__}")
        size = check_page_size(page_size)
        return self._pages(key, hide_empty, size)

    async def _pages(self, key: str | None, hide_empty: bool | None, page_size: int) -> AsyncIterator[CaseList]:
        seen = 0
        for page in range(1, _MAX_PAGES):
            params = {"page": str(page), "page_size": str(page_size)}
            if key is not None:
                params["key"] = key
            if hide_empty is not None:
                params["hide_empty"] = "true" if hide_empty else "false"
            request = Request(method="GET", path=_PATH, params=params, idempotent=True)
            data = (await self._send(request)).data
            items, total = _page_items(data, request)
            for item in items:
                yield structure_response(item, CaseList, method="GET", url=_PATH)
            seen += len(items)
            if len(items) < page_size or (total is not None and seen >= total) or not items:
                return

    async def create(self, **fields: Unpack[CaseListCreate]) -> CaseList:
        """Create a case list (``POST /v1/case_lists``).

        ``name`` is required; ``include_ids`` and ``exclude_ids`` need a
        ``filter``. Never retried once it may have reached the server.
        """
        if "id" in fields:
            raise ValidationError("id", "is given by the server; use bulk_upsert() to update a case list")
        body = check_fields(CASE_LIST_FIELDS, dict(fields), mode="create", resource="case_lists")
        request = Request(method="POST", path=_PATH, json=body)
        answer = await self._send(request)
        return structure_response(answer.data, CaseList, method="POST", url=_PATH, status=answer.status, need_id=True)

    async def bulk_upsert(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        chunk_size: int = CHUNK_SIZE,
        concurrency: int = CONCURRENCY,
        bisect_budget: int = 0,
        journal: str | None = None,
        progress: _bulk.ProgressCallback | None = None,
        max_wait: float | None = None,
    ) -> builtins.list[CaseListUpsert]:
        """Create (no ``id``) or update (with ``id``) case lists (``POST /v1/case_lists/bulk``).

        Returns the id and action of every input list, in input order. An
        update re-applies the filter ("set": members are replaced). If any
        item fails, ``errors.BulkError`` is raised after every chunk that
        could be sent was sent; its ``result`` says which.
        """
        endpoint = bulk_endpoint(f"{_PATH}/bulk", "lists", CASE_LIST_FIELDS, "case_lists", CaseListUpsert)
        result = await _bulk.upsert(
            self._transport,
            endpoint,
            items,
            chunk_size=chunk_size,
            concurrency=concurrency,
            raise_on_error=True,
            bisect_budget=bisect_budget,
            journal=journal,
            progress=progress,
            max_wait=max_wait,
        )
        return result.succeeded


def _page_items(data: Any, request: Request) -> tuple[list[Any], int | None]:
    """The items of one page and the total, from ``{"case_lists": [...], "total": n}`` or a bare array."""
    if isinstance(data, list):
        return data, None
    if isinstance(data, dict):
        for name in ("case_lists", "items", "data", "lists"):
            items = data.get(name)
            if isinstance(items, list):
                total = data.get("total")
                return items, total if isinstance(total, int) and not isinstance(total, bool) else None
    raise APIError(
        "unexpected response: expected a page of case lists",
        status=200,
        body=data,
        method=request.method,
        url=request.path,
    )
