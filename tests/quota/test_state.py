"""BucketState's rules one by one, sans-I/O: what it learns from the server, what it assumes, when it waits."""

from __future__ import annotations

import math

import pytest
from quota_sim import FixedServer, TokenServer, Wire

from kayse_async._wire.ratelimit import RateLimitInfo
from kayse_async.quota._state import BucketState, LeaseRecord


def info(remaining: int, reset: float, *, limit: int = 20, **more: float) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, reset_after=reset, **more)  # type: ignore[arg-type]


def one(state: BucketState, now: float, answer: RateLimitInfo | None, status: int | None = 200) -> LeaseRecord:
    """Grant, send and complete one request at ``now``."""
    assert state.allowance(now) > 0
    record = state.grant(now)
    state.sent(record, now)
    state.complete(record, answer, status, now)
    return record


def drain(state: BucketState, server: FixedServer | TokenServer, wire: Wire, now: float) -> int:
    """Spend everything the scheduler allows at ``now`` against ``server``; the number spent."""
    spent = 0
    while state.allowance(now) > 0:
        record = state.grant(now)
        state.sent(record, now)
        decision = server.handle(now)
        state.complete(record, wire.info(decision, now), 200 if decision.ok else 429, now)
        spent += 1
    return spent


def test_before_the_first_answer_one_probe_goes_alone_and_nothing_is_claimed() -> None:
    """Unknown is not zero, but unknown: remaining is None and a single probe goes; its answer rules."""
    state = BucketState(limit=500, period=3600.0)
    assert state.remaining(0.0) is None
    probe = state.grant(0.0)
    assert probe.probe
    assert state.allowance(0.0) == 0
    state.sent(probe, 0.0)
    state.complete(probe, info(19, 2.0), 200, 0.1)
    assert (state.limit, state.window, state.remaining(0.1)) == (20, 2.0, 19)
    # The margin follows the server's window, not the configured hour: 1% of 2 s.
    assert state.margin == pytest.approx(0.02)


def test_a_wrong_prior_never_outruns_the_server() -> None:
    """Configured 1,000 per second against 500 an hour: the header, not the prior, sets what goes."""
    state = BucketState(limit=1000, period=1.0)
    one(state, 0.0, info(499, 3600.0, limit=500))
    assert state.allowance(0.0) == 499
    assert state.allowance(10.0) == 499  # the prior's 1 s period frees nothing


def test_the_learned_window_is_the_longest_reset_and_only_grows() -> None:
    """Reset values seen: the window is the longest, a shorter later one does not shrink it."""
    state = BucketState(limit=500, period=3600.0)
    one(state, 0.0, info(9, 10.0, limit=10))
    one(state, 1.0, info(8, 9.0, limit=10))
    assert state.window == 10.0
    one(state, 20.0, info(9, 30.0, limit=10))
    assert state.window == 30.0


def test_a_stated_window_rules_and_the_log_counts_in_it() -> None:
    """RateLimit-Policy's window is believed at once: the log frees each unit a window after it came back."""
    state = BucketState(limit=500, period=3600.0)
    one(state, 0.0, RateLimitInfo(limit=2, remaining=1, reset_after=2.0, window=2.0))
    one(state, 0.5, RateLimitInfo(limit=2, remaining=0, reset_after=1.5, window=2.0))
    assert (state.window, state.trusted) == (2.0, True)
    # Free again 2 s (+ margin) after each came back, even before a new answer.
    assert state.allowance(2.0 + state.margin + 0.001) == 1
    assert state.allowance(2.5 + state.margin + 0.001) == 2


def test_a_fixed_window_that_comes_back_whole_at_its_reset_is_trusted() -> None:
    """A drained window, then a probe at its Reset that finds the whole budget: the learned window is confirmed."""
    server, wire = FixedServer(10, 5.0, origin=None), Wire("delta")
    state = BucketState(limit=500, period=3600.0)
    assert drain(state, server, wire, 0.0) == 10
    assert not state.trusted
    at = state.reset_at
    assert drain(state, server, wire, at) == 10
    assert (state.window, state.trusted) == (5.0, True)
    assert server.rejected == 0


def test_a_token_bucket_announcing_its_next_token_is_never_trusted() -> None:
    """Its Reset is a token's wait, never its window: the log stays out, the headers alone pace it, no 429."""
    server, wire = TokenServer(20, 10.0), Wire("delta")
    state = BucketState(limit=500, period=3600.0)
    now, spent = 0.0, 0
    for _ in range(60):
        spent += drain(state, server, wire, now)
        nxt = state.next_event(now)
        assert nxt is not None
        now = nxt
    assert not state.trusted
    assert state.window == 1.0  # a token every 0.5 s, announced in whole seconds
    assert server.rejected == 0
    # 20 at first, then 2 a second for the rest of the run: all of it but the last wait's.
    assert spent >= 20 + 2 * now - 4


def test_an_answer_of_a_later_server_window_is_adopted_though_it_shows_more() -> None:
    """Answers overtake one another: one from the next window (a later Reset) replaces a lower count of this one."""
    state = BucketState(limit=500, period=3600.0)
    one(state, 0.0, info(0, 30.0, limit=10))
    assert state.remaining(0.0) == 0
    # A request counted in the next window answers first...
    a, b = state.grant(31.0), None
    state.sent(a, 31.0)
    state.complete(a, info(9, 30.0, limit=10), 200, 31.1)
    assert state.remaining(31.1) == 9
    # ... and within that window, a higher count that arrives late changes nothing.
    b = state.grant(31.1)
    state.sent(b, 31.1)
    c = state.grant(31.1)
    state.sent(c, 31.1)
    state.complete(c, info(7, 29.9, limit=10), 200, 31.2)
    state.complete(b, info(8, 29.9, limit=10), 200, 31.2)
    assert state.remaining(31.2) == 7


def test_a_lost_answer_costs_a_back_off_not_a_window() -> None:
    """429 with Retry-After 0, then a probe whose answer is lost: the next probe waits its time out, doubling."""
    state = BucketState(limit=500, period=3600.0)
    one(state, 0.0, info(0, 0.0, limit=10, retry_after=0.0), status=429)
    retry_at = state.blocked_until
    assert retry_at == pytest.approx(1.0)  # Retry-After 0 + the margin (1% of the hour prior, 1 s)
    probe = state.grant(retry_at)
    state.sent(probe, retry_at)
    state.complete(probe, None, None, retry_at + 30.0)  # a 30 s time-out
    assert state.probe_at == pytest.approx(retry_at + 60.0)
    assert state.allowance(retry_at + 59.0) == 0
    assert state.next_event(retry_at + 30.0) == state.probe_at
    again = state.grant(state.probe_at)
    state.sent(again, state.probe_at)
    state.complete(again, None, None, state.probe_at + 30.0)
    assert state.probe_at - (retry_at + 90.0) == pytest.approx(60.0)  # 30 s doubled
    # An answer ends the back-off.
    one(state, state.probe_at, info(9, 3600.0, limit=10))
    assert (state.losses, state.probe_at, state.allowance(state.reset_at - 1)) == (0, -math.inf, 9)


def test_the_back_off_is_capped_at_the_window() -> None:
    """However many answers are lost, the next probe comes within one learned window (+ margin)."""
    state = BucketState(limit=500, period=3600.0)
    one(state, 0.0, info(0, 5.0, limit=10))
    now = state.reset_at
    for _ in range(8):
        probe = state.grant(now)
        state.sent(probe, now)
        now += 4.0
        state.complete(probe, None, None, now)
        assert state.probe_at - now <= state.window + state.margin + 1e-9
        now = state.probe_at


def test_a_lost_probe_holds_the_next_until_it_left_the_window() -> None:
    """A probe past the Reset took the one unit the Reset promised: if its answer is lost, the next
    probe waits until it has left any window of the server's, not only the back-off (a token bucket
    refilling one token per 10 s would refuse it)."""
    server, wire = TokenServer(1, 10.0), Wire("exact")
    state = BucketState(limit=500, period=3600.0, safety_margin=0.0)
    now = 0.0
    assert drain(state, server, wire, now) == 1
    now = state.reset_at
    probe = state.grant(now)
    state.sent(probe, now)
    assert server.handle(now).ok  # counted ...
    state.complete(probe, None, None, now + 1.0)  # ... but its answer is lost after 1 s
    assert state.probe_at == pytest.approx(now + 1.0 + 10.0)
    assert state.allowance(now + 3.0) == 0  # the back-off alone (2 s) would have let a probe go
    assert not server.room(now + 3.0)
    assert drain(state, server, wire, state.probe_at) == 1
    assert server.rejected == 0


def test_a_lost_answer_stays_spent_until_a_later_request_covers_it() -> None:
    """An answer to a request sent before the loss was known may have overtaken the lost one at the
    server: only a request sent after the loss brings a count that surely includes it."""
    state = BucketState(limit=500, period=3600.0)
    one(state, 0.0, info(5, 100.0, limit=10))
    a, b = state.grant(1.0), state.grant(1.0)
    state.sent(a, 1.0)
    state.sent(b, 1.0)
    state.complete(a, None, None, 2.0)  # a: lost
    state.complete(b, info(4, 99.0, limit=10), 200, 2.1)  # b reached the server first: a not in its count
    assert state.remaining(2.1) == 3
    c = state.grant(2.2)
    state.sent(c, 2.2)
    state.complete(c, info(2, 98.0, limit=10), 200, 2.3)  # sent after the loss: its count is the truth
    assert state.remaining(2.3) == 2


def test_without_rate_limit_headers_the_configured_rule_applies() -> None:
    """A server that sends none: limit per rolling period, remaining known from the log."""
    state = BucketState(limit=3, period=10.0, safety_margin=0.0)
    one(state, 0.0, RateLimitInfo(), 200)
    assert state.headerless
    assert state.remaining(0.0) == 2
    one(state, 1.0, RateLimitInfo(), 200)
    one(state, 2.0, RateLimitInfo(), 200)
    assert state.allowance(9.9) == 0
    assert state.next_event(9.9) == pytest.approx(10.0)
    assert state.allowance(10.001) == 1


def test_an_epoch_reset_is_read_against_the_dates_sub_second_phase() -> None:
    """Whole-second Dates bound the server clock's phase; an epoch Reset is shortened by what they prove, no more."""
    state = BucketState(limit=500, period=3600.0)
    offset = 1_800_000_000.7  # the server's clock minus ours
    now, shortened = 0.0, []
    for step in range(12):
        now = step * 1.13
        date = math.floor(now + offset)
        reset_epoch = math.ceil(now + offset + 5.0)
        parsed = RateLimitInfo(limit=50, remaining=40, reset_after=reset_epoch - date, server_date=date)
        true_wait = reset_epoch - (now + offset)
        record = state.grant(now)
        state.sent(record, now)
        state.complete(record, parsed, 200, now)
        waited = state.reset_at - state.margin - now
        assert waited >= true_wait - 1e-9
        shortened.append(waited - true_wait)
    # Once the Dates have shown where the second turns, the Reset is read to within the probe's round trip.
    assert shortened[-1] < 0.05 < shortened[0]


def test_an_answer_with_another_limit_is_another_budget() -> None:
    """A limit unlike the one known (the server changed, or another now answers there): its word rules at once."""
    state = BucketState(limit=500, period=3600.0)
    one(state, 0.0, info(999_990, 3600.0, limit=1_000_000))
    assert state.allowance(1.0) == 999_990
    # The first answer of a server of 20 a window, though its Reset is earlier and its count higher than known.
    a, b = state.grant(1.0), state.grant(1.0)
    state.sent(a, 1.0)
    state.sent(b, 1.0)
    state.complete(a, info(19, 2.0), 200, 1.1)
    assert (state.limit, state.window, state.remaining(1.1)) == (20, 2.0, 18)
