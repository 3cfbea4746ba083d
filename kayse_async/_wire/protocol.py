"""Sans-I/O protocol: requests as data, and responses deciphered into data, rate-limit info or a typed error."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs

from ..errors import ConfigurationError, RateLimitError, ResponseFormatError, error_for_status
from .converter import structure
from .ratelimit import RateLimitInfo, parse_rate_limit

T = TypeVar("T")

Host = Literal["main", "calls"]

MAIN_KEY_HEADER = "X-API-KEY"
CALLS_KEY_HEADER = "X-Public-Api-Key"
KEY_HEADERS = frozenset({MAIN_KEY_HEADER.lower(), CALLS_KEY_HEADER.lower()})
"""The key headers' names in lower case: never taken from a caller's extra headers."""
EXCERPT_CHARS = 500
MAX_BODY_KEPT = 4096


@attrs.define(kw_only=True)
class Request:
    """One API call, before it is sent.

    ``host`` picks the base URL and key header (``main``: ``X-API-KEY``; ``calls``: ``X-Public-Api-Key``).
    ``idempotent``: sending it twice is harmless, so it is retried even once it may have reached the server.
    """

    method: str
    path: str
    host: Host = "main"
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    json: Any = None
    idempotent: bool = False
    gone_ok_on_retry: bool = False
    """A DELETE: a 404 on a retry that followed an attempt which may have been applied means done."""


@attrs.define(kw_only=True)
class Response:
    """A deciphered success: the JSON data and what the headers said of the budget."""

    status: int
    data: Any
    rate_limit: RateLimitInfo
    after_lost_answer: bool = False
    """An earlier attempt of this request may have been applied and its answer was lost: this is a retry's."""


def key_fingerprint(api_key: str) -> str:
    """A stable, non-secret name for an API key's budget (never the key itself)."""
    return "k:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(name: str, url: str) -> str:
    """Check a base URL (https, or http to a loopback host only); returned without a trailing slash or ``/v1``."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{name} must be a non-empty URL string")
    if "://" not in url:
        shown = f" in {url!r}" if "@" not in url else ""
        raise ConfigurationError(f"{name}: missing http:// or https://{shown} (as in https://api.kayse.com)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name} must be an http(s) URL with a host, got {parts.scheme or '?'}://...")
    if parts.username or parts.password:
        raise ConfigurationError(f"{name} must not carry credentials")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"{name}: plain http:// is refused for {parts.hostname} (the API key would travel in clear); "
            "use https://, or http:// to a loopback host for tests"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name} must not have a query or fragment")
    path = parts.path.rstrip("/").removesuffix("/v1").rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def excerpt(body: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """A printable excerpt of a response body for error messages."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _kept_body(raw: bytes) -> Any:
    """The body kept on an APIError: JSON when it parses, else text, cut to a few kilobytes."""
    if len(raw) <= MAX_BODY_KEPT:
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
    return raw[:MAX_BODY_KEPT].decode("utf-8", "replace")


def redacted_headers(headers: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    """Response headers for an error to carry: names in lower case, any API key in a value blanked out."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        for secret in secrets:
            value = value.replace(secret, "[redacted]")
        key = name.lower()
        kept[key] = f"{kept[key]}, {value}" if key in kept else value
    return kept


def _resets_at(info: RateLimitInfo, local_now: float) -> dt.datetime | None:
    wait = info.retry_after if info.retry_after is not None else info.reset_after
    if wait is None:
        return None
    try:
        return dt.datetime.fromtimestamp(local_now + wait, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _message_of(data: Any) -> str | None:
    if isinstance(data, Mapping):
        for key in ("message", "error", "detail"):
            value = data.get(key)
            if isinstance(value, str) and value:
                field = data.get("field")
                return f"{field}: {value}" if isinstance(field, str) and field and field not in value else value
            if isinstance(value, Mapping):
                inner = _message_of(value)
                if inner:
                    return inner
    return None


def _loads(body: bytes) -> Any:
    """JSON from a body: decoded as UTF-8 first (the usual case), else as ``json`` detects it (BOM, UTF-16, UTF-32)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return json.loads(body)
    try:
        return json.loads(text)
    except ValueError:
        if body[:3] == b"\xef\xbb\xbf":
            return json.loads(body)  # a byte-order mark, which json.loads accepts only in bytes
        raise


def decipher(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    local_now: float | None = None,
    rate_limit: RateLimitInfo | None = None,
    secrets: Iterable[str] = (),
) -> Response:
    """Turn an HTTP response into a :class:`Response`, or raise the typed error for it.

    A 2xx body must be JSON (empty reads as None), else :class:`ResponseFormatError`. An error status
    raises ``errors.error_for_status(status)`` with the server's message (or an excerpt of the body).
    Errors carry the response headers, with any of ``secrets`` (the API keys) blanked out.
    """
    info = rate_limit
    if info is None:
        info = parse_rate_limit(headers, local_now=time.time() if local_now is None else local_now)
    if 200 <= status < 300:
        if not body or body.isspace():
            return Response(status=status, data=None, rate_limit=info)
        try:
            data = _loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ResponseFormatError(
                f"the response is not valid JSON: {excerpt(body)!r}",
                status=status,
                body=_kept_body(body),
                method=method,
                url=url,
                headers=redacted_headers(headers, secrets),
            ) from None
        return Response(status=status, data=data, rate_limit=info)
    kept = _kept_body(body)
    message = _message_of(kept) or (excerpt(body) if body.strip() else "(empty body)")
    cls = error_for_status(status)
    common: dict[str, Any] = {
        "status": status,
        "body": kept,
        "method": method,
        "url": url,
        "retry_after": info.retry_after,
        "headers": redacted_headers(headers, secrets),
    }
    if cls is RateLimitError:
        raise RateLimitError(
            message, resets_at=_resets_at(info, time.time() if local_now is None else local_now), **common
        )
    raise cls(message, **common)


def format_error(detail: str, data: Any, *, method: str, url: str, status: int = 200) -> ResponseFormatError:
    """The error for a 2xx answer that cannot be used, saying why, with an excerpt of what came."""
    shown = excerpt(json.dumps(data, default=str))
    return ResponseFormatError(
        f"unexpected response: {detail}: {shown!r}", status=status, body=data, method=method, url=url
    )


def structure_response(
    data: Any, cls: type[T], *, method: str, url: str, status: int = 200, need_id: bool = False
) -> T:
    """Structure a 2xx answer into ``cls`` leniently (a field of an unexpected type is kept, see the converter).

    Raises :class:`ResponseFormatError` only for an answer of no use: not a JSON object (an array
    of them for ``list[...]``), or, with ``need_id``, an object without an integer ``id``.
    """
    if need_id and (type(data) is not dict or type(data.get("id")) is not int):
        detail = f"expected a JSON object with an integer id for {getattr(cls, '__name__', cls)}"
        raise format_error(detail, data, method=method, url=url, status=status)
    try:
        return structure(data, cls)
    except Exception as exc:
        raise format_error(str(exc), data, method=method, url=url, status=status) from None


def expect(data: Any, kind: type[Any], what: str, *, method: str, url: str, status: int = 200) -> Any:
    """Check that ``data`` is of JSON type ``kind`` (dict or list), or raise ResponseFormatError with an excerpt."""
    if not isinstance(data, kind):
        raise format_error(f"expected {what}", data, method=method, url=url, status=status)
    return data
