"""Results of bulk calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import attrs

if TYPE_CHECKING:
    from ..errors import KayseError

T = TypeVar("T")

BulkStatus = Literal["succeeded", "rejected", "not_attempted", "uncertain"]
"""What became of one item of a bulk call.

- ``succeeded``: stored; ``value`` is what the server returned.
- ``rejected``: refused (by local validation or by the server); nothing stored.
- ``not_attempted``: never sent (the job was stopped, or a budget ran out).
- ``uncertain``: sent, but no answer came back: it may or may not be stored.
"""


@attrs.frozen(kw_only=True)
class BulkItem(Generic[T]):
    """The outcome of one input item of a bulk call; ``index`` is its place in the input."""

    index: int
    status: BulkStatus
    value: T | None = None
    error: KayseError | None = None

    @property
    def ok(self) -> bool:
        """True when the item was stored."""
        return self.status == "succeeded"


@attrs.frozen(kw_only=True)
class BulkProgress:
    """Where a bulk call stands, passed to its ``progress`` callback after every chunk.

    - ``items_done``: input items with a final outcome so far (in input order);
    - ``items_total``: the number of input items, when the input has a ``len()``; else None;
    - ``requests``: HTTP requests spent so far (retries included);
    - ``quota_wait_seconds``: an estimate of the time requests spent waiting
      for rate-limit budget rather than for the network (see ``docs/bulk.md``);
    - ``succeeded`` and ``failed``: items done that were, or were not, stored.
    """

    items_done: int
    items_total: int | None
    requests: int
    quota_wait_seconds: float
    succeeded: int
    failed: int


@attrs.define(kw_only=True)
class BulkResult(Generic[T]):
    """Every input item's outcome, in input order, and the requests spent."""

    items: list[BulkItem[T]] = attrs.field(factory=lambda: list[BulkItem[T]]())
    requests: int = 0

    @property
    def succeeded(self) -> list[T]:
        """The returned objects of the items that succeeded, in input order."""
        return [item.value for item in self.items if item.status == "succeeded" and item.value is not None]

    @property
    def failures(self) -> list[BulkItem[T]]:
        """The items that did not succeed, in input order."""
        return [item for item in self.items if item.status != "succeeded"]

    @property
    def ok(self) -> bool:
        """True when every item succeeded."""
        return all(item.status == "succeeded" for item in self.items)

    def raise_for_errors(self) -> None:
        """Raise :class:`kayse_async.errors.BulkError` carrying this result unless every item succeeded."""
        if not self.ok:
            from ..errors import BulkError

            raise BulkError(self)
