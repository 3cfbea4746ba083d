"""Simulated rate-limited servers on the loop's (fake) clock, their wire, and a load driver for the schedulers.

A server decides each request (``handle(now)``) the way the Kayse API and
the emulator do (a refused request spends nothing) and keeps the arrival
time of every request it accepted, so a test can check the window invariant
itself; ``room(now)`` says, without spending, whether it would accept one.
A ``Wire`` turns a decision into the headers a server sends (Reset as whole
seconds from now, rounded up, or as an epoch against a whole-second ``Date``
from a skewed clock) and reads them back with the SDK's own parser.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
from collections import deque
from collections.abc import Callable
from typing import Protocol

import attrs

from kayse_async._wire.ratelimit import RateLimitInfo, parse_rate_limit
from kayse_async.quota import Quota

WALL0 = 1_800_000_000.0
"""The client's wall clock when the loop's clock reads 0."""


@attrs.frozen
class Decision:
    """One request's fate: accepted or not, and the true (unrounded) state after it."""

    ok: bool
    limit: int
    remaining: int
    reset_after: float
    """Seconds until the budget next grows (``Server.full_reset``: until it is whole again, for a token bucket)."""


class Server(Protocol):
    limit: int
    period: float
    accepted: list[float]
    rejected: int

    def handle(self, now: float) -> Decision: ...

    def room(self, now: float) -> bool: ...


class FixedServer:
    """Fixed windows of ``period``: aligned to ``origin`` (a clock's hours), or, with ``origin=None``,
    each opened by the first request after the last one ended (as the emulator does)."""

    def __init__(self, limit: int, period: float, *, origin: float | None = 0.0) -> None:
        self.limit, self.period, self.origin = limit, period, origin
        self.accepted: list[float] = []
        self.rejected = 0
        self._start = -math.inf
        self._count = 0

    def _window(self, now: float) -> tuple[float, int]:
        if self.origin is not None:
            start = self.origin + math.floor((now - self.origin) / self.period) * self.period
        else:
            start = self._start if now < self._start + self.period else now
        return start, (self._count if start == self._start else 0)

    def room(self, now: float) -> bool:
        return self._window(now)[1] < self.limit

    def handle(self, now: float) -> Decision:
        start, count = self._window(now)
        ok = count < self.limit
        if ok:
            count += 1
            self.accepted.append(now)
        else:
            self.rejected += 1
        self._start, self._count = start, count
        return Decision(ok, self.limit, self.limit - count, start + self.period - now)

    def max_in_any_window(self) -> int:
        """The most requests accepted in one window (by each window's own start)."""
        counts: dict[float, int] = {}
        start = -math.inf
        for t in self.accepted:
            if self.origin is not None:
                start = self.origin + math.floor((t - self.origin) / self.period) * self.period
            elif t >= start + self.period:
                start = t
            counts[start] = counts.get(start, 0) + 1
        return max(counts.values(), default=0)


class SlidingServer:
    """At most ``limit`` accepted in any (now - period, now]; Reset = when the oldest leaves."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit, self.period = limit, period
        self.accepted: list[float] = []
        self.rejected = 0
        self._log: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._log and self._log[0] <= now - self.period:
            self._log.popleft()

    def room(self, now: float) -> bool:
        self._prune(now)
        return len(self._log) < self.limit

    def handle(self, now: float) -> Decision:
        ok = self.room(now)
        if ok:
            self._log.append(now)
            self.accepted.append(now)
        else:
            self.rejected += 1
        return Decision(ok, self.limit, self.limit - len(self._log), self._log[0] + self.period - now)

    def max_in_any_window(self) -> int:
        times = sorted(self.accepted)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - self.period:
                lo += 1
            best = max(best, hi - lo + 1)
        return best


class TokenServer:
    """A bucket of ``limit`` tokens, full at first, refilled at limit/period.

    Reset = when the next whole token is in (as the emulator says it), or with
    ``full_reset`` when the bucket is whole again.
    """

    def __init__(self, limit: int, period: float, *, full_reset: bool = False) -> None:
        self.limit, self.period, self.full_reset = limit, period, full_reset
        self.accepted: list[float] = []
        self.rejected = 0
        self._tokens = float(limit)
        self._last = 0.0

    def _refill(self, now: float) -> float:
        return min(self.limit, self._tokens + max(0.0, now - self._last) * self.limit / self.period)

    def room(self, now: float) -> bool:
        return self._refill(now) >= 1.0 - 1e-9

    def handle(self, now: float) -> Decision:
        tokens = self._refill(now)
        ok = tokens >= 1.0 - 1e-9
        if ok:
            tokens = max(0.0, tokens - 1.0)
            self.accepted.append(now)
        else:
            self.rejected += 1
        self._tokens, self._last = tokens, now
        whole = math.floor(tokens + 1e-9)
        gap = (self.limit - tokens) if self.full_reset else (whole + 1 - tokens)
        return Decision(ok, self.limit, whole, max(0.0, gap * self.period / self.limit))


KINDS = ("fixed", "fixed-open", "sliding", "token", "token-full")


def make_server(kind: str, limit: int, period: float, *, origin: float = 0.0) -> Server:
    """One of ``KINDS``: "fixed" aligned to ``origin``, "fixed-open" opened by requests, "sliding",
    "token" (Reset: the next token, as the emulator says it), "token-full" (Reset: whole again)."""
    if kind == "fixed":
        return FixedServer(limit, period, origin=origin)
    if kind == "fixed-open":
        return FixedServer(limit, period, origin=None)
    if kind == "sliding":
        return SlidingServer(limit, period)
    return TokenServer(limit, period, full_reset=kind == "token-full")


@attrs.define
class Wire:
    """Headers as a server sends them: Reset a whole number of seconds from now ("delta"), a UTC epoch
    against a whole-second ``Date`` of a clock ``skew`` seconds off ("epoch"), or exact floats ("exact")."""

    form: str = "delta"
    skew: float = 0.0

    def info(self, decision: Decision, now: float) -> RateLimitInfo:
        """What the client reads of ``decision``, answered at ``now`` on the loop's clock."""
        if self.form == "exact":
            retry = None if decision.ok else decision.reset_after
            return RateLimitInfo(
                limit=decision.limit, remaining=decision.remaining, reset_after=decision.reset_after, retry_after=retry
            )
        reset_seconds = max(0, math.ceil(decision.reset_after - 1e-9))
        headers = {"X-RateLimit-Limit": str(decision.limit), "X-RateLimit-Remaining": str(decision.remaining)}
        if self.form == "epoch":
            server_wall = WALL0 + now + self.skew
            headers["Date"] = email.utils.formatdate(math.floor(server_wall), usegmt=True)
            headers["X-RateLimit-Reset"] = str(math.ceil(server_wall + decision.reset_after - 1e-9))
        else:
            headers["X-RateLimit-Reset"] = str(reset_seconds)
        if not decision.ok:
            headers["Retry-After"] = str(max(1, reset_seconds))
        return parse_rate_limit(headers, local_now=WALL0 + now)


class Load:
    """Saturated demand: ``workers`` tasks send through ``quota`` until the run ends.

    Each request takes ``latency`` seconds each way (plus up to ``jitter``,
    so answers overtake one another); with probability ``lost`` its answer
    never comes (the server has counted it) and the caller learns so after
    ``timeout`` seconds. A 429 is retried with priority, as the transport
    does. ``idle_with_room`` collects, from a sampler, every moment when a
    caller waited, nothing of ours was out, the server had room, and the
    server's last word (its Reset, + ``margin``) and the scheduler's back-off
    after a lost answer were both over: the liveness property is that there
    is none. ``excused``, asked as the server refuses one of ours, says whether
    the scheduler could not have known better; ``unexplained_429`` counts the others.
    """

    def __init__(
        self,
        quota: Quota,
        server: Server,
        *,
        workers: int,
        latency: float,
        jitter: float = 0.0,
        lost: float = 0.0,
        timeout: float = 1.0,
        wire: Wire | None = None,
        bucket: str = "k:test",
        max_retries: int = 3,
        seed: int = 0,
    ) -> None:
        self.quota, self.server, self.workers, self.latency = quota, server, workers, latency
        self.jitter, self.lost, self.timeout = jitter, lost, timeout
        self.wire = wire or Wire("exact")
        self.bucket, self.max_retries = bucket, max_retries
        self.rng = random.Random(seed)
        self.served: list[float] = []
        self.rate_limited = 0
        self.surfaced_429 = 0
        self.lost_answers = 0
        self.waiting = 0
        self.out = 0
        self.last_word = -math.inf
        self.idle_with_room: list[float] = []
        self.excused: Callable[[], bool] = lambda: False
        self.unexplained_429 = 0

    def _delay(self) -> float:
        return self.latency + self.rng.uniform(0.0, self.jitter)

    async def _request(self, loop: asyncio.AbstractEventLoop) -> None:
        priority = False
        for _attempt in range(self.max_retries + 1):
            self.waiting += 1
            try:
                lease = await self.quota.acquire(self.bucket, priority=priority)
            finally:
                self.waiting -= 1
            lease.sent()
            self.out += 1
            sent = loop.time()
            try:
                await asyncio.sleep(self._delay())
                decision = self.server.handle(loop.time())
                if not decision.ok and not self.excused():
                    self.unexplained_429 += 1
                if self.rng.random() < self.lost:
                    self.lost_answers += 1
                    await asyncio.sleep(max(0.0, sent + self.timeout - loop.time()))
                    lease.complete(None, None)
                    return
                answered = loop.time()
                await asyncio.sleep(self._delay())
            except BaseException:
                lease.complete(None, None)
                raise
            finally:
                self.out -= 1
            info = self.wire.info(decision, answered)
            status = 200 if decision.ok else 429
            wait = info.retry_after if status == 429 else info.reset_after
            self.last_word = max(self.last_word, loop.time() + (wait or 0.0))
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

    async def _sample(self, loop: asyncio.AbstractEventLoop, step: float, bound: object) -> None:
        while True:
            await asyncio.sleep(step)
            now = loop.time()
            if self.waiting and not self.out and self.server.room(now):
                over = now - bound(self)  # type: ignore[operator]
                if over > 0:
                    self.idle_with_room.append(over)

    async def run(self, duration: float, *, sample: float | None = None, bound: object = None) -> None:
        """Run for ``duration``; with ``sample``, check liveness every ``sample`` seconds against ``bound(load)``."""
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self._worker(loop)) for _ in range(self.workers)]
        if sample is not None:
            tasks.append(asyncio.create_task(self._sample(loop, sample, bound)))
        await asyncio.sleep(duration)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@attrs.frozen(kw_only=True)
class Scenario:
    """One simulated run: a server, its wire, the network, the load, and the client's prior."""

    kind: str
    limit: int
    period: float
    form: str = "delta"
    skew: float = 0.0
    origin: float = 0.0
    latency: float = 0.0
    jitter: float = 0.0
    lost: float = 0.0
    timeout: float = 1.0
    workers: int = 8
    other: int = 0
    """Units another consumer of the key spends at the start of each of its periods."""
    prior: tuple[int, float] = (500, 3600.0)
    windows: int = 24
    seed: int = 0


@attrs.frozen(kw_only=True)
class Outcome:
    """What a run showed: 429s, answers lost, the longest idle wait past the server's word, budget use."""

    rejected: int
    unexplained_429: int
    lost_answers: int
    surfaced_429: int
    beyond_reset: float
    use: float
    window: float | None
    trusted: bool


def simulate(scenario: Scenario) -> Outcome:
    """Run ``scenario`` with the SDK's ``MemoryQuota`` on a fast-forwarded loop (deterministic, no sockets).

    ``use`` is what the server accepted after its first window, against
    ``limit`` per ``period`` (whole again each window for fixed and sliding
    windows; refilled at that rate for a token bucket). ``beyond_reset`` is
    the longest time a caller waited, with nothing of ours out and room at
    the server, past both the server's last word (its Reset or Retry-After, +
    the scheduler's margin) and the back-off after a lost answer.
    """
    import looptime

    from kayse_async.quota import MemoryQuota

    sc = scenario
    loop = looptime.new_event_loop(start=0, noop_cycles=1)

    async def main() -> Outcome:
        server = make_server(sc.kind, sc.limit, sc.period, origin=-sc.origin * sc.period)
        quota = MemoryQuota(*sc.prior, clock=loop.time)
        load = Load(
            quota,
            server,
            workers=sc.workers,
            latency=sc.latency,
            jitter=sc.jitter,
            lost=sc.lost,
            timeout=sc.timeout,
            wire=Wire(sc.form, sc.skew),
            seed=sc.seed,
        )

        # How long a unit the server counted may hold its room: a window, or for a token bucket one
        # token's refill.
        hold = sc.period / sc.limit if sc.kind.startswith("token") else sc.period

        def excused() -> bool:
            # Nothing heard yet (every answer so far lost: the server's limit and window unknown), or a
            # learned window (+ margin) still shorter than the server's (see docs/quota.md).
            state = quota._buckets[load.bucket].state
            return state.hdr is None or state.span + state.margin < hold - 1e-9

        load.excused = excused

        def bound(load: Load) -> float:
            state = quota._buckets[load.bucket].state
            return max(load.last_word + state.margin, state.probe_at) + 1e-6

        async def other() -> None:
            while True:
                for _ in range(sc.other):
                    server.handle(loop.time())
                await asyncio.sleep(sc.period)

        other_task = asyncio.create_task(other()) if sc.other else None
        duration = sc.windows * sc.period
        await load.run(duration, sample=sc.period / 200, bound=bound)
        if other_task is not None:
            other_task.cancel()
            await asyncio.gather(other_task, return_exceptions=True)
        state = quota._buckets[load.bucket].state
        accepted = sum(1 for t in server.accepted if t >= sc.period)
        return Outcome(
            rejected=server.rejected,
            unexplained_429=load.unexplained_429,
            lost_answers=load.lost_answers,
            surfaced_429=load.surfaced_429,
            beyond_reset=max(load.idle_with_room, default=0.0),
            use=accepted / (sc.limit * (duration - sc.period) / sc.period),
            window=state.window,
            trusted=state.trusted,
        )

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
