"""AsyncKayse configuration: keys, environment, base URLs, options, repr."""

from __future__ import annotations

import pytest

import kayse_async
from kayse_async import AsyncKayse, errors

from .conftest import KEY, RecordingQuota


def test_no_key_at_all_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAYSE_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError, match="KAYSE_API_KEY"):
        AsyncKayse()


def test_key_and_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, quota: RecordingQuota) -> None:
    monkeypatch.setenv("KAYSE_API_KEY", KEY)
    monkeypatch.setenv("KAYSE_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("KAYSE_CALLS_BASE_URL", "http://localhost:9")
    monkeypatch.delenv("KAYSE_PUBLIC_API_KEY", raising=False)
    kayse = AsyncKayse(quota=quota)
    assert (kayse.base_url, kayse.calls_base_url) == ("http://127.0.0.1:9", "http://localhost:9")
    assert kayse._transport._endpoints["calls"].key == KEY


def test_calls_key_defaults_to_its_own_variable(monkeypatch: pytest.MonkeyPatch, quota: RecordingQuota) -> None:
    monkeypatch.setenv("KAYSE_PUBLIC_API_KEY", "public-key")
    kayse = AsyncKayse(KEY, quota=quota)
    assert kayse._transport._endpoints["calls"].key == "public-key"
    assert kayse._transport._endpoints["main"].key == KEY


def test_plain_http_to_a_remote_host_is_refused(quota: RecordingQuota) -> None:
    with pytest.raises(errors.ConfigurationError, match="plain http:// is refused"):
        AsyncKayse(KEY, base_url="http://api.kayse.com", quota=quota)
    with pytest.raises(errors.ConfigurationError, match="calls_base_url"):
        AsyncKayse(KEY, calls_base_url="http://public-api.kayse.ai", quota=quota)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", 0),
        ("timeout", "30"),
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_wait", -2),
        ("quota", object()),
    ],
)
def test_bad_options_are_configuration_errors(option: str, value: object) -> None:
    with pytest.raises(errors.ConfigurationError, match=option):
        AsyncKayse(KEY, **{option: value})  # type: ignore[arg-type]


def test_a_key_with_a_line_break_is_refused_without_echoing_it() -> None:
    with pytest.raises(errors.ConfigurationError) as info:
        AsyncKayse("abc\r\nX-Evil: 1")
    assert "abc" not in str(info.value)


def test_repr_never_shows_the_key(quota: RecordingQuota) -> None:
    kayse = AsyncKayse(KEY, quota=quota)
    for text in (repr(kayse), repr(kayse.clients), repr(kayse._transport), str(vars(kayse.clients))):
        assert KEY not in text


def test_public_names_are_exported_and_all_is_honest() -> None:
    assert set(kayse_async.__all__) >= {"AsyncKayse", "errors", "models", "__version__"}
    for name in kayse_async.__all__:
        assert hasattr(kayse_async, name), name
    for module in (kayse_async.errors, kayse_async.models):
        for name in module.__all__:
            assert hasattr(module, name), name
        public = {n for n in vars(module) if not n.startswith("_") and isinstance(getattr(module, n), type)}
        assert public - set(module.__all__) <= {"Any", "T", "TYPE_CHECKING"}, public - set(module.__all__)


def test_error_tree_is_as_documented() -> None:
    assert issubclass(errors.ConnectError, errors.TransportError)
    assert issubclass(errors.RequestTimeoutError, errors.TransportError)
    for cls in (errors.BadRequestError, errors.RateLimitError, errors.ServiceUnavailableError):
        assert issubclass(cls, errors.APIError)
    for cls in (
        errors.ConfigurationError,
        errors.ValidationError,
        errors.TransportError,
        errors.APIError,
        errors.QuotaExhaustedError,
        errors.BulkError,
    ):
        assert issubclass(cls, errors.KayseError)
    assert errors.error_for_status(429) is errors.RateLimitError
    assert errors.error_for_status(418) is errors.APIError


@pytest.mark.parametrize("url", ["127.0.0.1:8400", "localhost:8400", "api.kayse.com", "//api.kayse.com"])
def test_a_base_url_without_a_scheme_says_so(url: str, quota: RecordingQuota) -> None:
    """A base URL without http:// or https:// is refused with that reason, for both base URLs."""
    with pytest.raises(errors.ConfigurationError, match="base_url: missing http:// or https://"):
        AsyncKayse(KEY, base_url=url, quota=quota)
    with pytest.raises(errors.ConfigurationError, match="calls_base_url: missing http:// or https://"):
        AsyncKayse(KEY, calls_base_url=url, quota=quota)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://api.kayse.com/v1", "https://api.kayse.com"),
        ("https://api.kayse.com/v1/", "https://api.kayse.com"),
        ("http://127.0.0.1:8400/v1", "http://127.0.0.1:8400"),
        ("https://gw.example.com/kayse/v1", "https://gw.example.com/kayse"),
        ("https://v1", "https://v1"),
        ("https://api.kayse.com/v10", "https://api.kayse.com/v10"),
    ],
)
def test_a_base_url_ending_in_v1_is_kept_without_it(given: str, kept: str, quota: RecordingQuota) -> None:
    """Every route starts with /v1: a base URL that ends in it is taken without it, so the prefix is not doubled."""
    kayse = AsyncKayse(KEY, base_url=given, calls_base_url=given, quota=quota)
    assert (kayse.base_url, kayse.calls_base_url) == (kept, kept)


def test_on_retry_must_be_callable(quota: RecordingQuota) -> None:
    """on_retry that cannot be called is refused at construction."""
    with pytest.raises(errors.ConfigurationError, match="on_retry"):
        AsyncKayse(KEY, quota=quota, on_retry="print")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value"), [("timeout", 0), ("max_retries", -1), ("max_wait", -2), ("timeout", None)]
)
def test_with_options_checks_what_it_changes(option: str, value: object, quota: RecordingQuota) -> None:
    """with_options refuses a bad value as the constructor does, naming the option."""
    kayse = AsyncKayse(KEY, quota=quota)
    with pytest.raises(errors.ConfigurationError, match=option):
        kayse.with_options(**{option: value})  # type: ignore[arg-type]


def test_with_options_changes_only_what_is_given(quota: RecordingQuota) -> None:
    """Options not given are the client's; max_wait=None is a value (no bound), not 'unchanged'."""
    kayse = AsyncKayse(KEY, quota=quota, timeout=12.0, max_retries=5, max_wait=30.0)
    derived = kayse.with_options(max_retries=0)
    transport = derived._transport
    assert (transport.timeout, transport.policy.max_retries, transport.max_wait) == (12.0, 0, 30.0)
    assert derived.with_options(max_wait=None)._transport.max_wait is None
    assert derived.with_options(timeout=2)._transport.timeout == 2.0
    assert (derived.base_url, derived.quota) == (kayse.base_url, kayse.quota)
    base = kayse._transport
    assert (base.timeout, base.policy.max_retries, base.max_wait) == (12.0, 5, 30.0)
