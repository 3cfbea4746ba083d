"""The scheduler's arithmetic for one bucket, sans-I/O: no loop, no lock, no clock of its own.

Every method takes ``now`` (seconds on the caller's monotonic clock). The
memory backend wraps one ``BucketState`` per bucket behind a lock; the Redis
backend's Lua script (``_redis.lua``) implements the same rules on Redis time.

Three sources of knowledge, combined in ``allowance``:

``log``
    When each of our own requests was last possibly seen by the server (its
    completion time, or "now" while it is out), kept as the moment it leaves
    the rolling period (+ margin). Never more than ``limit`` of
    them in any rolling ``period`` is safe for our own traffic against a
    fixed, sliding or token-bucket server, whatever its alignment, because a
    request reaches the server no later than its response comes back.
``hdr``
    The server's word: the lowest ``X-RateLimit-Remaining`` of the current
    server window minus the leases out when it came, counted down on every
    grant. It may allow more than the log (a fixed window reset) or less
    (another consumer spends the same key, which the scheduler notices when
    the server counts more than all our own requests could explain).
``blocked_until``
    A 429 is authoritative: nothing is granted before Retry-After / Reset.

Between these, a window is "fresh" until the server's Reset (+ margin): the
header rules. Once Reset passes the header is "stale": the scheduler grants
what the old header or the log still allows, or a single probe whose
response brings the new window's truth.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import attrs

from .._wire.ratelimit import RateLimitInfo

RESERVED = 0
SENT = 1
DONE = 2


@attrs.define(eq=False)
class LeaseRecord:
    """One grant. ``seq`` is the order in which it went on the wire (-1 before), ``probe`` marks
    a grant made only to learn the window."""

    probe: bool
    seq: int = -1
    sent_at: float = -math.inf
    state: int = RESERVED


def default_margin(period: float) -> float:
    """The safety margin added after Reset / Retry-After and to the log: 1% of the period, at most 1 s."""
    return min(1.0, period / 100.0)


@attrs.define(eq=False)
class BucketState:
    """The budget of one bucket (one API key), as the scheduler knows it."""

    limit: int
    period: float
    margin: float
    seq: int = 0
    log: deque[float] = attrs.field(factory=deque)
    reserved: int = 0
    in_flight: int = 0
    probes: int = 0
    hdr: int | None = None
    reset_at: float = -math.inf
    low: int = 0
    lost: list[int] = attrs.field(factory=list)
    lost_sent_at: float = -math.inf
    blocked_until: float = -math.inf
    probe_only: bool = False
    others_until: float = -math.inf
    headerless: bool = False

    # -- what may be granted ------------------------------------------------------

    def _log_count(self, now: float) -> int:
        """Our requests the server may still count at ``now`` (done ones in the log, plus those out)."""
        log = self.log
        # The log is sorted: when its first entry is still ahead, every entry counts (the usual case).
        if log and log[0] <= now:
            return len(log) - bisect.bisect_right(log, now) + self.reserved + self.in_flight
        return len(log) + self.reserved + self.in_flight

    def log_free(self, now: float) -> int:
        """Units the sliding log alone allows at ``now``."""
        return self.limit - self._log_count(now)

    def fresh(self, now: float) -> bool:
        """True while the last server header still describes the current window."""
        return self.hdr is not None and now < self.reset_at

    def _probe_slot(self) -> int:
        # A probe goes alone: answers still to come may already say what it would
        # learn. And only once per window: if a request sent past the Reset got
        # no answer, the server may have counted it in the new window already.
        if self.probes or self.reserved + self.in_flight:
            return 0
        return 1 if self.hdr is None or self.lost_sent_at < self.reset_at else 0

    def allowance(self, now: float) -> int:
        """How many units may be granted at ``now``, absent new responses."""
        if now < self.blocked_until:
            return 0
        free = self.limit - self._log_count(now)
        if self.hdr is None:
            # Unknown is not zero: one probe learns the window, unless the
            # server sends no headers at all, where the log alone rules.
            if self.headerless:
                return max(0, free)
            return min(max(0, free), self._probe_slot())
        if now < self.reset_at:
            if self.probe_only or now < self.others_until:
                return max(0, self.hdr)
            # Alone on the key, the log is safe too: it wins back what a too
            # careful header reconciliation gave up.
            return max(0, self.hdr, free)
        if self.probe_only or now < self.others_until:
            return max(0, self.hdr, self._probe_slot())
        return max(0, self.hdr, free, self._probe_slot())

    def estimate_remaining(self, now: float) -> int:
        """What may be sent at ``now`` without probing: the number a snapshot shows."""
        if now < self.blocked_until:
            return 0
        free = max(0, self.log_free(now))
        if self.hdr is None:
            return free
        if now < self.reset_at:
            return self.allowance(now)
        return max(self.hdr, 0 if self.probe_only or now < self.others_until else free)

    def _is_probe(self, now: float) -> bool:
        """True when the next grant would be allowed by the probe rule alone."""
        if self.hdr is None:
            return not self.headerless
        if now < self.reset_at or self.hdr > 0:
            return False
        if self.probe_only or now < self.others_until:
            return True
        return self.log_free(now) <= 0

    def grant(self, now: float) -> LeaseRecord:
        """Reserve one unit; the caller has checked ``allowance(now) > 0``."""
        record = LeaseRecord(self._is_probe(now))
        self.reserved += 1
        if record.probe:
            self.probes += 1
        if self.hdr is not None:
            self.hdr -= 1
        return record

    # -- lease life cycle ---------------------------------------------------------

    def sent(self, record: LeaseRecord, now: float) -> None:
        """The request is going on the wire: the unit is spent for good."""
        if record.state == RESERVED:
            record.state = SENT
            record.sent_at = now
            # Send order, not grant order: tasks resume in any order after a grant,
            # and "newer" must mean "reached the server later" as nearly as we can tell.
            record.seq = self.seq
            self.seq += 1
            self.reserved -= 1
            self.in_flight += 1

    def release(self, record: LeaseRecord, now: float) -> bool:
        """Give back a unit never sent; a sent one is completed instead. True when a unit came back."""
        if record.state == RESERVED:
            record.state = DONE
            self.reserved -= 1
            if record.probe:
                self.probes -= 1
            if self.hdr is not None:
                self.hdr += 1
            return True
        if record.state == SENT:
            self.complete(record, None, None, now)
        return False

    def complete(self, record: LeaseRecord, info: RateLimitInfo | None, status: int | None, now: float) -> None:
        """A sent request ended: with a response (``info``, ``status``) or without one (None, None)."""
        if record.state == DONE:
            return
        if record.state == RESERVED:
            self.sent(record, now)
        record.state = DONE
        self.in_flight -= 1
        if record.probe:
            self.probes -= 1
        log = self.log
        # Forget the entries that no rolling period ending now can contain.
        while log and log[0] <= now:
            log.popleft()
        # The log holds when each entry leaves the rolling period, so that
        # pruning and waking compare the very same floats.
        log.append(now + self.period + self.margin)
        if info is not None:
            limit = info.limit
            if limit is not None and limit > 0:
                self.limit = limit
        out = self.reserved + self.in_flight
        if status == 429:
            wait = self._rate_limited_wait(info)
            self.blocked_until = max(self.blocked_until, now + wait + self.margin)
            self.reset_at = self.blocked_until
            self.hdr = -out
            self.probe_only = True
            return
        if info is None or info.remaining is None:
            if status is None:
                # No answer: the server may count it after any answer we have seen.
                self.lost.append(record.seq)
                self.lost_sent_at = max(self.lost_sent_at, record.sent_at)
            if status is not None and self.hdr is None and (info is None or not info.present):
                # A response without rate-limit headers: the log is all we will ever know.
                self.headerless = True
            return
        reset_after = info.reset_after if info.reset_after is not None else self.period
        new_reset = now + reset_after + self.margin
        if self.hdr is None or record.sent_at >= self.reset_at or info.remaining <= self.low:
            # Sent past the Reset: the first word of the new window replaces what
            # we knew of the old one. (An answer to a request sent before may
            # speak for either window, so it can only lower the count.)
            # Within a window, responses overtake one another on the way, and
            # the lowest Remaining is the newest count (room coming back in a
            # sliding or token window shows in the log instead); the Reset that
            # goes with it says when room comes back.
            self.low = info.remaining
            self.reset_at = new_reset
            # Requests sent before this one reached the server before it: counted.
            if self.lost:
                self.lost = [seq for seq in self.lost if seq > record.seq]
        # Every request that came back with an answer is counted in the lowest
        # Remaining (it would show a lower one otherwise); those still out, and
        # those lost on the way after it, may not be.
        self.hdr = self.low - out - len(self.lost)
        self.probe_only = False
        self.headerless = False
        # The server counted more than all of ours could account for: someone
        # else spends this key, so the log says nothing about the server's room.
        ours = self._log_count(now)
        if self.limit - info.remaining > ours:
            self.others_until = self.reset_at + self.period

    def _rate_limited_wait(self, info: RateLimitInfo | None) -> float:
        if info is not None:
            if info.retry_after is not None:
                return info.retry_after
            if info.reset_after is not None:
                return info.reset_after
        return self.period / max(1, self.limit)

    # -- when to look again -------------------------------------------------------

    def next_event(self, now: float) -> float | None:
        """The next moment after ``now`` when ``allowance`` may grow without a response, or None."""
        candidates: list[float] = []
        if self.blocked_until > now:
            candidates.append(self.blocked_until)
        if self.reset_at > now:
            candidates.append(self.reset_at)
        if self.others_until > now:
            candidates.append(self.others_until)
        start = bisect.bisect_right(self.log, now)
        if start < len(self.log):
            candidates.append(self.log[start])
        later = [c for c in candidates if c > now]
        return min(later) if later else None

    def eta(self, now: float, need: int) -> float | None:
        """An optimistic moment when ``need`` units could be granted, absent new responses; None if unknown.

        Optimistic on purpose: past a stale Reset it assumes the server's
        window is whole again, so a caller is refused at once only when the
        unit surely cannot be had in time.
        """
        if self.allowance(now) >= need:
            return now
        times: set[float] = {self.blocked_until, self.reset_at, self.others_until}
        start = bisect.bisect_right(self.log, now)
        times.update(list(self.log)[start:])
        out = self.reserved + self.in_flight
        for t in sorted(x for x in times if x > now):
            if t < self.blocked_until:
                continue
            if self.allowance(t) >= need:
                return t
            if self.hdr is not None and t >= self.reset_at and self.limit - out >= need:
                return t
        # Only responses still to come can open more room: nothing to promise.
        return None
