"""AsyncKayse: the async client."""

from __future__ import annotations

import copy
import enum
import os
from collections.abc import Callable
from types import TracebackType
from typing import Final

import aiohttp

from . import _defaults
from ._resources._base import Resource
from ._resources._calls import Calls
from ._resources._campaigns import Campaigns
from ._resources._case_lists import CaseLists
from ._resources._cases import Cases
from ._resources._clients import Clients
from ._resources._metadata import Metadata
from ._transport import RetryEvent, Transport
from ._wire.protocol import check_base_url
from .errors import ConfigurationError
from .models import QuotaSnapshot
from .quota import Quota, default_quota


class Unchanged(enum.Enum):
    """The type of :data:`UNCHANGED`."""

    UNCHANGED = "unchanged"


UNCHANGED: Final = Unchanged.UNCHANGED
"""The default of ``with_options``' arguments: keep the client's own value."""


def _check_options(timeout: object, max_retries: object, max_wait: object) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
    if max_wait is not None and (isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or max_wait < 0):
        raise ConfigurationError(f"max_wait must be None or a number of seconds >= 0, got {max_wait!r}")


class AsyncKayse:
    """The async client of the Kayse Public API.

    One client serves a whole application: keep it for the app's life and call it from many tasks at
    once. Use it as ``async with AsyncKayse() as kayse:`` or close it with ``await kayse.aclose()``.

    ``api_key`` defaults to the ``KAYSE_API_KEY`` environment variable; it is sent as ``X-API-KEY``
    to ``base_url`` only. ``calls_api_key`` (default: ``KAYSE_PUBLIC_API_KEY``, then ``api_key``) is
    sent as ``X-Public-Api-Key`` to ``calls_base_url`` only. ``timeout`` bounds each attempt, in
    seconds; ``max_retries`` bounds the retries of one request, which happen only where they cannot
    repeat an effect. ``quota`` is the rate-limit scheduler (default: the process-wide one); it
    keeps one budget per server origin and API key, unless ``quota_bucket`` names one budget for the
    key on every server on purpose (a proxy and the API it fronts). ``max_wait`` bounds, in seconds,
    how long a call waits for budget before ``errors.QuotaExhaustedError`` (default: no bound). An
    injected ``session`` is used as is and never closed by the client. ``on_retry`` is called with a
    :class:`RetryEvent` before each retry's wait (an error it raises is logged, not raised).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        calls_base_url: str | None = None,
        calls_api_key: str | None = None,
        timeout: float = _defaults.TIMEOUT,
        max_retries: int = _defaults.MAX_RETRIES,
        quota: Quota | None = None,
        session: aiohttp.ClientSession | None = None,
        max_wait: float | None = None,
        on_retry: Callable[[RetryEvent], object] | None = None,
        quota_bucket: str | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(_defaults.ENV_API_KEY)
        if not key:
            raise ConfigurationError(
                f"no API key: pass api_key=... or set {_defaults.ENV_API_KEY} "
                "(keys are made in Kayse under company settings, API Keys)"
            )
        if not isinstance(key, str) or key != key.strip() or any(c in key for c in "\r\n\0"):
            raise ConfigurationError("the API key must be a string without surrounding spaces or line breaks")
        calls_key = calls_api_key or os.environ.get(_defaults.ENV_CALLS_API_KEY) or key
        if any(c in calls_key for c in "\r\n\0"):
            raise ConfigurationError("calls_api_key must not contain line breaks")
        base_url = check_base_url("base_url", base_url or os.environ.get(_defaults.ENV_BASE_URL) or _defaults.BASE_URL)
        calls_base_url = check_base_url(
            "calls_base_url", calls_base_url or os.environ.get(_defaults.ENV_CALLS_BASE_URL) or _defaults.CALLS_BASE_URL
        )
        _check_options(timeout, max_retries, max_wait)
        if quota is not None and not isinstance(quota, Quota):
            raise ConfigurationError("quota must implement kayse_async.quota.Quota")
        if on_retry is not None and not callable(on_retry):
            raise ConfigurationError("on_retry must be a callable taking a RetryEvent")
        if quota_bucket is not None and (not isinstance(quota_bucket, str) or not quota_bucket.strip()):
            raise ConfigurationError("quota_bucket must be None or a non-empty string")
        self._transport = Transport(
            base_url=base_url,
            calls_base_url=calls_base_url,
            api_key=key,
            calls_api_key=calls_key,
            timeout=float(timeout),
            max_retries=max_retries,
            quota=quota if quota is not None else default_quota(),
            max_wait=max_wait,
            user_agent=f"kayse-async/{_defaults.VERSION}",
            session=session,
            on_retry=on_retry,
            quota_bucket=quota_bucket,
        )
        self.base_url = base_url
        """The base URL of the main routes (without a trailing slash or ``/v1``)."""
        self.calls_base_url = calls_base_url
        """The base URL of ``/v1/calls``."""
        self.clients = Clients(self._transport)
        """Clients: create, get, update, patch, delete, bulk_upsert, bulk_upsert_iter."""
        self.cases = Cases(self._transport)
        """Cases: the clients' calls, plus bulk_delete, send_sms, send_email."""
        self.case_lists = CaseLists(self._transport)
        """Case lists: list, create, bulk_upsert."""
        self.campaigns = Campaigns(self._transport)
        """Campaigns: create, list."""
        self.calls = Calls(self._transport)
        """AI calls: schedule."""
        self.metadata = Metadata(self._transport)
        """Metadata: objects."""

    def __repr__(self) -> str:
        state = " closed" if self._transport.closed else ""
        return f"<AsyncKayse {self.base_url}{state}>"

    @property
    def quota(self) -> QuotaSnapshot:
        """What the SDK knows of the key's budget now (``limit``, ``remaining``, ``resets_at``); no request."""
        return self._transport.quota.snapshot(self._transport.bucket("main"))

    def with_options(
        self,
        *,
        timeout: float | Unchanged = UNCHANGED,
        max_retries: int | Unchanged = UNCHANGED,
        max_wait: float | Unchanged | None = UNCHANGED,
    ) -> AsyncKayse:
        """A client that differs from this one only in the options given, for calls that need them.

        It shares this client's session, quota, keys, base URLs and ``on_retry`` hook. Closing it
        only stops it; closing this client closes the session for every client derived from it.
        """
        transport = self._transport
        timeout = transport.timeout if isinstance(timeout, Unchanged) else timeout
        max_retries = transport.policy.max_retries if isinstance(max_retries, Unchanged) else max_retries
        max_wait = transport.max_wait if isinstance(max_wait, Unchanged) else max_wait
        _check_options(timeout, max_retries, max_wait)
        derived = copy.copy(self)
        derived._transport = transport.derive(timeout=float(timeout), max_retries=max_retries, max_wait=max_wait)
        for name, value in vars(self).items():
            if isinstance(value, Resource):
                setattr(derived, name, type(value)(derived._transport))
        return derived

    @property
    def closed(self) -> bool:
        """True once the client is closed."""
        return self._transport.closed

    async def aclose(self) -> None:
        """Close the client's session (an injected session is left open). Idempotent."""
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncKayse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
