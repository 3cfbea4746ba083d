"""What a bulk job has done so far, counted chunk by chunk and reported to its ``progress`` callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..models import BulkItem, BulkProgress

if TYPE_CHECKING:
    from .._transport import Transport

ProgressCallback = Callable[[BulkProgress], None]
"""Called after every chunk (in input order) with a :class:`~kayse_async.models.BulkProgress`."""


class Progress:
    """The running counts of one job; ``requests`` and the wait for budget are the transport's, since the start."""

    def __init__(self, transport: Transport, callback: ProgressCallback | None, total: int | None) -> None:
        self._transport = transport
        self._callback = callback
        self._total = total
        self._requests_at_start = transport.requests_sent
        self._wait_at_start = transport.quota_wait_seconds
        self.done = self.succeeded = self.failed = self.stored_before = self.stored_now = 0

    def account(self, outcomes: list[BulkItem[Any]]) -> None:
        """Count one chunk's outcomes, then tell the callback."""
        self.done += len(outcomes)
        for item in outcomes:
            if item.status != "succeeded":
                self.failed += 1
            elif item.resolved is not None:
                self.stored_before += item.resolved == "stored_before"
                self.stored_now += item.resolved == "stored_now"
        self.succeeded = self.done - self.failed
        if self._callback is not None:
            self._callback(
                BulkProgress(
                    items_done=self.done,
                    items_total=self._total,
                    requests=self._transport.requests_sent - self._requests_at_start,
                    quota_wait_seconds=self._transport.quota_wait_seconds - self._wait_at_start,
                    succeeded=self.succeeded,
                    failed=self.failed,
                    resolved_stored_before=self.stored_before,
                    resolved_stored_now=self.stored_now,
                )
            )
