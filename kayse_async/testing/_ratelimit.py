"""The emulator's rate limiter: one budget per API key, in three window modes (see docs/emulator.md).

Time comes from an injected monotonic clock, so the window arithmetic is tested with a fake one.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from typing import Final, Literal

import attrs

Window = Literal["fixed", "sliding", "token"]
WINDOWS: Final[tuple[Window, ...]] = ("fixed", "sliding", "token")

_EPSILON: Final = 1e-9


@attrs.frozen
class Decision:
    """The limiter's answer to one request."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    """Seconds until the budget next grows: when the budget is spent, also when a request is accepted again."""

    @property
    def reset_seconds(self) -> int:
        """``reset_after`` in whole seconds, rounded up (the delta form of ``X-RateLimit-Reset``)."""
        return max(0, math.ceil(self.reset_after - _EPSILON))

    @property
    def retry_after(self) -> int:
        """``Retry-After`` for a refused request: whole seconds, rounded up, at least 1."""
        return max(1, self.reset_seconds)


class RateLimiter:
    """Per-key budgets of ``limit`` requests per ``period`` seconds, in a ``fixed`` window opened by a key's
    first request, a ``sliding`` one (a log of accepted requests) or a ``token`` bucket. A refusal spends nothing."""

    def __init__(
        self, limit: int, period: float, window: Window = "fixed", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not period > 0:
            raise ValueError("period must be positive")
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
        self.limit = limit
        self.period = float(period)
        self.window: Window = window
        self._clock = clock
        self._fixed: dict[str, tuple[float, int]] = {}
        self._logs: dict[str, collections.deque[float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        """Give every key its whole budget again."""
        self._fixed.clear()
        self._logs.clear()
        self._buckets.clear()

    def hit(self, key: str, *, spend: bool = True) -> Decision:
        """Account for one request of ``key``: spend one unit if any is left (``spend=False``: only look)."""
        now = self._clock()
        if self.window == "fixed":
            return self._hit_fixed(key, now, spend)
        if self.window == "sliding":
            return self._hit_sliding(key, now, spend)
        return self._hit_token(key, now, spend)

    def _hit_fixed(self, key: str, now: float, spend: bool) -> Decision:
        start, count = self._fixed.get(key, (now, 0))
        if now >= start + self.period:
            start, count = now, 0
        allowed = count < self.limit
        if allowed and spend:
            count += 1
            self._fixed[key] = (start, count)
        return Decision(allowed, self.limit, self.limit - count, start + self.period - now)

    def _hit_sliding(self, key: str, now: float, spend: bool) -> Decision:
        log = self._logs.get(key, collections.deque())
        while log and log[0] <= now - self.period:
            log.popleft()
        allowed = len(log) < self.limit
        if allowed and spend:
            log.append(now)
            self._logs[key] = log
        return Decision(allowed, self.limit, self.limit - len(log), (log[0] if log else now) + self.period - now)

    def _hit_token(self, key: str, now: float, spend: bool) -> Decision:
        rate = self.limit / self.period
        tokens, last = self._buckets.get(key, (float(self.limit), now))
        tokens = min(float(self.limit), tokens + (now - last) * rate)
        allowed = tokens >= 1.0 - _EPSILON
        if allowed and spend:
            tokens = max(0.0, tokens - 1.0)
            self._buckets[key] = (tokens, now)
        whole = math.floor(tokens + _EPSILON)
        return Decision(allowed, self.limit, whole, max(0.0, (whole + 1 - tokens) / rate))
