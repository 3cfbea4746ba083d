"""The errors kayse_async raises, every one derived from :class:`KayseError` (the tree: docs/errors.md).

No message, ``repr`` or attribute of these errors ever holds an API key: the SDK builds every
message from data it controls (status, method, URL without credentials, an excerpt of the body).
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .models import BulkResult

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BatchRefusedError",
    "BulkError",
    "ConfigurationError",
    "ConnectError",
    "InternalServerError",
    "KayseError",
    "MethodNotAllowedError",
    "NotFoundError",
    "QuotaExhaustedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseFormatError",
    "ServiceUnavailableError",
    "TLSError",
    "TransportError",
    "ValidationError",
    "error_for_status",
]

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-correlation-id")
"""Response headers read, in this order, for ``APIError.request_id``."""


class KayseError(Exception):
    """Base of every error raised by kayse_async."""


class ConfigurationError(KayseError):
    """The client was configured wrongly: no API key, a bad base URL, a bad option."""


class ValidationError(KayseError, ValueError):
    """A request was refused before sending: nothing reached the server.

    ``field`` names the field as the API spells it (``clients[3].first_name`` in a bulk payload); ``reason`` why.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.reason))


class TransportError(KayseError):
    """No HTTP response was received.

    ``may_have_been_sent`` is True when the request may have reached the server (a time-out or a
    dropped connection after sending): its effect is then uncertain.
    """

    def __init__(self, message: str, *, method: str = "", url: str = "", may_have_been_sent: bool = True) -> None:
        self.method = method
        self.url = url
        self.may_have_been_sent = may_have_been_sent
        super().__init__(message)


class ConnectError(TransportError):
    """The connection could not be opened, or was lost."""


class TLSError(ConnectError):
    """The server's TLS certificate could not be verified: nothing was sent, and nothing is retried."""


class RequestTimeoutError(TransportError):
    """No complete response arrived within the time-out of one attempt."""


class APIError(KayseError):
    """The server answered with an HTTP error status.

    Attributes: ``status`` (the HTTP status), ``message`` (the server's message, or an excerpt of
    the body), ``body`` (the decoded JSON body, or the body's text when it is not JSON or is long,
    cut to a few kilobytes), ``method``, ``url``, ``retry_after`` (seconds the server asked to wait,
    from ``Retry-After``), ``headers`` (the response headers, names in lower case, API keys blanked
    out) and ``request_id`` (the server's id of the request, for its support, from the first of
    ``REQUEST_ID_HEADERS`` it sent, else None; also shown in the message).
    """

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: Any = None,
        method: str = "",
        url: str = "",
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        self.retry_after = retry_after
        self.message = message
        self.body = body
        self.method = method
        self.url = url
        self.headers = {name.lower(): value for name, value in (headers or {}).items()}
        self.request_id = next((self.headers[n] for n in REQUEST_ID_HEADERS if self.headers.get(n)), None)
        shown = f" (request id {self.request_id})" if self.request_id else ""
        super().__init__(f"{self.status} {method} {url}: {message}{shown}".replace("  ", " "))


class BadRequestError(APIError):
    """400: the server refused the request as invalid."""

    status = 400


class AuthenticationError(APIError):
    """401: the API key is missing, wrong or disabled."""

    status = 401


class NotFoundError(APIError):
    """404: the item does not exist."""

    status = 404


class MethodNotAllowedError(APIError):
    """405: the method is not allowed on this path."""

    status = 405


class RateLimitError(APIError):
    """429: the hourly budget of the key is spent. ``resets_at`` is a UTC datetime, or None."""

    status = 429

    def __init__(self, message: str, *, resets_at: _dt.datetime | None = None, **kwargs: Any) -> None:
        self.resets_at = resets_at
        super().__init__(message, **kwargs)


class InternalServerError(APIError):
    """500: the server failed."""

    status = 500


class ServiceUnavailableError(APIError):
    """503: the server is down for maintenance."""

    status = 503


class ResponseFormatError(APIError):
    """A 2xx answer that cannot be used at all: not the JSON object (or array) expected, or no id on a create.

    The request took effect; ``body`` is what came (keys redacted). A field of an unexpected type is
    never this error: it is kept as sent, and logged once.
    """


class QuotaExhaustedError(KayseError):
    """The budget is spent and waiting for it would pass the caller's ``max_wait``: raised at once.

    ``resets_at`` is when budget is expected back (a UTC datetime), or None when unknown.
    """

    def __init__(self, message: str, *, resets_at: _dt.datetime | None = None) -> None:
        self.resets_at = resets_at
        super().__init__(message)


class BatchRefusedError(KayseError):
    """A bulk item not stored because another item of its batch made the server refuse the batch: send it again.

    ``culprit`` is the input index of the item the server refused.
    """

    def __init__(self, culprit: int, *, key: str = "items") -> None:
        self.culprit = culprit
        super().__init__(
            f"not stored: its batch was refused because of item {culprit} ({key}[{culprit}]); send it again"
        )


class BulkError(KayseError):
    """Some items of a bulk call failed; ``result`` is the whole ``BulkResult``."""

    def __init__(self, result: BulkResult[Any]) -> None:
        self.result = result
        failures = result.failures
        first = failures[0] if failures else None
        detail = f"; first: item {first.index}: {first.error}" if first is not None else ""
        super().__init__(f"{len(failures)} of {len(result.items)} items failed{detail}")


_BY_STATUS: dict[int, type[APIError]] = {
    cls.status: cls
    for cls in (
        BadRequestError,
        AuthenticationError,
        NotFoundError,
        MethodNotAllowedError,
        RateLimitError,
        InternalServerError,
        ServiceUnavailableError,
    )
}


def error_for_status(status: int) -> type[APIError]:
    """The error class for an HTTP error status (``APIError`` for unlisted ones)."""
    return _BY_STATUS.get(status, APIError)
