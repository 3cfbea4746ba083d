"""The bulk engine (placeholder signatures; the implementation lands with the bulk engine work)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .models import BulkItem, BulkResult

if TYPE_CHECKING:
    from ._resources._base import BulkEndpoint
    from ._transport import Transport

T = TypeVar("T")
ProgressCallback = Callable[[Any], None]


def upsert_iter(
    transport: Transport,
    endpoint: BulkEndpoint[T],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    chunk_size: int,
    concurrency: int,
    bisect_budget: int,
    journal: str | None,
    progress: ProgressCallback | None,
    max_wait: float | None,
) -> AsyncIterator[BulkItem[T]]:
    raise NotImplementedError


async def upsert(
    transport: Transport,
    endpoint: BulkEndpoint[T],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    chunk_size: int,
    concurrency: int,
    raise_on_error: bool,
    bisect_budget: int,
    journal: str | None,
    progress: ProgressCallback | None,
    max_wait: float | None,
) -> BulkResult[T]:
    raise NotImplementedError


async def delete(
    transport: Transport,
    ids: Iterable[int] | AsyncIterable[int],
    *,
    with_clients: bool,
    concurrency: int,
    max_wait: float | None,
    progress: ProgressCallback | None,
) -> list[int]:
    raise NotImplementedError
