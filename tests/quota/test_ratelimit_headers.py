"""parse_rate_limit: X-RateLimit-* and Retry-After, Reset as a delta or an epoch read against Date."""

from __future__ import annotations

import email.utils

import pytest

from kayse_async._wire.ratelimit import RateLimitInfo, parse_rate_limit

DATE = "Sat, 28 Nov 2026 12:00:00 GMT"
DATE_EPOCH = 1795867200.0


def test_date_constant_matches_its_epoch() -> None:
    """The fixture's Date header and its epoch agree (the other tests rely on it)."""
    assert email.utils.parsedate_to_datetime(DATE).timestamp() == DATE_EPOCH


def test_delta_reset_is_seconds_from_the_response() -> None:
    """A small Reset is a delta."""
    got = parse_rate_limit(
        {"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "37"}, local_now=0.0
    )
    assert got == RateLimitInfo(limit=500, remaining=12, reset_after=37.0)
    assert got.present


def test_epoch_reset_is_read_against_the_date_header_not_the_local_clock() -> None:
    """An epoch Reset minus the response's Date, whatever the local clock says (skewed by an hour here)."""
    got = parse_rate_limit({"X-RateLimit-Reset": str(int(DATE_EPOCH) + 90), "Date": DATE}, local_now=DATE_EPOCH + 3600)
    assert got.reset_after == 90.0
    assert got.server_date == DATE_EPOCH


def test_epoch_reset_without_date_falls_back_to_the_local_clock() -> None:
    """No Date header: the local wall clock is the only reference."""
    got = parse_rate_limit({"X-RateLimit-Reset": "2000000030"}, local_now=2_000_000_000.0)
    assert got.reset_after == 30.0


def test_a_reset_in_the_past_is_zero_not_negative() -> None:
    """An epoch Reset before Date means "now"."""
    got = parse_rate_limit({"X-RateLimit-Reset": str(int(DATE_EPOCH) - 5), "Date": DATE}, local_now=0.0)
    assert got.reset_after == 0.0


def test_header_names_are_case_insensitive_in_a_plain_dict() -> None:
    """Lower-case names (HTTP/2, proxies) are found in a plain mapping too."""
    got = parse_rate_limit({"x-ratelimit-remaining": "3", "retry-after": "7"}, local_now=0.0)
    assert (got.remaining, got.retry_after) == (3, 7.0)


def test_retry_after_as_an_http_date_is_read_against_date() -> None:
    """Retry-After may be an HTTP date: seconds after the response's Date."""
    got = parse_rate_limit({"Retry-After": "Sat, 28 Nov 2026 12:00:42 GMT", "Date": DATE}, local_now=0.0)
    assert got.retry_after == 42.0


@pytest.mark.parametrize("bad", ["", "soon", "nan", "inf", "-3"])
def test_unreadable_or_negative_values_are_none(bad: str) -> None:
    """A header that is not a usable number counts as absent."""
    got = parse_rate_limit(
        {"X-RateLimit-Limit": bad, "X-RateLimit-Remaining": bad, "Date": "not a date"}, local_now=0.0
    )
    assert (got.limit, got.remaining, got.server_date) == (None, None, None)


def test_no_headers_is_not_present() -> None:
    """A response without rate-limit headers: nothing known."""
    got = parse_rate_limit({"Content-Type": "application/json"}, local_now=0.0)
    assert got == RateLimitInfo()
    assert not got.present


def test_fractional_delta_is_kept() -> None:
    """A fractional delta (not the documented integer) is accepted as is."""
    assert parse_rate_limit({"X-RateLimit-Reset": "1.5"}, local_now=0.0).reset_after == 1.5


def test_absurd_hints_are_capped_at_a_day() -> None:
    """A Reset or Retry-After decades away (a broken server) is read as one day, not obeyed."""
    got = parse_rate_limit({"X-RateLimit-Reset": "999999999", "Retry-After": "1e12"}, local_now=0.0)
    assert (got.reset_after, got.retry_after) == (86_400.0, 86_400.0)


def test_the_drafts_policy_states_the_window() -> None:
    """RateLimit-Policy (500;w=3600) and RateLimit (limit=, remaining=, reset=) as the IETF draft writes them."""
    got = parse_rate_limit(
        {"RateLimit-Policy": "500;w=3600", "RateLimit": "limit=500, remaining=42, reset=30"}, local_now=0.0
    )
    assert (got.limit, got.remaining, got.reset_after, got.window) == (500, 42, 30, 3600)


def test_the_later_drafts_named_policies_follow_the_ratelimit_header() -> None:
    """ "name";q=..;w=.. policies: the one RateLimit ("name";r=..;t=..) names is used, not the first."""
    got = parse_rate_limit(
        {
            "RateLimit-Policy": '"burst";q=10;w=1, "hourly";q=500;w=3600',
            "RateLimit": '"hourly";r=7;t=12',
        },
        local_now=0.0,
    )
    assert (got.limit, got.remaining, got.reset_after, got.window) == (500, 7, 12, 3600)


def test_x_ratelimit_headers_come_first_and_the_policy_adds_the_window() -> None:
    """Both kinds sent: X-RateLimit-* give the numbers, RateLimit-Policy only what they lack."""
    got = parse_rate_limit(
        {
            "X-RateLimit-Limit": "20",
            "X-RateLimit-Remaining": "3",
            "X-RateLimit-Reset": "2",
            "RateLimit-Policy": "25;w=2",
            "RateLimit": "limit=25, remaining=9, reset=1",
        },
        local_now=0.0,
    )
    assert (got.limit, got.remaining, got.reset_after, got.window) == (20, 3, 2, 2)
    assert got.present


def test_a_policy_alone_is_present_and_a_bad_window_is_none() -> None:
    """A window with nothing else still counts as rate-limit headers; an unreadable one is ignored."""
    assert parse_rate_limit({"RateLimit-Policy": "10;w=60"}, local_now=0.0).present
    assert parse_rate_limit({"RateLimit-Policy": "10;w=soon"}, local_now=0.0).window is None
    assert parse_rate_limit({"RateLimit-Policy": "10;w=0"}, local_now=0.0).window is None


def test_server_date_is_kept_only_for_an_epoch_reset() -> None:
    """The Date goes to the scheduler with an epoch Reset (to read the clock's phase), not with a delta."""
    dated = parse_rate_limit({"X-RateLimit-Reset": str(int(DATE_EPOCH) + 5), "Date": DATE}, local_now=0.0)
    delta = parse_rate_limit({"X-RateLimit-Reset": "5", "Retry-After": DATE, "Date": DATE}, local_now=0.0)
    assert (dated.server_date, delta.server_date) == (DATE_EPOCH, None)
    assert delta.retry_after == 0.0
