"""The scheduler's arithmetic for one bucket, sans-I/O: every method takes ``now`` (the caller's
monotonic clock). MemoryQuota holds one per bucket behind a lock; ``_redis.lua`` is its twin on Redis time.

The server's word rules; the configured ``limit`` and ``period`` are a prior, for before the first
answer and for servers that send no rate-limit headers. What the scheduler knows:

``hdr``
    The newest Remaining (a probe's, a later Reset's, or the lowest of one server state), minus the
    leases out and the answers lost since, counted down on every grant; fresh until the Reset (+
    margin), past which one probe goes alone.
``window``
    Stated by the server (``RateLimit-Policy``), else the longest Reset it announced.
``log``
    When each of our requests came back. Never more than ``limit`` in any rolling window is safe
    against a fixed, a sliding or a token-bucket server of that window; used only once the window is
    *trusted* (stated, or seen to bring the whole budget back at one Reset), or without headers (in
    the configured period).
``blocked_until``
    A 429: nothing is granted before Retry-After / Reset.
``probe_at``
    After a lost answer: a back-off (its time out, doubled per further loss, at most a window), and
    while lost requests may hold the room a Reset brings, until they left the server's window.
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

LOST_CAP = 60.0
"""Seconds: the longest back-off after lost answers while the server's window is not known."""


@attrs.define(eq=False)
class LeaseRecord:
    """One grant; ``probe`` marks a grant made only to learn the server's state."""

    probe: bool
    sent_at: float = -math.inf
    state: int = RESERVED


def default_margin(window: float) -> float:
    """The safety margin added after Reset / Retry-After and to the log: 1% of the window, at most 1 s."""
    return min(1.0, window / 100.0)


@attrs.define(eq=False)
class BucketState:
    """The budget of one bucket (one server and key), as the scheduler knows it."""

    limit: int
    period: float
    safety_margin: float | None = None
    window: float | None = None
    stated: bool = False
    trusted: bool = False
    log: deque[float] = attrs.field(factory=deque)
    reserved: int = 0
    in_flight: int = 0
    hdr: int | None = None
    reset_at: float = -math.inf
    low: int = 0
    drained: bool = False
    probing: bool = False
    lost: list[float] = attrs.field(factory=list)
    passed: list[tuple[int, float]] = attrs.field(factory=list)
    losses: int = 0
    probe_at: float = -math.inf
    blocked_until: float = -math.inf
    others_until: float = -math.inf
    headerless: bool = False
    clock_lo: float = -math.inf
    clock_hi: float = math.inf

    @property
    def span(self) -> float:
        """The window the scheduler reasons in: the server's once known, else the configured period."""
        return self.period if self.window is None else self.window

    @property
    def margin(self) -> float:
        """Seconds added after every Reset and Retry-After, and to the log."""
        return default_margin(self.span) if self.safety_margin is None else self.safety_margin

    # -- what may be granted ------------------------------------------------------

    def _ours(self, now: float) -> int:
        """Our requests the server may still count at ``now``: those in the log's window, plus those out."""
        log, cut = self.log, now - self.span - self.margin
        # The log is sorted: when its first entry is still inside, every entry counts (the usual case).
        inside = len(log) - bisect.bisect_right(log, cut) if log and log[0] <= cut else len(log)
        return inside + self.reserved + self.in_flight

    def log_free(self, now: float) -> int:
        """Units the log allows at ``now``: 0 unless its window is trusted (or the server sends no headers)."""
        if self.headerless or (self.trusted and now >= self.others_until):
            return self.limit - self._ours(now)
        return 0

    def _probe_slot(self, now: float) -> int:
        # A probe goes alone (answers still to come may already say what it would learn),
        # and not before the back-off that follows a lost answer.
        return 1 if not (self.reserved or self.in_flight) and now >= self.probe_at else 0

    def remaining(self, now: float) -> int | None:
        """What may be sent at ``now`` without probing, None while nothing is known: what a snapshot shows."""
        if now < self.blocked_until:
            return 0
        if self.hdr is None:
            return max(0, self.log_free(now)) if self.headerless else None
        return max(0, self.hdr, self.log_free(now))

    def allowance(self, now: float) -> int:
        """How many units may be granted at ``now``, absent new responses."""
        known = 0 if self.probing else self.remaining(now)
        if known is None:
            return self._probe_slot(now)  # unknown is not zero: one probe learns the server's state
        if self.probing or now < self.blocked_until or now < self.reset_at or self.hdr is None:
            return known
        return max(known, self._probe_slot(now))

    def grant(self, now: float) -> LeaseRecord:
        """Reserve one unit; the caller has checked ``allowance(now) > 0``."""
        hdr = self.hdr
        record = LeaseRecord(not self.headerless and (hdr is None or (hdr <= 0 and self.log_free(now) <= 0)))
        # A probe goes alone: nothing else is granted until its answer (or its loss).
        self.probing = record.probe
        self.reserved += 1
        if hdr is not None:
            self.hdr = hdr - 1
        return record

    # -- lease life cycle ---------------------------------------------------------

    def sent(self, record: LeaseRecord, now: float) -> None:
        """The request is going on the wire: the unit is spent for good."""
        if record.state == RESERVED:
            record.state = SENT
            record.sent_at = now
            self.reserved -= 1
            self.in_flight += 1

    def release(self, record: LeaseRecord, now: float) -> bool:
        """Give back a unit never sent; a sent one is completed instead. True when a unit came back."""
        if record.state == RESERVED:
            record.state = DONE
            self.reserved -= 1
            self.probing = self.probing and not record.probe
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
        self.probing = self.probing and not record.probe
        log = self.log
        # Forget what no window ending now can contain; then remember this one.
        cut = now - self.span - self.margin
        while log and log[0] <= cut:
            log.popleft()
        log.append(now)
        if status is None:
            # No answer: the server may have counted it, at any moment until now. It stays
            # spent until an answer to a request sent after now covers it, and the next
            # probe waits the time this one was out, doubled for each further loss.
            self.lost.append(now)
            self.losses += 1
            backoff = max(now - record.sent_at, self.margin) * 2 ** (self.losses - 1)
            cap = min(self.period, LOST_CAP) if self.window is None else self.window
            self.probe_at = now + min(cap, backoff)
            self._hold_for_lost()
            return
        self.losses, self.probe_at = 0, -math.inf
        reset_after = None if info is None else info.reset_after
        if info is not None and info.server_date is not None and reset_after is not None:
            reset_after -= self._date_phase(info.server_date, record.sent_at, now)
        # Another limit than the one known: another budget (the server changed it, or another
        # server now answers at this origin). Its first answer is the word; its window is learned anew.
        changed = info is not None and bool(info.limit) and self.hdr is not None and info.limit != self.limit
        if changed:
            self.window, self.stated, self.trusted = None, False, False
        if info is not None:
            if info.limit:
                self.limit = info.limit
            if info.window is not None:
                # The server states its window: believed.
                self.window, self.stated, self.trusted = info.window, True, True
        out = self.reserved + self.in_flight
        if status == 429:
            wait = info.retry_after if info is not None and info.retry_after is not None else reset_after
            if wait is None:
                wait = self.span / max(1, self.limit)
            self.blocked_until = max(self.blocked_until, now + wait + self.margin)
            self.reset_at, self.drained = self.blocked_until, True
            self.lost = [at for at in self.lost if at > record.sent_at]
            self.hdr = -out - len(self.lost)
            self._hold_for_lost()
            # Someone else spends the key, or the log was wrong: it must earn trust again.
            self.trusted = self.stated
            self.others_until = self.blocked_until + self.span
            return
        if info is None or info.remaining is None:
            if self.hdr is None and (info is None or not info.present):
                # An answer without rate-limit headers: the configured rule is all there is.
                self.headerless = True
            return
        self.headerless = False
        if reset_after is None:
            reset_after = self.span
        if not self.stated and reset_after > (self.window or 0.0):
            # The longest Reset yet: the window is at least this long. A log
            # trusted in a shorter one must earn trust again.
            self.window, self.trusted = reset_after, False
        remaining, margin = info.remaining, self.margin
        reset_at = now + reset_after + margin
        # Resets are whole seconds: within this much, two of them may name the same moment.
        fuzz = 1.0 + margin + (min(1.0, self.clock_hi - self.clock_lo) if info.server_date is not None else 0.0)
        if (
            self.hdr is None
            or record.probe
            or changed
            or reset_at > self.reset_at + fuzz
            or (remaining <= self.low and reset_at >= self.reset_at - fuzz)
        ):
            # The newest word: a probe's answer, the first of a later server state, or within one
            # state the lowest Remaining (answers overtake one another; the count only falls until
            # the Reset). An answer passed over since, in the same state, may be newer still.
            if (
                record.probe
                and self.drained
                and self.limit >= 4
                and remaining >= self.limit - 1
                and self.reset_at <= record.sent_at <= self.reset_at + margin
                and now - record.sent_at <= margin
                and reset_after >= self.span - 1.0 - margin
            ):
                # The whole budget came back at the Reset of a drained window, to a probe sent and
                # answered at once, as long as the longest Reset: a window the log may count in (a
                # token bucket is whole again only after its full refill, never seen so).
                self.trusted = True
            self.low = min([remaining, *(r for r, at in self.passed if at >= reset_at - fuzz)])
            self.reset_at, self.drained, self.passed = reset_at, self.low <= 0, []
            # A request sent after an answer was given up on reached the server after it: counted.
            self.lost = [at for at in self.lost if at > record.sent_at]
        else:
            self.passed.append((remaining, reset_at))
        self.hdr = self.low - out - len(self.lost)
        self._hold_for_lost()
        # The server counted more than all of ours could account for: someone
        # else spends this key, so the log says nothing about the server's room.
        if self.trusted and self.limit - remaining > self._ours(now):
            self.others_until = self.reset_at + self.span

    def _hold_for_lost(self) -> None:
        """Answers lost beyond the server's last count may have taken the room its Reset brings (a
        Reset promises one unit): no probe until the newest of them has left any window of the server's."""
        if self.hdr is not None and self.hdr < 0 and self.lost and self.window is not None:
            self.probe_at = max(self.probe_at, max(self.lost) + self.span + self.margin)

    def _date_phase(self, date: float, sent_at: float, now: float) -> float:
        """How far past its whole-second ``Date`` the server's clock surely was at ``now``.

        Between sending and receiving the server's clock read ``date`` (+ < 1 s): each answer bounds
        its offset from ours; a Reset is shortened only by what the lower bound proves. Contradictory
        bounds (the server's clock jumped) start afresh.
        """
        lo, hi = date - now, date + 1.0 - sent_at
        if max(self.clock_lo, lo) > min(self.clock_hi, hi):
            self.clock_lo, self.clock_hi = lo, hi
        else:
            self.clock_lo, self.clock_hi = max(self.clock_lo, lo), min(self.clock_hi, hi)
        return min(1.0, max(0.0, now + self.clock_lo - date))

    # -- when to look again -------------------------------------------------------

    def _times(self, now: float, *, first: bool = False) -> list[float]:
        """The moments after ``now`` when ``allowance`` may grow without a response, in order."""
        times = {self.blocked_until, self.reset_at, self.others_until, self.probe_at}
        if self.headerless or self.trusted:
            # Each log entry leaves the window a window (+ margin) after it came back.
            leave, log = self.span + self.margin, self.log
            start = bisect.bisect_right(log, now - leave)
            times.update(log[i] + leave for i in range(start, min(len(log), start + 1) if first else len(log)))
        return sorted(t for t in times if t > now)

    def next_event(self, now: float) -> float | None:
        """The next moment after ``now`` when ``allowance`` may grow without a response, or None."""
        times = self._times(now, first=True)
        return times[0] if times else None

    def eta(self, now: float, need: int) -> float | None:
        """An optimistic moment when ``need`` units could be granted, absent new responses; None if unknown.

        Optimistic on purpose: past a stale Reset it assumes the server's
        window is whole again, so a caller is refused at once only when the
        unit surely cannot be had in time.
        """
        if self.allowance(now) >= need:
            return now
        out = self.reserved + self.in_flight
        for t in self._times(now):
            if t < self.blocked_until:
                continue
            if self.allowance(t) >= need:
                return t
            if self.hdr is not None and t >= self.reset_at and self.limit - out >= need:
                return t
        # Only responses still to come can open more room: nothing to promise.
        return None
