"""The input of a bulk job, read one item at a time whether it is a plain or an async iterable."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from ..errors import ValidationError


class Source:
    """Numbers the items of ``items`` as it reads them; ``total`` is ``len(items)`` when it has one."""

    def __init__(self, items: Any) -> None:
        self._sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        if hasattr(items, "__aiter__"):
            self._async = aiter(items)
        elif isinstance(items, str | bytes | Mapping) or not hasattr(items, "__iter__"):
            # A string or a mapping is iterable, but never a list of items: refuse it rather than send its letters.
            raise ValidationError("items", f"expected an iterable of models or mappings, got {type(items).__name__}")
        else:
            self._sync = iter(items)
        try:
            self.total: int | None = len(items)
        except TypeError:
            self.total = None
        self.index = 0

    @property
    def is_sync(self) -> bool:
        """True for a plain iterable, read with :meth:`next_now` (no coroutine per item)."""
        return self._sync is not None

    def next_now(self) -> tuple[int, Any] | None:
        """The next item of a plain iterable and its index, or None at the end."""
        assert self._sync is not None
        try:
            item = next(self._sync)
        except StopIteration:
            return None
        self.index += 1
        return self.index - 1, item

    async def next(self) -> tuple[int, Any] | None:
        """The next item and its index, or None at the end."""
        if self._sync is not None:
            return self.next_now()
        assert self._async is not None
        try:
            item = await anext(self._async)
        except StopAsyncIteration:
            return None
        self.index += 1
        return self.index - 1, item

    async def aclose(self) -> None:
        """Close a generator the job stopped reading (so its ``finally`` runs); other iterables are left alone."""
        if inspect.isasyncgen(self._async):
            await self._async.aclose()
        elif inspect.isgenerator(self._sync):
            self._sync.close()
