"""Pure-Python rate-limited servers on the loop's (fake) clock, and a load driver for the schedulers.

Each server answers ``handle(now)`` with (status, RateLimitInfo) the way the
Kayse API does: Remaining and Reset (a delta rounded up to whole seconds) on
every answer, 429 with Retry-After past the limit, a 429 spending nothing.
Each also keeps the arrival time of every request it accepted, so a test can
check the window invariant itself, not only the absence of 429s.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Protocol

from kayse_async._wire.ratelimit import RateLimitInfo
from kayse_async.quota import Quota


class Server(Protocol):
    limit: int
    period: float
    accepted: list[float]
    rejected: int

    def handle(self, now: float) -> tuple[int, RateLimitInfo]: ...


def _ceil(x: float) -> float:
    return float(math.ceil(x - 1e-9))


class FixedServer:
    """Windows [origin + k*period, origin + (k+1)*period); Reset = end of the current window."""

    def __init__(self, limit: int, period: float, *, origin: float = 0.0, round_reset: bool = True) -> None:
        self.limit, self.period, self.origin, self.round_reset = limit, period, origin, round_reset
        self.accepted: list[float] = []
        self.rejected = 0
        self._window = -1
        self._count = 0

    def handle(self, now: float) -> tuple[int, RateLimitInfo]:
        window = math.floor((now - self.origin) / self.period)
        if window != self._window:
            self._window, self._count = window, 0
        end = self.origin + (window + 1) * self.period
        reset = end - now
        if self.round_reset:
            reset = _ceil(reset)
        if self._count >= self.limit:
            self.rejected += 1
            return 429, RateLimitInfo(limit=self.limit, remaining=0, reset_after=reset, retry_after=reset)
        self._count += 1
        self.accepted.append(now)
        return 200, RateLimitInfo(limit=self.limit, remaining=self.limit - self._count, reset_after=reset)

    def max_in_any_window(self) -> int:
        counts: dict[int, int] = {}
        for t in self.accepted:
            w = math.floor((t - self.origin) / self.period)
            counts[w] = counts.get(w, 0) + 1
        return max(counts.values(), default=0)


class SlidingServer:
    """At most ``limit`` accepted in any (now - period, now]; Reset = when the oldest leaves."""

    def __init__(self, limit: int, period: float, *, round_reset: bool = True) -> None:
        self.limit, self.period, self.round_reset = limit, period, round_reset
        self.accepted: list[float] = []
        self.rejected = 0
        self._log: deque[float] = deque()

    def handle(self, now: float) -> tuple[int, RateLimitInfo]:
        while self._log and self._log[0] <= now - self.period:
            self._log.popleft()
        full = len(self._log) >= self.limit
        if not full:
            self._log.append(now)
            self.accepted.append(now)
        reset = self._log[0] + self.period - now
        if self.round_reset:
            reset = _ceil(reset)
        info = RateLimitInfo(
            limit=self.limit,
            remaining=self.limit - len(self._log),
            reset_after=reset,
            retry_after=reset if full else None,
        )
        if full:
            self.rejected += 1
            return 429, info
        return 200, info

    def max_in_any_window(self) -> int:
        times = sorted(self.accepted)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - self.period:
                lo += 1
            best = max(best, hi - lo + 1)
        return best


class TokenServer:
    """A token bucket of ``limit`` tokens refilled at limit/period.

    Reset = when it is full again, or with ``next_token`` when the next whole
    token is in (as the emulator says it).
    """

    def __init__(self, limit: int, period: float, *, round_reset: bool = True, next_token: bool = False) -> None:
        self.limit, self.period, self.round_reset, self.next_token = limit, period, round_reset, next_token
        self.accepted: list[float] = []
        self.rejected = 0
        self._tokens = float(limit)
        self._last: float | None = None

    def handle(self, now: float) -> tuple[int, RateLimitInfo]:
        if self._last is not None:
            self._tokens = min(self.limit, self._tokens + (now - self._last) * self.limit / self.period)
        self._last = now
        ok = self._tokens >= 1.0 - 1e-9
        if ok:
            self._tokens -= 1.0
            self.accepted.append(now)
        else:
            self.rejected += 1
        whole = math.floor(self._tokens + 1e-9)
        reset = (self.limit - self._tokens) * self.period / self.limit
        next_token = max(0.0, (1.0 - self._tokens) * self.period / self.limit)
        if self.next_token:
            reset = (whole + 1 - self._tokens) * self.period / self.limit
        if self.round_reset:
            reset, next_token = _ceil(reset), _ceil(next_token)
        info = RateLimitInfo(
            limit=self.limit,
            remaining=whole,
            reset_after=reset,
            retry_after=None if ok else next_token,
        )
        return (200 if ok else 429), info


def make_server(kind: str, limit: int, period: float, **kwargs: float | bool) -> Server:
    """One of "fixed", "sliding", "token" (Reset: full again), "token-next" (Reset: next token)."""
    if kind == "fixed":
        return FixedServer(limit, period, **kwargs)  # type: ignore[arg-type]
    if kind == "sliding":
        return SlidingServer(limit, period, **kwargs)  # type: ignore[arg-type]
    if kind == "token-next":
        return TokenServer(limit, period, next_token=True, **kwargs)  # type: ignore[arg-type]
    return TokenServer(limit, period, **kwargs)  # type: ignore[arg-type]


class Load:
    """Saturated demand: ``workers`` tasks send through ``quota`` until ``duration`` has passed."""

    def __init__(
        self,
        quota: Quota,
        server: Server,
        *,
        workers: int,
        latency: float,
        bucket: str = "k:test",
        max_retries: int = 3,
    ) -> None:
        self.quota, self.server, self.workers, self.latency = quota, server, workers, latency
        self.bucket, self.max_retries = bucket, max_retries
        self.served: list[float] = []
        self.rate_limited = 0
        self.surfaced_429 = 0

    async def _request(self, loop: asyncio.AbstractEventLoop) -> None:
        priority = False
        for _attempt in range(self.max_retries + 1):
            lease = await self.quota.acquire(self.bucket, priority=priority)
            lease.sent()
            try:
                await asyncio.sleep(self.latency)
                status, info = self.server.handle(loop.time())
                await asyncio.sleep(self.latency)
            except BaseException:
                lease.complete(None, None)
                raise
            lease.complete(info, status)
            if status != 429:
                self.served.append(loop.time())
                return
            self.rate_limited += 1
            priority = True
        self.surfaced_429 += 1

    async def _worker(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            await self._request(loop)

    async def run(self, duration: float) -> None:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self._worker(loop)) for _ in range(self.workers)]
        await asyncio.sleep(duration)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
