"""The transport, the only module that imports aiohttp's client: a request goes down three stages.

:meth:`Transport.request` retries as the :class:`RetryPolicy` decides (never a create, SMS, email
or call that may have reached the server); :meth:`Transport._follow` follows same-origin redirects;
:meth:`Transport._attempt` is one HTTP exchange on one unit of budget, its lease settled whatever happens.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from types import SimpleNamespace
from urllib.parse import urljoin, urlsplit

import aiohttp
import attrs
from multidict import CIMultiDict
from yarl import URL

from . import _defaults
from ._wire.protocol import CALLS_KEY_HEADER, KEY_HEADERS, MAIN_KEY_HEADER, Request, Response, decipher, key_fingerprint
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

MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection, within the attempt's time-out."""
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""A response larger than this is refused: no documented response comes near it."""
POOL_SIZE = 100
"""Connections kept per client (aiohttp's pool)."""


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When a request is sent again, and after how long: plain data, read by the retry stage.

    At most ``max_retries`` retries follow the first attempt; before retry ``n``, a random wait up
    to ``min(wait_max, wait_initial * 2 ** (n - 1))`` s ("full jitter"), never shorter than the
    ``Retry-After`` of an answer in ``always`` (but ``quota_waits``, whose wait the quota imposes).
    ``always``: answers given without acting, retried for any request; ``if_idempotent``: retried
    only for a request safe to repeat, as are a time-out and a connection lost after sending. A
    connection that never opened is retried always, a certificate that failed never.
    """

    max_retries: int = _defaults.MAX_RETRIES
    wait_initial: float = 0.5
    wait_max: float = 30.0
    always: frozenset[int] = frozenset({429, 503})
    if_idempotent: frozenset[int] = frozenset({500})
    quota_waits: frozenset[int] = frozenset({429})

    def delay(self, exc: KayseError, request: Request, attempt: int, rng: random.Random) -> float | None:
        """Seconds to wait after attempt number ``attempt`` failed with ``exc``; None: no retry."""
        if attempt > self.max_retries:
            return None
        floor = 0.0
        if isinstance(exc, APIError):
            if exc.status in self.always:
                floor = 0.0 if exc.status in self.quota_waits else exc.retry_after or 0.0
            elif not (exc.status in self.if_idempotent and request.idempotent):
                return None
        elif (
            isinstance(exc, TLSError)
            or not isinstance(exc, TransportError)
            or (exc.may_have_been_sent and not request.idempotent)
        ):
            return None
        return max(floor, rng.uniform(0.0, min(self.wait_max, self.wait_initial * 2 ** (attempt - 1))))


@attrs.frozen(kw_only=True)
class RetryEvent:
    """A retry about to happen, as handed to ``AsyncKayse(on_retry=...)`` before its wait.

    ``method`` and ``url`` name the request (no key, no query string), ``attempt`` is the number of
    the attempt that failed (1 for the first), ``delay`` the seconds before the next one (a wait for
    budget may come on top), ``reason`` what went wrong as text, and ``error`` the error itself.
    """

    method: str
    url: str
    attempt: int
    delay: float
    reason: str
    error: KayseError


class _Endpoint:
    """A base URL with the key header that goes to it, and nowhere else."""

    __slots__ = ("base", "bucket", "headers", "key", "origin", "prefix", "root")

    def __init__(self, base: str, header: str, key: str, quota_bucket: str | None = None) -> None:
        self.base = base
        self.root = URL(base)  # each request's URL is this one with its path put in: no parse per request
        self.prefix = self.root.raw_path.rstrip("/")
        self.key = key
        self.bucket = bucket_name(base, key_fingerprint(key), quota_bucket)
        parts = urlsplit(base)
        self.origin = (parts.scheme, parts.hostname, parts.port)
        # Built once: aiohttp takes a CIMultiDict as it is, and copies it into each request.
        self.headers: CIMultiDict[str] = CIMultiDict({header: key, "Accept": "application/json"})


@attrs.frozen
class _Route:
    """How one host's requests go: the session, the headers each request adds, the proxy.

    ``headers`` is None when the session carries the key header (no proxy). Through a proxy the key
    goes with each request: aiohttp adds a session's headers to the proxy's ``CONNECT`` too.
    """

    session: aiohttp.ClientSession
    headers: Mapping[str, str] | None
    proxy: URL | None = None
    proxy_headers: Mapping[str, str] | None = None


@attrs.define
class _Pool:
    """The sessions of a client and of those derived from it: built on first use, in the loop.

    An injected session serves both hosts and is never closed.
    """

    injected: aiohttp.ClientSession | None
    routes: dict[str, _Route]
    loop: asyncio.AbstractEventLoop | None = None
    closed: bool = False


def _client_timeout(timeout: float) -> aiohttp.ClientTimeout:
    # A separate connect bound tells "never sent" (a connect time-out) from "maybe sent".
    return aiohttp.ClientTimeout(total=timeout, sock_connect=min(CONNECT_TIMEOUT, timeout))


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
        on_retry: Callable[[RetryEvent], object] | None = None,
        quota_bucket: str | None = None,
    ) -> None:
        self._endpoints = {
            "main": _Endpoint(base_url, MAIN_KEY_HEADER, api_key, quota_bucket),
            "calls": _Endpoint(calls_base_url, CALLS_KEY_HEADER, calls_api_key, quota_bucket),
        }
        self._secrets = tuple({api_key, calls_api_key})
        self._secret_bytes = tuple(secret.encode() for secret in self._secrets)
        self.timeout = timeout
        self._timeout = _client_timeout(timeout)
        self.policy = RetryPolicy(max_retries=max_retries)
        self.quota = quota
        self.max_wait = max_wait
        self._user_agent = user_agent
        routes = {host: _Route(session, ep.headers) for host, ep in self._endpoints.items()} if session else {}
        self._pool = _Pool(session, routes)
        self._owner = True
        self._on_retry = on_retry
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._rng = random.Random()
        self._closed = False
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
        """True once :meth:`aclose` ran, or the transport this one was derived from closed its sessions."""
        return self._closed or self._pool.closed

    def derive(self, *, timeout: float, max_retries: int, max_wait: float | None) -> Transport:
        """A transport with other options, sharing (not owning) this one's sessions, quota, keys and hook."""
        derived = copy.copy(self)
        derived.timeout, derived._timeout = timeout, _client_timeout(timeout)
        derived.policy = attrs.evolve(self.policy, max_retries=max_retries)
        derived.max_wait = max_wait
        derived._owner, derived._closed = False, False
        derived.requests_sent, derived.quota_wait_seconds = 0, 0.0
        return derived

    def _route(self, host: str) -> _Route:
        """How ``host``'s requests go (the sessions are built on first use)."""
        pool = self._pool
        if self._closed or pool.closed:
            raise KayseError("this client is closed")
        loop = asyncio.get_running_loop()
        if pool.loop is None:
            pool.loop = loop
            if pool.injected is None:
                self._build_sessions()
        elif pool.loop is not loop:
            raise KayseError(
                "this client belongs to another event loop; create one client per loop "
                "(or use the blocking Kayse client from threads)"
            )
        return pool.routes[host]

    def _build_sessions(self) -> None:
        # One session per host, sharing one connection pool: each carries its own key header as a
        # default (unless proxied), so that no request pays for merging headers, and no key goes to the other host.
        connector = aiohttp.TCPConnector(limit=POOL_SIZE)
        tracing = aiohttp.TraceConfig()
        tracing.on_request_headers_sent.append(_headers_sent)
        for host, endpoint in self._endpoints.items():
            proxy, proxy_headers = _env_proxy(endpoint.base)
            session = aiohttp.ClientSession(
                connector=connector,
                connector_owner=host == "main",
                timeout=self._timeout,
                headers={"User-Agent": self._user_agent, **(endpoint.headers if proxy is None else {})},
                raise_for_status=False,
                # The API authenticates by header and sets no cookie: nothing to keep or send back.
                cookie_jar=aiohttp.DummyCookieJar(),
                trace_configs=[tracing],
            )
            self._pool.routes[host] = _Route(session, None if proxy is None else endpoint.headers, proxy, proxy_headers)

    async def aclose(self) -> None:
        """Close the sessions if this transport built them; an injected or shared one is left open."""
        if self._closed:
            return
        self._closed = True
        pool = self._pool
        if self._owner and not pool.closed:
            pool.closed = True
            if pool.injected is None:
                # The calls host's session first: the main one owns the shared connector.
                for route in reversed(pool.routes.values()):
                    if not route.session.closed:
                        await route.session.close()

    async def request(self, request: Request, *, max_wait: float | None = None) -> Response:
        """The retry stage: send ``request`` as the policy allows, and return its deciphered response.

        ``max_wait`` bounds each attempt's wait for budget (default: the client's); past it,
        ``errors.QuotaExhaustedError`` is raised at once. An error after retries says their count and time.
        """
        wait_bound = self.max_wait if max_wait is None else max_wait
        started = asyncio.get_running_loop().time()
        attempt = 1
        uncertain = False
        while True:
            try:
                response = await self._follow(request, wait_bound, attempt > 1)
                response.after_lost_answer = uncertain
                return response
            except (APIError, TransportError) as exc:
                if uncertain and request.gone_ok_on_retry and isinstance(exc, NotFoundError):
                    # The attempt whose answer was lost did the work.
                    return Response(status=exc.status, data=None, rate_limit=RateLimitInfo())
                delay = self.policy.delay(exc, request, attempt, self._rng)
                if delay is None:
                    if attempt > 1:
                        elapsed = asyncio.get_running_loop().time() - started
                        exc.args = (f"{exc} (after {attempt} attempts over {elapsed:.1f} s)",)
                    raise
                # An answer that may have been lost after the request was applied.
                uncertain |= exc.may_have_been_sent if isinstance(exc, TransportError) else exc.status == 500
                self._retrying(
                    RetryEvent(
                        method=request.method, url=exc.url, attempt=attempt, delay=delay, reason=str(exc), error=exc
                    )
                )
                attempt += 1
                if delay > 0:
                    await self._sleep(delay)

    def _retrying(self, event: RetryEvent) -> None:
        template = "retrying %s %s in %.2f s (retry %d of %d) after %s"
        retries = self.policy.max_retries
        logger.info(template, event.method, event.url, event.delay, event.attempt, retries, event.reason)
        if self._on_retry is not None:
            try:
                self._on_retry(event)
            except Exception:
                logger.exception("on_retry hook failed")

    async def _follow(self, request: Request, wait_bound: float | None, priority: bool) -> Response:
        """The redirect stage: one attempt, then one more per same-origin redirect (each on its own unit of budget)."""
        endpoint = self._endpoints[request.host]
        url = endpoint.base + request.path
        target: str | URL = endpoint.root.with_path(endpoint.prefix + request.path)
        status = 0
        for _hop in range(MAX_REDIRECTS + 1):
            status, resp_headers, body, info = await self._attempt(request, target, url, wait_bound, priority)
            if not 300 <= status < 400:
                return decipher(
                    status, resp_headers, body, method=request.method, url=url, rate_limit=info, secrets=self._secrets
                )
            url = target = self._redirect(status, resp_headers, url, endpoint, request)
        raise APIError("too many redirects", status=status, method=request.method, url=url)

    async def _attempt(
        self, request: Request, target: str | URL, url: str, wait_bound: float | None, priority: bool
    ) -> tuple[int, Mapping[str, str], bytes, RateLimitInfo]:
        """The attempt stage: one HTTP exchange on one unit of budget, settled whatever happens."""
        route = self._route(request.host)
        headers = self._headers(request) if request.headers else route.headers
        waited_from = time.monotonic()
        try:
            lease = await self.quota.acquire(
                self._endpoints[request.host].bucket, max_wait=wait_bound, priority=priority
            )
        finally:
            self.quota_wait_seconds += time.monotonic() - waited_from
        mark = _Mark(lease)
        if self._pool.injected is not None:
            mark.sent()  # a session we did not build has no hook to tell when the request goes out
        debug = logger.isEnabledFor(logging.DEBUG)
        started = time.perf_counter() if debug else 0.0
        try:
            async with route.session.request(
                request.method,
                target,
                params=request.params,
                json=request.json,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
                proxy=route.proxy,
                proxy_headers=route.proxy_headers,
                middlewares=_NO_RESEND,
                trace_request_ctx=None if self._pool.injected else mark,
            ) as resp:
                length = resp.content_length
                if length is not None and length > MAX_RESPONSE_BYTES:
                    raise _TooLarge
                body = await resp.read() if length is not None else await _read_capped(resp)
                status, resp_headers = resp.status, resp.headers
        except BaseException as exc:
            # No response: failed, cancelled, or interrupted (Ctrl-C lands in whatever code runs the loop).
            mark.settle()
            self.requests_sent += mark.was_sent
            if isinstance(exc, aiohttp.ClientError | TimeoutError | _ConnectionLost | _TooLarge):
                raise self._failure(exc, request, url, sent=mark.was_sent) from None
            raise
        if debug:
            logger.debug("%s %s -> %d in %.1f ms", request.method, url, status, (time.perf_counter() - started) * 1000)
        info = parse_rate_limit(resp_headers, local_now=time.time())
        mark.settle(info, status)
        self.requests_sent += 1
        return status, resp_headers, self._redact(body), info

    def _headers(self, request: Request) -> CIMultiDict[str]:
        """A request's extra headers under its host's key header: a key header among them is never sent."""
        extra = request.headers or {}
        headers = CIMultiDict((name, value) for name, value in extra.items() if name.lower() not in KEY_HEADERS)
        headers.update(self._endpoints[request.host].headers)
        return headers

    def _failure(self, exc: BaseException, request: Request, url: str, *, sent: bool) -> KayseError:
        """The SDK's error for an attempt that got no response; ``sent`` says whether the server may have it."""
        method, where = request.method, f"{request.method} {url}"
        if isinstance(exc, _TooLarge):
            return APIError(f"response larger than {MAX_RESPONSE_BYTES} bytes refused", method=method, url=url)
        cls: type[TransportError] = ConnectError
        if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
            cls, text, sent = TLSError, f"TLS verification failed for {where}: {_describe(exc)}", False
        elif isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientHttpProxyError):
            text, sent = f"could not connect for {where}: {_describe(exc)}", False
        elif isinstance(exc, aiohttp.ConnectionTimeoutError):
            text, sent = f"could not connect within {self._timeout.sock_connect} s for {where}", False
        elif isinstance(exc, TimeoutError):
            cls, text = RequestTimeoutError, f"no complete response within {self._timeout.total} s for {where}"
        else:
            text = f"connection lost during {where}: {_describe(exc)}"
        return cls(text, method=method, url=url, may_have_been_sent=sent)

    def _redact(self, body: bytes) -> bytes:
        """Blank out any API key a server echoes back, before the body reaches errors or models."""
        for secret in self._secret_bytes:
            if secret in body:
                body = body.replace(secret, b"[redacted]")
        return body

    def _redirect(
        self, status: int, headers: Mapping[str, str], url: str, endpoint: _Endpoint, request: Request
    ) -> str:
        """Where a redirect leads, or the APIError that refuses it."""
        location, method = headers.get("Location"), request.method
        if not location:
            problem = f"redirect {status} without a Location"
        elif method not in ("GET", "HEAD") and status not in (307, 308):
            # 301/302/303 turn a POST into a GET elsewhere; the request's effect is unknown: do not guess.
            problem = f"redirect {status} of a {method} not followed"
        else:
            target = urljoin(url, location)
            parts = urlsplit(target)
            if (parts.scheme, parts.hostname, parts.port) == endpoint.origin:
                return target
            problem = f"redirected to another host ({parts.hostname}): not followed, so the API key is not sent there"
        raise APIError(problem, status=status, method=method, url=url)


class _Mark:
    """Settles one attempt's lease: refunded if nothing went out, spent once the request may have.

    Our sessions tell when the headers are written (aiohttp's ``on_request_headers_sent`` trace
    signal); an injected session has no such hook: sent up front.
    """

    __slots__ = ("lease", "was_sent")

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.was_sent = False

    def sent(self) -> None:
        if not self.was_sent:
            self.was_sent = True
            self.lease.sent()

    def settle(self, info: RateLimitInfo | None = None, status: int | None = None) -> None:
        """Once, with the response's ``info`` and ``status`` (or none): spend the unit, or refund it."""
        if status is not None:
            self.sent()  # a response proves it, whatever the hook saw
        if self.was_sent:
            self.lease.complete(info, status)
        else:
            self.lease.release()


async def _headers_sent(_session: aiohttp.ClientSession, context: SimpleNamespace, _params: object) -> None:
    mark = context.trace_request_ctx
    if isinstance(mark, _Mark):
        mark.sent()


class _ConnectionLost(Exception):
    """The connection failed under a request that was opened: carried past aiohttp's own resend."""


async def _no_resend(req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
    """A client middleware: a connection that fails under a request becomes our own error.

    aiohttp resends a GET, PUT or DELETE by itself when a kept-alive connection fails under it:
    budget never granted, and hiding that the first send may have been applied. It resends only on
    its own errors, around its middlewares: ours passes it by, and the retry stage decides.
    """
    try:
        return await handler(req)
    except aiohttp.ClientConnectorError:
        raise  # no connection: nothing was sent, and aiohttp does not resend these
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise _ConnectionLost(_describe(exc)) from exc


_NO_RESEND = (_no_resend,)


def _env_proxy(base: str) -> tuple[URL | None, dict[str, str] | None]:
    """The proxy the environment names for ``base`` (``HTTPS_PROXY``/``HTTP_PROXY``, unless ``NO_PROXY`` covers it).

    Read once (``trust_env`` reads it per request, and sends ``~/.netrc`` credentials to the API).
    Credentials in the proxy URL go to the proxy only, as ``Proxy-Authorization``.
    """
    parts = urlsplit(base)
    raw = urllib.request.getproxies().get(parts.scheme)  # HTTPS_PROXY for https://, HTTP_PROXY for http://
    if not raw or urllib.request.proxy_bypass(parts.hostname or ""):
        return None, None
    proxy = URL(raw)
    auth = aiohttp.BasicAuth.from_url(proxy)
    return proxy.with_user(None), ({"Proxy-Authorization": auth.encode()} if auth else None)


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


def _describe(exc: BaseException) -> str:
    """A short description of an error that cannot hold request headers (and so no key)."""
    if isinstance(exc, KayseError | _ConnectionLost):
        return str(exc)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
