"""``/v1/case_lists``: saved case filters."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from typing import Any, Unpack

from .. import _bulk
from .._defaults import CHUNK_SIZE, CONCURRENCY, PAGE_SIZE
from .._wire.fields import CASE_LISTS, MAX_PAGE_SIZE, check_page, prepare
from .._wire.params import CaseListCreate
from .._wire.protocol import Request, structure_response
from ..errors import APIError, ValidationError
from ..models import CaseList, CaseListUpsert
from ._base import TableResource, bulk_endpoint, outgoing, without_extras

_PATH = "/v1/case_lists"


class CaseLists(TableResource):
    """Saved case filters that power campaigns: ``kayse.case_lists``."""

    _table = CASE_LISTS

    def list(
        self,
        *,
        key: str | None = None,
        hide_empty: bool | None = None,
        page: int = 1,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[CaseList]:
        """Every case list from page ``page`` on, one by one (``GET /v1/case_lists``).

        ``key`` searches the names; ``hide_empty`` keeps only lists that hold cases now. A page is
        fetched (one request) as the iteration needs it, until the server's ``total`` is reached.
        """
        return _items(self._start(key, hide_empty, page, page_size))

    def pages(
        self,
        *,
        key: str | None = None,
        hide_empty: bool | None = None,
        page: int = 1,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[builtins.list[CaseList]]:
        """The case lists page by page from page ``page`` on, each page a list (``GET /v1/case_lists``).

        One request per page, as the iteration needs it, until the pages cover the server's
        ``total`` (without one: until a page shorter than ``page_size``).
        """
        return self._start(key, hide_empty, page, page_size)

    def _start(
        self, key: str | None, hide_empty: bool | None, page: int, page_size: int
    ) -> AsyncGenerator[builtins.list[CaseList]]:
        if key is not None and not isinstance(key, str):
            raise ValidationError("key", f"expected a string, got {type(key).__name__}")
        if hide_empty is not None and not isinstance(hide_empty, bool):
            raise ValidationError("hide_empty", f"expected true or false, got {type(hide_empty).__name__}")
        query = {"page_size": str(check_page("page_size", page_size, MAX_PAGE_SIZE))}
        if key is not None:
            query["key"] = key
        if hide_empty is not None:
            query["hide_empty"] = "true" if hide_empty else "false"
        return self._walk(query, check_page("page", page), page_size)

    async def _walk(self, query: dict[str, str], page: int, size: int) -> AsyncGenerator[builtins.list[CaseList]]:
        while True:
            request = Request(method="GET", path=_PATH, params={"page": str(page), **query}, idempotent=True)
            data = (await self._send(request)).data
            items, total = _page_items(data, request)
            yield [structure_response(item, CaseList, method="GET", url=_PATH) for item in items]
            if (len(items) < size) if total is None else page * size >= total:
                return
            page += 1

    async def create(self, **fields: Unpack[CaseListCreate]) -> CaseList:
        """Create a case list (``POST /v1/case_lists``).

        ``name`` is required; ``include_ids`` and ``exclude_ids`` need a
        ``filter``. Never retried once it may have reached the server.
        """
        named, extras = without_extras(fields)
        body = prepare(CASE_LISTS, named, mode="create", extra_body=extras.get("extra_body"))
        request = outgoing("POST", _PATH, body, extras)
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

        Returns the id and action of every input list, in input order; an update replaces the
        members. If any item fails, ``errors.BulkError`` is raised at the end (its ``result`` says which).
        """
        endpoint = bulk_endpoint(f"{_PATH}/bulk", "lists", CASE_LISTS, CaseListUpsert)
        options = _bulk.BulkOptions(
            chunk_size=chunk_size,
            concurrency=concurrency,
            bisect_budget=bisect_budget,
            journal=journal,
            progress=progress,
            max_wait=max_wait,
        )
        result = await _bulk.upsert(self._transport, endpoint, items, options, raise_on_error=True)
        return result.succeeded


async def _items(pages: AsyncGenerator[builtins.list[CaseList]]) -> AsyncIterator[CaseList]:
    async with contextlib.aclosing(pages) as walk:
        async for page in walk:
            for item in page:
                yield item


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
