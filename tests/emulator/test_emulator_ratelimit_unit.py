"""The rate limiter's window arithmetic, on a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from kayse_async.testing._ratelimit import RateLimiter

from .helpers import FakeClock


def spend(limiter: RateLimiter, key: str, n: int) -> list[bool]:
    return [limiter.hit(key).allowed for _ in range(n)]


def test_fixed_window_opens_at_first_request_and_refills_at_its_end() -> None:
    """Fixed: `limit` per window anchored at the first request; the next window opens after `period`."""
    clock = FakeClock()
    limiter = RateLimiter(3, 10.0, "fixed", clock=clock)
    first = limiter.hit("k")
    assert (first.allowed, first.remaining, first.reset_after) == (True, 2, 10.0)
    clock.advance(4)
    assert spend(limiter, "k", 3) == [True, True, False]
    refused = limiter.hit("k")
    assert (refused.allowed, refused.remaining, refused.reset_after, refused.retry_after) == (False, 0, 6.0, 6)
    clock.advance(5.999)
    assert not limiter.hit("k").allowed
    clock.advance(0.001)
    fresh = limiter.hit("k")
    assert (fresh.allowed, fresh.remaining, fresh.reset_after) == (True, 2, 10.0)


def test_refused_requests_spend_nothing() -> None:
    """A 429 does not eat into the next window: after the reset the whole limit is there."""
    clock = FakeClock()
    limiter = RateLimiter(2, 5.0, "fixed", clock=clock)
    assert spend(limiter, "k", 50) == [True, True] + [False] * 48
    clock.advance(5)
    assert spend(limiter, "k", 3) == [True, True, False]


def test_keys_have_separate_budgets() -> None:
    """One key's spending leaves another key's budget whole."""
    limiter = RateLimiter(1, 5.0, "sliding", clock=FakeClock())
    assert spend(limiter, "a", 2) == [True, False]
    assert spend(limiter, "b", 2) == [True, False]


def test_sliding_log_frees_one_slot_when_the_oldest_request_ages_out() -> None:
    """Sliding: at most `limit` in any `period`; Reset is when the oldest counted request leaves."""
    clock = FakeClock()
    limiter = RateLimiter(3, 10.0, "sliding", clock=clock)
    limiter.hit("k")
    clock.advance(2)
    limiter.hit("k")
    clock.advance(2)
    last = limiter.hit("k")
    assert (last.remaining, last.reset_after) == (0, 6.0)
    refused = limiter.hit("k")
    assert (refused.allowed, refused.retry_after) == (False, 6)
    clock.advance(6)
    again = limiter.hit("k")
    assert (again.allowed, again.remaining, again.reset_after) == (True, 0, 2.0)
    assert not limiter.hit("k").allowed
    clock.advance(2)
    assert limiter.hit("k").allowed


def test_sliding_log_never_allows_more_than_limit_in_any_period() -> None:
    """Sliding: a request every 0.5 s for a minute never gets more than `limit` into any 10 s span."""
    clock = FakeClock()
    limiter = RateLimiter(5, 10.0, "sliding", clock=clock)
    accepted: list[float] = []
    for _ in range(120):
        if limiter.hit("k").allowed:
            accepted.append(clock.now)
        clock.advance(0.5)
    for index, start in enumerate(accepted):
        assert len([t for t in accepted[index:] if t < start + 10.0]) <= 5
    assert len(accepted) == 30  # 5 per 10 s over 60 s: the budget is fully usable


def test_token_bucket_starts_full_and_refills_at_limit_per_period() -> None:
    """Token: a burst of `limit`, then one every period/limit seconds; Reset is the next whole token."""
    clock = FakeClock()
    limiter = RateLimiter(4, 8.0, "token", clock=clock)  # one token every 2 s
    assert spend(limiter, "k", 4) == [True] * 4
    refused = limiter.hit("k")
    assert (refused.allowed, refused.remaining, refused.reset_after) == (False, 0, pytest.approx(2.0))
    clock.advance(1.5)
    waiting = limiter.hit("k")
    assert (waiting.allowed, waiting.reset_after) == (False, pytest.approx(0.5))
    clock.advance(0.5)
    got = limiter.hit("k")
    assert (got.allowed, got.remaining, got.reset_after) == (True, 0, pytest.approx(2.0))
    clock.advance(100)
    full = limiter.hit("k")
    assert (full.allowed, full.remaining) == (True, 3)  # capped at capacity, less this request


def test_reset_gives_every_key_its_budget_back() -> None:
    """reset() empties every window and bucket."""
    for window in ("fixed", "sliding", "token"):
        limiter = RateLimiter(1, 100.0, window, clock=FakeClock())
        assert spend(limiter, "k", 2) == [True, False]
        limiter.reset()
        assert limiter.hit("k").allowed


@pytest.mark.parametrize(("limit", "period", "window"), [(0, 1.0, "fixed"), (1, 0.0, "fixed"), (1, 1.0, "leaky")])
def test_bad_settings_are_refused(limit: int, period: float, window: str) -> None:
    """A limit below 1, a period not positive or an unknown window is a ValueError."""
    with pytest.raises(ValueError, match=r"limit|period|window"):
        RateLimiter(limit, period, window, clock=FakeClock())  # type: ignore[arg-type]


@pytest.mark.parametrize("window", ["fixed", "sliding", "token"])
def test_looking_spends_nothing(window: str) -> None:
    """hit(spend=False) reports the budget as a spending hit would see it, and leaves it as it was."""
    clock = FakeClock()
    limiter = RateLimiter(3, 30.0, window, clock=clock)  # type: ignore[arg-type]
    untouched = limiter.hit("new", spend=False)
    assert (untouched.allowed, untouched.remaining) == (True, 3)
    spend(limiter, "k", 2)
    clock.advance(1)
    looks = [limiter.hit("k", spend=False) for _ in range(5)]
    assert {(look.allowed, look.remaining) for look in looks} == {(True, 1)}
    assert spend(limiter, "k", 2) == [True, False]
    assert not limiter.hit("k", spend=False).allowed
