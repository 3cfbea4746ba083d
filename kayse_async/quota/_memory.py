"""MemoryQuota: the in-process scheduler, shared by every client of a key in one process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

import attrs

from .._wire.ratelimit import RateLimitInfo
from ..models import QuotaSnapshot
from ._base import DEFAULT_LIMIT, DEFAULT_PERIOD, Scheduler, Turn, WaitCallback, check_seconds, enqueue, too_late
from ._state import BucketState, LeaseRecord

_MIN_DELAY = 0.001

__all__ = ["MemoryLease", "MemoryQuota", "default_quota"]


def loop_time() -> float:
    """The running event loop's clock (the one every wait is timed on; a loop that fast-forwards its
    time, ``looptime`` in tests, moves the scheduler's windows with it), else the monotonic clock."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def wait_reason(state: BucketState, now: float) -> str:
    """Why a caller that cannot be served at ``now`` waits (see ``QuotaWait``)."""
    if now < state.blocked_until:
        return "rate_limited"
    if now < state.probe_at:
        return "lost"
    return "warmup" if state.hdr is None else "exhausted"


@attrs.define(eq=False)
class _Bucket:
    name: str
    state: BucketState
    seen: float
    waiters: deque[Turn[LeaseRecord]] = attrs.field(factory=deque)
    warned: bool = False


@attrs.define(eq=False, repr=False)
class MemoryLease:
    """One unit of a ``MemoryQuota`` bucket, granted to one HTTP attempt (see ``Lease``)."""

    _quota: MemoryQuota
    _bucket: _Bucket
    _record: LeaseRecord

    @property
    def bucket(self) -> str:
        """The bucket this unit belongs to."""
        return self._bucket.name

    def sent(self) -> None:
        """The request is going on the wire: the unit can no longer come back."""
        quota = self._quota
        with quota._lock:
            self._bucket.state.sent(self._record, quota._clock())

    def complete(self, info: RateLimitInfo | None, status: int | None) -> None:
        """The sent request ended; ``info``/``status`` from its response, or None when none came."""
        quota = self._quota
        with quota._lock:
            now = quota._clock()
            bucket = self._bucket
            bucket.seen = max(bucket.seen, now)
            state = bucket.state
            state.complete(self._record, info, status, now)
            if state.headerless and not bucket.warned:
                bucket.warned = True
                quota._warn_headerless(bucket.name)
            if bucket.waiters:
                quota._dispatch(bucket, now, nudge=True)

    def release(self) -> None:
        """Abandon the attempt before sending: the unit goes back (after ``sent()``, it is completed)."""
        quota = self._quota
        with quota._lock:
            now = quota._clock()
            self._bucket.state.release(self._record, now)
            quota._dispatch(self._bucket, now, nudge=True)

    def __repr__(self) -> str:
        return f"<MemoryLease bucket={self._bucket.name!r}>"


class MemoryQuota(Scheduler):
    """The default scheduler: every bucket's budget in this process's memory, for clients on any
    number of loops and threads (``default_quota()`` is the process-wide instance).

    ``limit`` requests per ``period`` seconds is only the prior: before the first answer one probe
    goes, then the server's headers rule. For a server that sends none, it is the rule: never more
    than ``limit`` in any rolling ``period``. ``clock`` (monotonic seconds; by default the running
    loop's) and ``wall_clock`` (epoch seconds, for ``resets_at``) are injectable for tests.
    ``safety_margin`` (default: 1% of the server's window, at most 1 s) is added after every Reset
    and Retry-After. ``on_wait`` receives a ``QuotaWait`` as every wait starts.
    """

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        period: float = DEFAULT_PERIOD,
        *,
        clock: Callable[[], float] = loop_time,
        wall_clock: Callable[[], float] = time.time,
        safety_margin: float | None = None,
        on_wait: WaitCallback | None = None,
    ) -> None:
        super().__init__(limit, period, safety_margin, on_wait, wall_clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        _instances.add(self)

    def __repr__(self) -> str:
        return f"MemoryQuota(limit={self._limit}, period={self._period})"

    # -- internals (called with the lock held) ---------------------------------------------

    def _get(self, name: str, now: float) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None or (
            # Its clock went back: another loop's (one fast-forwarded from its own zero, in tests). What was
            # learned on that clock says nothing on this one: with nothing out, the bucket starts afresh.
            now < bucket.seen and not bucket.waiters and not (bucket.state.reserved or bucket.state.in_flight)
        ):
            state = BucketState(limit=self._limit, period=self._period, safety_margin=self._margin)
            bucket = self._buckets[name] = _Bucket(name, state, now)
        bucket.seen = max(bucket.seen, now)
        return bucket

    def _dispatch(self, bucket: _Bucket, now: float, *, nudge: bool = False) -> None:
        """Grant units to waiters in line order while the budget allows; with ``nudge`` (the state
        changed) wake the head left waiting too, to set its timer by the new state."""
        state = bucket.state
        while bucket.waiters and state.allowance(now) > 0:
            waiter = bucket.waiters.popleft()
            waiter.grant = state.grant(now)
            try:
                waiter.loop.call_soon_threadsafe(waiter.wake)
            except RuntimeError:
                # The waiter's loop is closed: nobody will ever take this unit.
                state.release(waiter.grant, now)
                waiter.grant = None
        if nudge and bucket.waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed: it is gone
                bucket.waiters[0].loop.call_soon_threadsafe(bucket.waiters[0].wake)

    # -- the Quota protocol ---------------------------------------------------------------

    async def acquire(self, bucket: str, *, max_wait: float | None = None, priority: bool = False) -> MemoryLease:
        """Wait for one unit of ``bucket``'s budget (see ``Quota.acquire``)."""
        check_seconds("max_wait", max_wait, zero=True, none=True, inf=True)
        loop = asyncio.get_running_loop()
        with self._lock:
            now = self._clock()
            entry = self._get(bucket, now)
            state = entry.state
            self._dispatch(entry, now)
            if state.allowance(now) > 0:
                # _dispatch drained the line, so nobody is ahead of this caller.
                return MemoryLease(self, entry, state.grant(now))
            waiter: Turn[LeaseRecord] = Turn(loop, priority)
            ahead = enqueue(entry.waiters, waiter)
            eta = state.eta(now, ahead + 1)
            seconds, reason = None if eta is None else eta - now, wait_reason(state, now)
            if max_wait is not None and too_late(seconds, max_wait):
                entry.waiters.remove(waiter)
                raise self._refuse(bucket, seconds, max_wait)
            deadline = None if max_wait is None else now + max_wait
        try:
            self._report(bucket, seconds, reason)
            while True:
                with self._lock:
                    now = self._clock()
                    if waiter.grant is None:
                        self._dispatch(entry, now)
                    record = waiter.grant
                    if record is not None:
                        waiter.taken = True
                        break
                    if deadline is not None and now >= deadline:
                        entry.waiters.remove(waiter)
                        assert max_wait is not None
                        eta = state.eta(now, 1)
                        raise self._refuse(bucket, None if eta is None else eta - now, max_wait)
                    wake = state.next_event(now)
                    delay = state.span if wake is None else wake - now
                    if deadline is not None:
                        delay = min(delay, deadline - now)
                    if waiter.fut.done():
                        # Nudged, not granted: wait again, on the timer of the state as it is now.
                        waiter.fut = loop.create_future()
                # A floor on the delay: a timer due "now" must not spin the loop.
                await asyncio.wait((waiter.fut,), timeout=max(delay, _MIN_DELAY))
        except BaseException:
            with self._lock:
                if waiter.grant is not None and not waiter.taken:
                    state.release(waiter.grant, self._clock())
                elif waiter in entry.waiters:
                    entry.waiters.remove(waiter)
                self._dispatch(entry, self._clock(), nudge=True)
            raise
        return MemoryLease(self, entry, record)

    def snapshot(self, bucket: str) -> QuotaSnapshot:
        """What is known of ``bucket``'s budget now, without a request: ``remaining`` may be sent without
        a probe (None before the first answer, 0 during a 429's wait); ``resets_at`` is the server's
        next Reset while a header describes the current window."""
        with self._lock:
            entry = self._buckets.get(bucket)
            if entry is None:
                return QuotaSnapshot(limit=self._limit, remaining=None)
            state = entry.state
            now = self._clock()
            resets_at = self._wall_in(state.reset_at - now) if state.hdr is not None and state.reset_at > now else None
            window = self._period if state.headerless else state.window if state.trusted else None
            return QuotaSnapshot(limit=state.limit, remaining=state.remaining(now), resets_at=resets_at, window=window)

    async def aclose(self) -> None:
        """Nothing to release: the memory scheduler holds no connection. Idempotent."""


_default_lock = threading.Lock()
_default: MemoryQuota | None = None
_instances: weakref.WeakSet[MemoryQuota] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Give every MemoryQuota of a forked child a new lock and fresh buckets: the parent's lock may be
    held by one of its threads, its waiters and leases belong to its loops (a fresh bucket probes first)."""
    global _default_lock
    _default_lock = threading.Lock()
    for quota in list(_instances):
        quota._lock = threading.Lock()
        quota._buckets = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def default_quota() -> MemoryQuota:
    """The process-wide ``MemoryQuota`` (500 per hour) that clients share unless given a quota;
    made on first use, from any thread or loop."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MemoryQuota()
        return _default
