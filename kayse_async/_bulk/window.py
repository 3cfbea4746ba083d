"""The chunk window: a few chunks in flight, handed back in input order (memory bounded by ``concurrency``)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from ..errors import KayseError
from ..models import BulkItem

T = TypeVar("T")


class Entry:
    """One checked input item waiting to be sent: its request body, and whether it creates anything."""

    __slots__ = ("body", "creates", "fingerprint", "index")

    def __init__(self, index: int, body: Any, fingerprint: str, creates: bool) -> None:
        self.index = index
        self.body = body
        self.fingerprint = fingerprint
        self.creates = creates


class Chunk(Generic[T]):
    """A run of consecutive input items: their outcomes so far, and the entries to send."""

    __slots__ = ("entries", "recovers", "slots", "start", "task")

    def __init__(self, start: int) -> None:
        self.start = start
        self.slots: list[BulkItem[T] | None] = []
        self.entries: list[Entry] = []
        self.recovers: str | None = None
        """The batch of an earlier run that these entries are sent again for, if any."""
        self.task: asyncio.Task[None] | None = None

    def set(self, item: BulkItem[T]) -> None:
        self.slots[item.index - self.start] = item

    def outcomes(self) -> list[BulkItem[T]]:
        """One outcome per input item of the chunk, in input order."""
        return [
            slot
            if slot is not None
            else BulkItem[T](  # pragma: no cover - every sent entry gets an outcome; a bug if not
                index=self.start + offset,
                status="uncertain",
                error=KayseError("internal error: no outcome was recorded for this item"),
            )
            for offset, slot in enumerate(self.slots)
        ]


async def window(
    next_chunk: Callable[[], Awaitable[Chunk[T] | None]],
    send: Callable[[Chunk[T]], Coroutine[Any, Any, None]],
    concurrency: int,
) -> AsyncGenerator[Chunk[T], None]:
    """Yield the chunks of ``next_chunk()`` in order, each once ``send`` is done with it; closing cancels them.

    At most ``concurrency`` chunks are read ahead of the one being yielded.
    """
    pending: deque[Chunk[T]] = deque()
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < concurrency:
                chunk = await next_chunk()
                if chunk is None:
                    exhausted = True
                    break
                if chunk.entries:
                    chunk.task = asyncio.ensure_future(send(chunk))
                pending.append(chunk)
            if not pending:
                return
            if pending[0].task is not None:
                await pending[0].task
            yield pending.popleft()
    finally:
        tasks = [c.task for c in pending if c.task is not None and not c.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            # The cancelled requests give their unspent budget back (the transport's leases); a journal
            # keeps their "sent" records without an outcome, which a rerun resolves.
            await asyncio.gather(*tasks, return_exceptions=True)
        for chunk in pending:
            if chunk.task is not None and chunk.task.done() and not chunk.task.cancelled():
                chunk.task.exception()  # retrieved: a failure already propagated elsewhere
