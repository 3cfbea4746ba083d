"""The transport: the only module that imports aiohttp's client.

It owns the ``ClientSession``, draws one unit of budget from the quota for
every attempt, applies the per-attempt time-out, and retries exactly what is
safe to retry:

- 429 and 503, and connection failures before anything was sent: always
  (the server did not act on the request);
- 500, time-outs and dropped connections after sending: only requests marked
  ``idempotent`` (GET, PUT, DELETE, bulk_delete, bulk updates carrying ids),
  never a create, an SMS, an email or a call, which could then happen twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.connector import Connection
from multidict import CIMultiDict
from yarl import URL

from ._wire.protocol import (
    CALLS_KEY_HEADER,
    MAIN_KEY_HEADER,
    Request,
    Response,
    decipher,
    key_fingerprint,
)
from ._wire.ratelimit import RateLimitInfo, parse_rate_limit
from .errors import (
    APIError,
    ConnectError,
    KayseError,
    NotFoundError,
    RequestTimeoutError,
    TLSError,
    TransportError,
)
from .quota._base import Lease, Quota, bucket_name

logger = logging.getLogger("kayse_async")

BACKOFF_BASE = 0.5
"""Seconds: the first retry waits up to this long (full jitter), doubling each time."""
BACKOFF_CAP = 30.0
"""Seconds: no backoff is longer than this (a server's Retry-After may be)."""
MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection, within the attempt's time-out."""
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""A response larger than this is refused: no documented response comes near it."""
POOL_SIZE = 100
"""Connections kept per client (aiohttp's pool)."""

_RETRY_ALWAYS = frozenset({429, 503})
_RETRY_IF_IDEMPOTENT = frozenset({500})

Sleep = Callable[[float], Awaitable[None]]


class _Endpoint:
    """A base URL with the key header that goes to it, and nowhere else."""

    __slots__ = ("base", "bucket", "header", "headers", "key", "origin", "prefix", "root")

    def __init__(self, base: str, header: str, key: str, quota_bucket: str | None = None) -> None:
        self.base = base
        # Each request's URL is this one with its path put in: aiohttp would otherwise parse the
        # whole URL string anew on every request (yarl caches only the last few hundred).
        self.root = URL(base)
        self.prefix = self.root.raw_path.rstrip("/")
        self.header = header
        self.key = key
        self.bucket = bucket_name(base, key_fingerprint(key), quota_bucket)
        parts = urlsplit(base)
        self.origin = (parts.scheme, parts.hostname, parts.port)
        # Built once: aiohttp takes a CIMultiDict as it is, and copies it into each request.
        self.headers: CIMultiDict[str] = CIMultiDict({header: key, "Accept": "application/json"})

    def __repr__(self) -> str:
        return f"_Endpoint({self.base!r})"


class Transport:
    """Sends :class:`Request` objects and returns deciphered :class:`Response` objects."""

    def __init__(
        self,
        *,
        base_url: str,
        calls_base_url: str,
        api_key: str,
        calls_api_key: str,
        timeout: float,
        max_retries: int,
        quota: Quota,
        max_wait: float | None,
        user_agent: str,
        session: aiohttp.ClientSession | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        quota_bucket: str | None = None,
    ) -> None:
        self._endpoints = {
            "main": _Endpoint(base_url, MAIN_KEY_HEADER, api_key, quota_bucket),
            "calls": _Endpoint(calls_base_url, CALLS_KEY_HEADER, calls_api_key, quota_bucket),
        }
        self._secrets = tuple({api_key.encode(), calls_api_key.encode()})
        # A separate connect bound tells "never sent" (a connect time-out) from "maybe sent".
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(CONNECT_TIMEOUT, timeout))
        self._max_retries = max_retries
        self.quota = quota
        # A quota that can grant at once without a coroutine (MemoryQuota) is asked that first.
        self._grant_now: Callable[..., Lease | None] | None = getattr(quota, "grant_now", None)
        self._max_wait = max_wait
        self._user_agent = user_agent
        self._session = session
        self._calls_session: aiohttp.ClientSession | None = None
        # Our own sessions tell us when a request goes out and carry the key headers as defaults.
        self._owns_session = session is None
        if session is not None:
            _no_silent_resend(session)
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests_sent = 0
        """Attempts that reached the wire (or may have), over the transport's life."""
        self.quota_wait_seconds = 0.0
        """Seconds spent waiting for budget, summed over every attempt, over the transport's life."""

    def __repr__(self) -> str:
        return f"<Transport {self._endpoints['main'].base!r}>"

    def bucket(self, host: str = "main") -> str:
        """The quota bucket of a host: its origin (or the ``quota_bucket`` name) and the key's fingerprint."""
        return self._endpoints[host].bucket

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran."""
        return self._closed

    def _get_session(self, endpoint: _Endpoint) -> aiohttp.ClientSession:
        """The session for ``endpoint``'s requests: ours (built on first use), or the injected one."""
        if self._closed:
            raise KayseError("this client is closed")
        loop = asyncio.get_running_loop()
        if self._session is None:
            # One session per host, sharing one connection pool: each carries its own key header as a
            # default, so that no request pays for merging headers, and no key goes to the other host.
            main, calls = self._endpoints["main"], self._endpoints["calls"]
            connector = aiohttp.TCPConnector(limit=POOL_SIZE)
            self._session = self._new_session(connector, main, owner=True)
            self._calls_session = self._new_session(connector, calls, owner=False)
            self._loop = loop
        elif self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise KayseError(
                "this client belongs to another event loop; create one client per loop "
                "(or use the blocking Kayse client from threads)"
            )
        if endpoint.header == CALLS_KEY_HEADER and self._calls_session is not None:
            return self._calls_session
        return self._session

    def _new_session(
        self, connector: aiohttp.TCPConnector, endpoint: _Endpoint, *, owner: bool
    ) -> aiohttp.ClientSession:
        headers = {"User-Agent": self._user_agent, **endpoint.headers}
        session = aiohttp.ClientSession(
            connector=connector,
            connector_owner=owner,
            timeout=self._timeout,
            headers=headers,
            raise_for_status=False,
            request_class=_MarkingRequest,
            # The API authenticates by header and sets no cookie: nothing to keep or send back.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        _no_silent_resend(session)
        return session

    async def aclose(self) -> None:
        """Close the sessions if this transport created them; an injected one is left open."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        calls, self._calls_session = self._calls_session, None
        if self._owns_session:
            for each in (calls, session):
                if each is not None and not each.closed:
                    await each.close()

    def _backoff(self, retry: int, floor: float | None = None) -> float:
        delay = self._rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2**retry)))
        if floor is not None:
            delay = max(delay, floor)
        return delay

    async def request(self, request: Request, *, max_wait: float | None = None) -> Response:
        """Send ``request`` (retrying what is safe to retry) and return its deciphered response.

        ``max_wait`` bounds the wait for budget of each attempt (default: the
        client's); past it, ``errors.QuotaExhaustedError`` is raised at once.

        One attempt per turn of the loop, written out here rather than in a
        function of its own: this is every request's path, and each coroutine
        layer costs on every suspension.
        """
        endpoint = self._endpoints[request.host]
        url = endpoint.base + request.path
        target: str | URL = endpoint.root.with_path(endpoint.prefix + request.path)
        wait_bound = self._max_wait if max_wait is None else max_wait
        quota = self.quota
        grant_now = self._grant_now
        retry = 0
        redirects = 0
        uncertain = False
        while True:
            try:
                session = self._get_session(endpoint)
                lease: Lease | None = grant_now(endpoint.bucket, max_wait=wait_bound) if grant_now else None
                if lease is None:
                    waited_from = time.monotonic()
                    try:
                        lease = await quota.acquire(endpoint.bucket, max_wait=wait_bound, priority=retry > 0)
                    finally:
                        self.quota_wait_seconds += time.monotonic() - waited_from
                # Exactly one of release() or sent()+complete() happens, whatever is cancelled where.
                mark = _SendMark(lease)
                if not self._owns_session:
                    # A session we did not build has no hook to tell us when the request goes out: count it now.
                    mark.sent()
                debug = logger.isEnabledFor(logging.DEBUG)
                started = time.perf_counter() if debug else 0.0
                token = _SENDING.set(mark)
                try:
                    async with session.request(
                        request.method,
                        target,
                        params=request.params,
                        json=request.json,
                        headers=_headers(request, endpoint.headers, owned=self._owns_session),
                        allow_redirects=False,
                        timeout=self._timeout,
                    ) as resp:
                        length = resp.content_length
                        if length is None:
                            body = await _read_capped(resp)
                        elif length > MAX_RESPONSE_BYTES:
                            raise _TooLarge
                        else:
                            body = await resp.read()
                        status = resp.status
                        resp_headers: Mapping[str, str] = resp.headers
                except (aiohttp.ClientError, TimeoutError, _TooLarge) as exc:
                    mark.settle()
                    raise self._failure(exc, request, url, sent=mark.was_sent) from None
                except BaseException:
                    # Cancelled, or interrupted (Ctrl-C lands in whatever code runs the loop): settle, go up.
                    mark.settle()
                    raise
                finally:
                    _SENDING.reset(token)
                    if mark.was_sent:
                        self.requests_sent += 1
                if not mark.was_sent:
                    mark.sent()  # a response proves it, whatever the hook saw
                body = self._redact(body)
                if debug:
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    logger.debug("%s %s -> %d in %.1f ms", request.method, url, status, elapsed_ms)
                info = parse_rate_limit(resp_headers, local_now=time.time())
                mark.complete(info, status)
                if 300 <= status < 400:
                    raise self._redirect(status, resp_headers.get("Location"), url, endpoint, request)
                response = decipher(status, resp_headers, body, method=request.method, url=url, rate_limit=info)
                response.after_lost_answer = uncertain
                return response
            except NotFoundError as exc:
                if uncertain and request.gone_ok_on_retry:
                    # The attempt whose answer was lost did the work.
                    return Response(status=exc.status, data=None, rate_limit=RateLimitInfo())
                raise
            except _Redirect as hop:
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise APIError("too many redirects", status=hop.status, method=request.method, url=url) from None
                url = target = hop.location
                continue
            except (APIError, TransportError) as exc:
                floor = self._retry_floor(exc, request)
                if floor is None or retry >= self._max_retries:
                    raise
                delay = self._backoff(retry, floor)
                retry += 1
                uncertain = uncertain or _may_have_applied(exc)
                logger.info(
                    "retrying %s %s in %.2f s (retry %d of %d) after %s",
                    request.method,
                    url,
                    delay,
                    retry,
                    self._max_retries,
                    _describe(exc),
                )
                if delay > 0:
                    await self._sleep(delay)

    def _retry_floor(self, exc: KayseError, request: Request) -> float | None:
        """None when ``exc`` must not be retried; else the least wait before the retry."""
        if isinstance(exc, APIError):
            if exc.status == 429:
                # The quota scheduler holds the next attempt until the window resets.
                return 0.0
            if exc.status in _RETRY_ALWAYS:
                return exc.retry_after or 0.0
            if exc.status in _RETRY_IF_IDEMPOTENT and request.idempotent:
                return 0.0
            return None
        if isinstance(exc, TLSError):
            return None
        if isinstance(exc, TransportError) and (not exc.may_have_been_sent or request.idempotent):
            return 0.0
        return None

    def _failure(self, exc: BaseException, request: Request, url: str, *, sent: bool) -> KayseError:
        """The SDK's error for an attempt that got no response; ``sent`` says whether the server may have it."""
        method = request.method
        if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
            return TLSError(
                f"TLS verification failed for {method} {url}: {_describe(exc)}",
                method=method,
                url=url,
                may_have_been_sent=False,
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return ConnectError(
                f"could not connect for {method} {url}: {_describe(exc)}",
                method=method,
                url=url,
                may_have_been_sent=False,
            )
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return ConnectError(
                f"could not connect within {self._timeout.sock_connect} s for {method} {url}",
                method=method,
                url=url,
                may_have_been_sent=False,
            )
        if isinstance(exc, _TooLarge):
            return APIError(f"response larger than {MAX_RESPONSE_BYTES} bytes refused", method=method, url=url)
        if isinstance(exc, TimeoutError):
            return RequestTimeoutError(
                f"no complete response within {self._timeout.total} s for {method} {url}",
                method=method,
                url=url,
                may_have_been_sent=sent,
            )
        return ConnectError(
            f"connection lost during {method} {url}: {_describe(exc)}", method=method, url=url, may_have_been_sent=sent
        )

    def _redact(self, body: bytes) -> bytes:
        """Blank out any API key a server echoes back, before the body reaches errors or models."""
        for secret in self._secrets:
            if secret in body:
                body = body.replace(secret, b"[redacted]")
        return body

    def _redirect(
        self, status: int, location: str | None, url: str, endpoint: _Endpoint, request: Request
    ) -> Exception:
        if not location:
            return APIError(f"redirect {status} without a Location", status=status, method=request.method, url=url)
        if request.method not in ("GET", "HEAD") and status not in (307, 308):
            # 301/302/303 turn a POST into a GET elsewhere; the request's effect is unknown: do not guess.
            return APIError(
                f"redirect {status} of a {request.method} not followed", status=status, method=request.method, url=url
            )
        target = urljoin(url, location)
        parts = urlsplit(target)
        if (parts.scheme, parts.hostname, parts.port) != endpoint.origin:
            return APIError(
                f"redirected to another host ({parts.hostname}); not followed, so that the API key is not sent there",
                status=status,
                method=request.method,
                url=url,
            )
        return _Redirect(status, target)


class _SendMark:
    """Settles one attempt's lease: refunded if nothing went out, spent once it may have.

    Our own session's request class calls :meth:`sent` just before the request
    is written, so a connection that never opened costs no budget.
    """

    __slots__ = ("done", "lease", "was_sent")

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.was_sent = False
        self.done = False

    def sent(self) -> None:
        if not self.was_sent:
            self.was_sent = True
            self.lease.sent()

    def settle(self) -> None:
        """No response came: spend the unit if the request may have gone out, else give it back."""
        if self.done:
            return
        self.done = True
        if self.was_sent:
            self.lease.complete(None, None)
        else:
            self.lease.release()

    def complete(self, info: RateLimitInfo, status: int) -> None:
        self.done = True
        self.lease.complete(info, status)


_SENDING: ContextVar[_SendMark | None] = ContextVar("kayse_async_sending", default=None)
"""The attempt whose request the current task is about to write (read by ``_MarkingRequest``)."""


class _MarkingRequest(aiohttp.ClientRequest):
    """aiohttp's request, which tells the attempt's ``_SendMark`` just before it is written.

    ``send`` runs once a connection is open, so a connection that never opened
    costs no budget. Cheaper than a TraceConfig, which runs aiohttp's whole
    tracing machinery on every request.
    """

    def send(self, conn: Connection) -> Coroutine[Any, Any, aiohttp.ClientResponse]:  # pyright: ignore[reportIncompatibleMethodOverride]
        # A plain function handing back aiohttp's coroutine, which the caller awaits at once:
        # the mark is set when the write begins, without one more coroutine frame per request.
        mark = _SENDING.get()
        if mark is not None:
            mark.sent()
        return super().send(conn)


class _Redirect(Exception):
    def __init__(self, status: int, location: str) -> None:
        self.status = status
        self.location = location
        super().__init__(location)


class _TooLarge(Exception):
    pass


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """A body of unknown length, read in chunks and refused past the cap."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _no_silent_resend(session: aiohttp.ClientSession) -> None:
    """Stop aiohttp from resending a GET, PUT or DELETE by itself when a kept-alive connection was closed.

    That resend would spend budget the quota never granted and bypass the
    retry rules; the transport's own retries cover the case. The attribute is
    private to aiohttp (its own test client sets it); it is left alone if gone.
    """
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False


def _headers(request: Request, keys: CIMultiDict[str], *, owned: bool) -> CIMultiDict[str] | None:
    """The headers a request adds to the session's: the caller's extras, never replacing the key headers."""
    if not request.headers:
        return None if owned else keys
    headers = CIMultiDict(request.headers)
    headers.update(keys)
    return headers


def _may_have_applied(exc: KayseError) -> bool:
    if isinstance(exc, TransportError):
        return exc.may_have_been_sent
    return isinstance(exc, APIError) and exc.status == 500


def _describe(exc: BaseException) -> str:
    """A short description of an error that cannot hold request headers (and so no key)."""
    if isinstance(exc, KayseError):
        return str(exc)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
