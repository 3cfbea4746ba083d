"""What the security tests share: distinctive keys, a scriptable local server, and the leak scanner."""

from __future__ import annotations

import contextlib
import logging
import ssl
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import attrs
from aiohttp import web

KEY = "sk_live_SECRET_main_4f1c9e27b8d03a65"
"""The main API key: long and distinctive, so that any copy of it is found."""
CALLS_KEY = "sk_live_SECRET_calls_7d2a0b94e61f3c58"
"""The calls key, sent only as X-Public-Api-Key."""
SECRETS = (KEY, CALLS_KEY, KEY[8:], CALLS_KEY[8:])
"""What must never show: each key, and its tail (a key cut after a prefix is still a leak)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class Seen:
    """One request a test server received."""

    method: str
    path: str
    headers: dict[str, str]


@attrs.define
class Server:
    """A running test server: its URL and every request it received."""

    url: str
    seen: list[Seen] = attrs.field(factory=list)


@contextlib.asynccontextmanager
async def serve(
    handler: Handler, *, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Server]:
    """Serve ``handler`` for every path on a free port of ``host``; record what arrives."""
    server = Server(url="")

    async def recording(request: web.Request) -> web.StreamResponse:
        server.seen.append(Seen(request.method, request.path, dict(request.headers)))
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recording)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        name = "localhost" if ssl_context is not None else host
        server.url = f"{scheme}://{name}:{port}"
        yield server
    finally:
        await runner.cleanup()


class Capture(logging.Handler):
    """Keeps every log record of every logger, at every level."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        """Every record fully formatted: message, arguments, exception and stack."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        out: list[str] = []
        for record in self.records:
            out.append(formatter.format(record))
            out.append(repr(record.args))
            out.append(repr(vars(record)))
        return out


def exception_texts(exc: BaseException) -> list[str]:
    """Everything an error shows: str, repr, the full traceback with chained causes, and its attributes."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts += [f"{name}={value!r}" for name, value in vars(current).items()]
        result = getattr(current, "result", None)
        if result is not None:
            for item in getattr(result, "items", []):
                if item.error is not None:
                    todo.append(item.error)
        todo += [current.__cause__, current.__context__]
    return texts


def leaks(texts: Iterable[str]) -> list[str]:
    """The texts that hold a secret, each cut to 200 characters around it."""
    found: list[str] = []
    for text in texts:
        for secret in SECRETS:
            at = text.find(secret)
            if at >= 0:
                found.append(text[max(0, at - 100) : at + 100])
    return found


def assert_no_leak(*groups: Iterable[str]) -> None:
    """Fail, showing where, if any text of any group holds a key."""
    texts = [text for group in groups for text in group]
    assert texts, "nothing was scanned"
    found = leaks(texts)
    assert not found, f"API key found in {len(found)} place(s): {found[:3]}"


def json_error(status: int, message: str, field: Any = None, **headers: str) -> web.Response:
    """An error response shaped as the API's."""
    return web.json_response({"message": message, "field": field}, status=status, headers=headers)
