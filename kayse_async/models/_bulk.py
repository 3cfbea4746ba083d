"""Results of bulk calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import attrs

if TYPE_CHECKING:
    from ..errors import KayseError

T = TypeVar("T")

BulkStatus = Literal["succeeded", "rejected", "not_attempted", "uncertain"]
"""What became of one item of a bulk call: ``succeeded`` (stored; ``value`` is what the server returned),
``rejected`` (refused, locally or by the server), ``not_attempted`` (never sent: the job stopped, or a
budget ran out) or ``uncertain`` (sent, no answer came back: it may or may not be stored)."""

Resolution = Literal["stored_before", "stored_now"]
"""How a rerun with a journal resolved an item an earlier run left ``uncertain``: ``stored_before`` (the
server refused it as a duplicate of its natural key, so the earlier attempt stored it; ``value`` is None)
or ``stored_now`` (the earlier attempt had not stored it; this run did)."""


@attrs.frozen(kw_only=True)
class BulkItem(Generic[T]):
    """The outcome of one input item of a bulk call; ``index`` is its place in the input.

    ``resolved``: how this run resolved an item an earlier run left uncertain (:data:`Resolution`).
    """

    index: int
    status: BulkStatus
    value: T | None = None
    error: KayseError | None = None
    resolved: Resolution | None = None

    @property
    def ok(self) -> bool:
        """True when the item was stored."""
        return self.status == "succeeded"


@attrs.frozen(kw_only=True)
class BulkProgress:
    """Where a bulk call stands, passed to its ``progress`` callback after every chunk.

    ``items_done``: items with a final outcome so far; ``items_total``: the input's ``len()``, or None;
    ``requests``: requests spent (retries included); ``quota_wait_seconds``: time spent waiting for
    budget; ``succeeded``/``failed``: items done that were, or were not, stored; ``resolved_*``: items
    an earlier run left uncertain, resolved by this one (in ``succeeded`` too).
    """

    items_done: int
    items_total: int | None
    requests: int
    quota_wait_seconds: float
    succeeded: int
    failed: int
    resolved_stored_before: int = 0
    resolved_stored_now: int = 0


@attrs.define(kw_only=True)
class BulkResult(Generic[T]):
    """Every input item's outcome, in input order, and the requests spent."""

    items: list[BulkItem[T]] = attrs.field(factory=lambda: list[BulkItem[T]]())
    requests: int = 0

    @property
    def succeeded(self) -> list[T]:
        """The returned objects of the items that succeeded, in input order.

        Items resolved as ``stored_before`` have no object (``value`` None) and are not in it.
        """
        return [item.value for item in self.items if item.status == "succeeded" and item.value is not None]

    @property
    def resolved_stored_before(self) -> int:
        """Items an earlier run left uncertain that this one found stored by that run (``value`` None)."""
        return sum(item.resolved == "stored_before" for item in self.items)

    @property
    def resolved_stored_now(self) -> int:
        """Items an earlier run left uncertain, not stored then, that this run stored."""
        return sum(item.resolved == "stored_now" for item in self.items)

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


class DeleteResult(list[int]):
    """What ``cases.bulk_delete`` did: a list of the ids an answer confirmed deleted (in input order), and the rest.

    Every other id asked for is in one of ``gone`` (absent from an answer that followed a lost one:
    deleted by that attempt, or never there), ``not_found`` (absent from the first answer) or
    ``failed`` (a ``BulkItem`` per id whose chunk failed; only with ``raise_on_error=False``).
    """

    def __init__(
        self,
        confirmed: list[int],
        *,
        gone: list[int] | None = None,
        not_found: list[int] | None = None,
        failed: list[BulkItem[int]] | None = None,
        requests: int = 0,
    ) -> None:
        super().__init__(confirmed)
        self.gone: list[int] = gone or []
        self.not_found: list[int] = not_found or []
        self.failed: list[BulkItem[int]] = failed or []
        self.requests = requests
        """HTTP requests the call spent."""

    @property
    def confirmed(self) -> list[int]:
        """The ids an answer confirmed deleted (the list's own items), in input order."""
        return list(self)

    @property
    def ok(self) -> bool:
        """True when no chunk failed: every id is confirmed, gone or not found."""
        return not self.failed

    def __repr__(self) -> str:
        return (
            f"DeleteResult({list(self)!r}, gone={self.gone!r}, not_found={self.not_found!r}, "
            f"failed={len(self.failed)}, requests={self.requests})"
        )
