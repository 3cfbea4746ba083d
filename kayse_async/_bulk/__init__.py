"""The bulk engine: any number of records through the bulk routes, nothing lost, nothing twice.

The resources call :func:`upsert_iter`, :func:`upsert` and :func:`delete` with a :class:`BulkOptions`;
``job`` ties the input (``source``), the resume file (``journal``), the verdicts (``policy``), the
chunks in flight (``window``) and the counts (``progress``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .._defaults import BULK_DELETE_CHUNK
from .._wire.fields import check_bulk_delete_ids
from ..errors import ValidationError
from ..models import BulkItem, BulkResult, DeleteResult
from .job import BulkOptions, DeleteRoute, Job, Route, UpsertRoute
from .progress import ProgressCallback

if TYPE_CHECKING:
    from .._resources._base import BulkEndpoint
    from .._transport import Transport

__all__ = ["BulkOptions", "ProgressCallback", "delete", "upsert", "upsert_iter"]

T = TypeVar("T")


def upsert_iter(
    transport: Transport, endpoint: BulkEndpoint[T], items: Iterable[Any] | AsyncIterable[Any], options: BulkOptions
) -> AsyncGenerator[BulkItem[T], None]:
    """Stream ``items`` through ``endpoint``; yield one ``BulkItem`` per input item, in input order.

    Reads at most ``chunk_size`` x ``concurrency`` valid items ahead. Closing the iterator cancels
    the requests in flight; the journal stays consistent.
    """
    return Job(transport, UpsertRoute(endpoint), items, options).run()


async def upsert(
    transport: Transport,
    endpoint: BulkEndpoint[T],
    items: Iterable[Any] | AsyncIterable[Any],
    options: BulkOptions,
    *,
    raise_on_error: bool,
) -> BulkResult[T]:
    """Run :func:`upsert_iter` to the end and collect a ``BulkResult`` (raising ``BulkError`` if asked)."""
    return await _collect(transport, UpsertRoute(endpoint), items, options, raise_on_error)


async def delete(
    transport: Transport,
    ids: Iterable[int] | AsyncIterable[int],
    *,
    with_clients: bool,
    options: BulkOptions,
    raise_on_error: bool,
) -> DeleteResult:
    """Delete cases by id through ``POST /v1/cases/bulk_delete``, in chunks of at most 500 ids.

    Every id is checked before the first request (a bad one named ``ids[7]``); repeats are dropped.
    """
    if not isinstance(with_clients, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValidationError("with_clients", f"expected true or false, got {type(with_clients).__name__}")
    unique = check_bulk_delete_ids([i async for i in ids] if isinstance(ids, AsyncIterable) else ids)
    route = DeleteRoute(with_clients)
    options = attrs.evolve(options, chunk_size=BULK_DELETE_CHUNK, bisect_budget=0, journal=None)
    result = await _collect(transport, route, unique, options, raise_on_error)
    confirmed: list[int] = []
    gone: list[int] = []
    not_found: list[int] = []
    for case_id, item in zip(unique, result.items, strict=True):
        if item.ok:
            (confirmed if item.value is not None else gone if case_id in route.gone else not_found).append(case_id)
    return DeleteResult(confirmed, gone=gone, not_found=not_found, failed=result.failures, requests=result.requests)


async def _collect(
    transport: Transport, route: Route[T], items: Any, options: BulkOptions, raise_on_error: bool
) -> BulkResult[T]:
    requests_before = transport.requests_sent
    stream = Job(transport, route, items, options).run()
    async with contextlib.aclosing(stream):
        collected = [item async for item in stream]
    result = BulkResult(items=collected, requests=transport.requests_sent - requests_before)
    if raise_on_error:
        result.raise_for_errors()
    return result
