"""The Quota protocol: how the transport asks a rate-limit scheduler for budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import attrs

from .._wire.ratelimit import RateLimitInfo
from ..models import QuotaSnapshot

DEFAULT_LIMIT = 500
"""Requests per window per API key, as the Kayse API documents it: the prior until the server says."""

DEFAULT_PERIOD = 3600.0
"""The window, in seconds: the prior until the server says."""


@attrs.frozen(kw_only=True)
class QuotaWait:
    """A wait for budget as it starts, as reported to ``on_wait`` callbacks and logged at INFO.

    ``seconds`` is its expected length (None when it ends with an answer
    still to come). ``reason`` is one of ``"exhausted"`` (the budget is spent
    until the server's Reset), ``"rate_limited"`` (the server answered 429),
    ``"queued"`` (other callers are first in line), ``"warmup"`` (nothing is
    known yet: the first request goes alone and the rest follow its answer)
    or ``"lost"`` (an answer was lost: the next probe waits a back-off).
    """

    bucket: str
    seconds: float | None
    reason: str


WaitCallback = Callable[[QuotaWait], None]


def bucket_name(base_url: str, fingerprint: str, name: str | None = None) -> str:
    """The bucket of a server and a key: the base URL's origin (or ``name``, to share one on purpose)
    and the key's fingerprint."""
    if name is None:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        name = f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"
    return f"{name}|{fingerprint}"


class Lease(Protocol):
    """One unit of budget, granted to one HTTP attempt.

    The transport calls exactly one of:

    - ``release()`` when the attempt is abandoned before anything was sent
      (cancelled while waiting, or the connection could not be opened): the
      unit goes back to the budget;
    - ``sent()`` just before the request goes on the wire, then later
      ``complete(info, status)`` when a response arrived (``info`` is the
      parsed rate-limit headers, ``status`` the HTTP status; 429 is
      authoritative) or ``complete(None, None)`` when no response came back.

    A unit the server may have seen is never refunded.
    """

    def sent(self) -> None: ...

    def complete(self, info: RateLimitInfo | None, status: int | None) -> None: ...

    def release(self) -> None: ...


@runtime_checkable
class Quota(Protocol):
    """A rate-limit scheduler shared by every client of one API key.

    ``bucket`` names the budget: the SDK passes the server's origin and a
    stable fingerprint of the API key (never the key itself), or the name
    given as ``AsyncKayse(quota_bucket=...)`` and the fingerprint, so one
    ``Quota`` holds the budgets of many servers and keys.
    """

    async def acquire(self, bucket: str, *, max_wait: float | None = None, priority: bool = False) -> Lease:
        """Wait for one unit of ``bucket``'s budget, first come, first served.

        Raises ``errors.QuotaExhaustedError`` at once, without sleeping, when
        the unit cannot be had within ``max_wait`` seconds (None: no bound),
        and after ``max_wait`` seconds if the estimate proved too hopeful.
        Cancelling the wait gives nothing up: the caller's place is simply lost.

        ``priority=True`` is for a retry of a request that was already in
        line (after a 429, a 503 or a failed connection): it goes to the head
        of the queue, behind other retries only, so a retried request keeps
        its place.
        """
        ...

    def snapshot(self, bucket: str) -> QuotaSnapshot:
        """What is known of ``bucket``'s budget now, without a request."""
        ...

    async def aclose(self) -> None:
        """Release what the scheduler holds (connections); idempotent."""
        ...
