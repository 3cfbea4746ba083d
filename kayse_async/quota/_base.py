"""The Quota protocol: how the transport asks a rate-limit scheduler for budget."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

import attrs

from .. import errors
from .._wire.ratelimit import RateLimitInfo
from ..models import QuotaSnapshot

logger = logging.getLogger("kayse_async.quota")

DEFAULT_LIMIT = 500
"""Requests per window per API key, as the Kayse API documents it: the prior until the server says."""

DEFAULT_PERIOD = 3600.0
"""The window, in seconds: the prior until the server says."""


@attrs.frozen(kw_only=True)
class QuotaWait:
    """A wait for budget as it starts, as reported to ``on_wait`` callbacks and logged at INFO.

    ``seconds`` is its expected length (None when it ends with an answer still to come). ``reason``:
    ``"exhausted"`` (spent until the server's Reset), ``"rate_limited"`` (the server answered 429),
    ``"queued"`` (others are first in line), ``"warmup"`` (nothing known yet: the first request goes
    alone) or ``"lost"`` (an answer was lost: the next probe waits a back-off).
    """

    bucket: str
    seconds: float | None
    reason: str


WaitCallback = Callable[[QuotaWait], None]
T = TypeVar("T")


def check_seconds(name: str, value: object, *, zero: bool = False, none: bool = False, inf: bool = False) -> None:
    """Refuse an option that is not a finite number of seconds > 0 (``zero``: >= 0; ``none``: or None;
    ``inf``: or infinity)."""
    if value is None and none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) or (inf and value == math.inf))
        or value < 0
        or (value == 0 and not zero)
    ):
        what = "None or " if none else ""
        raise errors.ConfigurationError(
            f"{name}: must be {what}a number of seconds {'>=' if zero else '>'} 0, got {value!r}"
        )


class Scheduler:
    """What both schedulers are configured with: the prior ``limit`` and ``period``, the margin, ``on_wait``."""

    def __init__(
        self,
        limit: int,
        period: float,
        safety_margin: float | None,
        on_wait: WaitCallback | None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise errors.ConfigurationError(f"limit: must be a positive integer, got {limit!r}")
        check_seconds("period", period)
        check_seconds("safety_margin", safety_margin, zero=True, none=True)
        self._limit = limit
        self._period = float(period)
        self._margin = None if safety_margin is None else float(safety_margin)
        self._on_wait = on_wait
        self._wall_clock = wall_clock

    @property
    def limit(self) -> int:
        """The configured requests per period."""
        return self._limit

    @property
    def period(self) -> float:
        """The configured period, in seconds."""
        return self._period

    def _report(self, bucket: str, seconds: float | None, reason: str) -> None:
        """Log a wait as it starts, at INFO, and hand it to ``on_wait`` (whose errors are logged, not raised)."""
        if seconds is None:
            logger.info("quota wait for bucket %s (%s): until an answer comes", bucket, reason)
        else:
            logger.info("quota wait of about %.3f s for bucket %s (%s)", seconds, bucket, reason)
        if self._on_wait is not None:
            try:
                self._on_wait(QuotaWait(bucket=bucket, seconds=seconds, reason=reason))
            except Exception:
                logger.exception("on_wait callback failed")

    def _warn_headerless(self, bucket: str) -> None:
        """The one WARNING for a server that answers without rate-limit headers."""
        logger.warning(
            "bucket %s: the server answered without rate-limit headers; assuming the configured "
            "%d requests per %g s (MemoryQuota/RedisQuota limit and period)",
            bucket,
            self._limit,
            self._period,
        )

    def _wall_in(self, seconds: float) -> dt.datetime:
        """The wall-clock moment ``seconds`` from now."""
        return dt.datetime.fromtimestamp(self._wall_clock() + seconds, tz=dt.UTC)

    def _refuse(self, bucket: str, eta: float | None, max_wait: float) -> errors.QuotaExhaustedError:
        """The error for a unit not to be had within ``max_wait``, expected in ``eta`` seconds (None: unknown)."""
        resets_at = None if eta is None else self._wall_in(eta)
        when = f"; budget expected at {resets_at.isoformat()}" if resets_at is not None else ""
        logger.info("quota for bucket %s cannot be had within max_wait=%.3f s%s", bucket, max_wait, when)
        return errors.QuotaExhaustedError(
            f"rate-limit budget cannot be had within max_wait={max_wait:g} s{when}", resets_at=resets_at
        )


class Turn(Generic[T]):
    """One caller's place in a line: woken through ``fut`` on its own loop; ``grant`` once it has one."""

    __slots__ = ("fut", "grant", "loop", "priority", "taken")

    def __init__(self, loop: asyncio.AbstractEventLoop, priority: bool) -> None:
        self.loop = loop
        self.fut: asyncio.Future[None] = loop.create_future()
        self.priority = priority
        self.grant: T | None = None
        self.taken = False

    def wake(self) -> None:
        if not self.fut.done():
            self.fut.set_result(None)


def too_late(eta: float | None, max_wait: float) -> bool:
    """Whether a unit expected in ``eta`` seconds (None: only answers to come can bring it) misses ``max_wait``."""
    return max_wait <= 0 if eta is None else eta > max_wait


def enqueue(line: deque[Turn[T]], turn: Turn[T]) -> int:
    """Put ``turn`` in ``line``: a retry behind earlier retries only, else at the end. Returns how many are ahead."""
    ahead = sum(1 for t in line if t.priority) if turn.priority else len(line)
    line.insert(ahead, turn)
    return ahead


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
    """One unit of budget, granted to one HTTP attempt. The transport calls exactly one of:

    - ``release()`` when the attempt is abandoned before anything was sent: the unit goes back;
    - ``sent()`` just before the request goes on the wire, then ``complete(info, status)`` with the
      response's rate-limit headers and status (429 is authoritative), or ``complete(None, None)``
      when no response came back: a unit the server may have seen is never refunded.
    """

    def sent(self) -> None: ...

    def complete(self, info: RateLimitInfo | None, status: int | None) -> None: ...

    def release(self) -> None: ...


@runtime_checkable
class Quota(Protocol):
    """A rate-limit scheduler shared by every client of one API key.

    ``bucket`` names the budget: the server's origin (or ``AsyncKayse(quota_bucket=...)``) and a
    fingerprint of the API key (never the key itself); one ``Quota`` holds many buckets.
    """

    async def acquire(self, bucket: str, *, max_wait: float | None = None, priority: bool = False) -> Lease:
        """Wait for one unit of ``bucket``'s budget, first come, first served.

        Raises ``errors.QuotaExhaustedError`` at once when the unit cannot be had within
        ``max_wait`` seconds (None: no bound), or after ``max_wait`` if the estimate proved too
        hopeful. Cancelling the wait gives nothing up. ``priority=True`` is for a retry (after a
        429, a 503 or a failed connection): it goes to the head of the line, behind other retries.
        """
        ...

    def snapshot(self, bucket: str) -> QuotaSnapshot:
        """What is known of ``bucket``'s budget now, without a request."""
        ...

    async def aclose(self) -> None:
        """Release what the scheduler holds (connections); idempotent."""
        ...
