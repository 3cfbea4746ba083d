"""The sans-I/O protocol: rate-limit headers, deciphering, errors, base URLs."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kayse_async import errors
from kayse_async._wire.protocol import _loads, check_base_url, decipher, excerpt, is_loopback, key_fingerprint
from kayse_async._wire.ratelimit import parse_rate_limit

NOW = 1_800_000_000.0


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def test_reset_as_delta_is_read_as_seconds_from_now() -> None:
    info = parse_rate_limit(
        {"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "42", "X-RateLimit-Reset": "120"}, local_now=NOW
    )
    assert (info.limit, info.remaining, info.reset_after) == (500, 42, 120.0)


def test_reset_as_epoch_is_read_against_the_date_header_not_the_local_clock() -> None:
    server_now = NOW + 3600  # the local clock is an hour behind the server's
    headers = {"X-RateLimit-Reset": str(int(server_now + 90)), "Date": http_date(server_now)}
    assert parse_rate_limit(headers, local_now=NOW).reset_after == pytest.approx(90.0)


def test_reset_as_epoch_without_date_falls_back_to_the_local_clock() -> None:
    assert parse_rate_limit({"X-RateLimit-Reset": str(int(NOW + 30))}, local_now=NOW).reset_after == pytest.approx(30.0)


def test_headers_are_case_insensitive_and_garbage_reads_as_unknown() -> None:
    info = parse_rate_limit(
        {"x-ratelimit-remaining": "7", "X-RateLimit-Limit": "lots", "X-RateLimit-Reset": "nan"}, local_now=NOW
    )
    assert (info.limit, info.remaining, info.reset_after) == (None, 7, None)


def test_retry_after_as_seconds_and_as_http_date() -> None:
    assert parse_rate_limit({"Retry-After": "12"}, local_now=NOW).retry_after == 12.0
    headers = {"Retry-After": http_date(NOW + 40), "Date": http_date(NOW)}
    assert parse_rate_limit(headers, local_now=0.0).retry_after == pytest.approx(40.0)


def test_success_body_is_decoded_with_rate_limit_info() -> None:
    resp = decipher(200, {"X-RateLimit-Remaining": "3"}, b'{"id": 1}', method="GET", url="u", local_now=NOW)
    assert resp.data == {"id": 1}
    assert resp.rate_limit.remaining == 3


def test_empty_success_body_is_none() -> None:
    assert decipher(204, {}, b"", method="DELETE", url="u", local_now=NOW).data is None


def test_non_json_success_body_is_an_api_error_with_an_excerpt() -> None:
    with pytest.raises(errors.APIError, match=r"not valid JSON.*<html>") as info:
        decipher(200, {}, b"<html>Gateway</html>", method="GET", url="https://h/v1/x", local_now=NOW)
    assert info.value.body == "<html>Gateway</html>"
    assert info.value.method == "GET"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (404, errors.NotFoundError),
        (405, errors.MethodNotAllowedError),
        (429, errors.RateLimitError),
        (500, errors.InternalServerError),
        (503, errors.ServiceUnavailableError),
        (418, errors.APIError),
    ],
)
def test_each_error_status_maps_to_its_class_with_the_server_message(status: int, cls: type[errors.APIError]) -> None:
    body = b'{"message": "first_name is required", "field": "first_name"}'
    with pytest.raises(cls) as info:
        decipher(status, {}, body, method="POST", url="https://h/v1/clients", local_now=NOW)
    err = info.value
    assert type(err) is cls
    assert (err.status, err.message, err.method, err.url) == (
        status,
        "first_name is required",
        "POST",
        "https://h/v1/clients",
    )
    assert err.body == {"message": "first_name is required", "field": "first_name"}


def test_error_message_names_the_field_when_the_message_does_not() -> None:
    with pytest.raises(errors.BadRequestError, match="date_of_birth: bad date"):
        decipher(400, {}, b'{"message": "bad date", "field": "date_of_birth"}', method="POST", url="u", local_now=NOW)


def test_html_error_page_gives_an_excerpt() -> None:
    with pytest.raises(errors.ServiceUnavailableError, match="Down for maintenance"):
        decipher(503, {}, b"<html><body>Down for maintenance</body></html>", method="GET", url="u", local_now=NOW)


def test_rate_limit_error_carries_when_the_budget_resets() -> None:
    with pytest.raises(errors.RateLimitError) as info:
        decipher(429, {"Retry-After": "60"}, b"{}", method="GET", url="u", local_now=NOW)
    assert info.value.resets_at == dt.datetime.fromtimestamp(NOW + 60, tz=dt.UTC)
    assert info.value.retry_after == 60.0


def test_excerpt_is_bounded() -> None:
    text = excerpt(b"x" * 10_000)
    assert len(text) < 600
    assert text.endswith("(10000 chars)")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8400", "http://localhost", "http://[::1]:80", "https://api.kayse.com"]
)
def test_accepted_base_urls(url: str) -> None:
    assert check_base_url("base_url", url + "/") == url


@pytest.mark.parametrize(
    "url", ["http://api.kayse.com", "ftp://x", "https://", "https://user:pw@h.com", "https://h.com/?q=1", ""]
)
def test_refused_base_urls(url: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="base_url"):
        check_base_url("base_url", url)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.2")
    assert is_loopback("::1")
    assert is_loopback("LOCALHOST")
    assert not is_loopback("10.0.0.1")
    assert not is_loopback("localhost.evil.com")


def test_key_fingerprint_is_stable_and_does_not_contain_the_key() -> None:
    key = "sk_live_abcdef0123456789"
    assert key_fingerprint(key) == key_fingerprint(key) != key_fingerprint(key + "x")
    assert "abcdef" not in key_fingerprint(key)


def test_absurd_reset_hints_are_capped_at_a_day() -> None:
    info = parse_rate_limit({"X-RateLimit-Reset": "253402300800", "Retry-After": "99999999999"}, local_now=NOW)
    assert info.reset_after == 86_400.0
    assert info.retry_after == 86_400.0


def test_no_rate_limit_header_reads_as_all_unknown() -> None:
    info = parse_rate_limit({"Content-Type": "application/json"}, local_now=NOW)
    assert (info.limit, info.remaining, info.reset_after, info.retry_after) == (None, None, None, None)
    assert not info.present


def test_rate_limit_numbers_in_their_usual_and_unusual_forms() -> None:
    info = parse_rate_limit({"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": " 12 "}, local_now=NOW)
    assert (info.limit, info.remaining) == (500, 12)
    info = parse_rate_limit({"X-RateLimit-Limit": "5e2", "X-RateLimit-Remaining": "-1"}, local_now=NOW)
    assert (info.limit, info.remaining) == (500, None)


@pytest.mark.parametrize(
    "body",
    [
        b'\xef\xbb\xbf{"id": 1}',  # UTF-8 with a byte-order mark
        '{"id": 1}'.encode("utf-16"),  # another encoding json detects
        b'{"id": 1}',
    ],
)
def test_a_success_body_is_read_in_any_encoding_json_accepts(body: bytes) -> None:
    assert decipher(200, {}, body, method="GET", url="u").data == {"id": 1}


def test_a_blank_success_body_is_none() -> None:
    assert decipher(200, {}, b" \r\n", method="GET", url="u").data is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_PADDING = st.sampled_from(["", " ", "\n", "\r\n", "\t ", "\x0b", "\u00a0"])


def _outcome(read: Any, text: str) -> tuple[str, str]:
    try:
        return ("value", repr(read(text)))
    except ValueError:
        return ("error", "")


@given(value=_JSON, before=_PADDING, after=_PADDING, tail=st.sampled_from(["", "1", "}", "x"]))
def test_a_body_reads_as_json_loads_reads_its_text(value: Any, before: str, after: str, tail: str) -> None:
    """The UTF-8-first reading gives what json.loads gives: the value, or a ValueError (never another error)."""
    text = before + json.dumps(value) + after + tail
    ours = _outcome(lambda t: _loads(t.encode()), text)
    assert ours == _outcome(json.loads, text)


@given(text=st.text(max_size=40))
def test_any_text_reads_as_json_loads_reads_it(text: str) -> None:
    """Whatever a server sends (as UTF-8): the same value or the same refusal as json.loads."""
    if text.startswith("\ufeff"):
        text = " " + text  # a leading byte-order mark is read on purpose (test above); not this property
    assert _outcome(lambda t: _loads(t.encode()), text) == _outcome(json.loads, text)
