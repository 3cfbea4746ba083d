"""Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), through a real local proxy."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import trustme
from aiohttp import web
from core.recording import RecordingQuota

from kayse_async import AsyncKayse, errors
from kayse_async.quota import MemoryQuota
from kayse_async.testing import Emulator

from .conftest import CALLS_KEY, KEY

PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


class ForwardProxy:
    """A tiny proxy: plain-HTTP requests in absolute form are forwarded (one per connection), CONNECT is tunnelled."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        """Request lines, as the proxy received them."""
        self.heads: list[bytes] = []
        """Every request head the proxy itself read (not what went through a tunnel)."""
        self.server: asyncio.Server | None = None
        self.refuse = False
        """Answer every CONNECT with 403."""

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            line, _, rest = head.partition(b"\r\n")
            method, target, _version = line.decode().split(" ")
            self.seen.append(f"{method} {target}")
            if method == "CONNECT" and self.refuse:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            length = 0
            kept = []
            for header in rest.split(b"\r\n"):
                name = header.split(b":", 1)[0].strip().lower()
                if name == b"content-length":
                    length = int(header.split(b":", 1)[1])
                if header and name not in (b"connection", b"proxy-connection", b"proxy-authorization"):
                    kept.append(header)
            body = await reader.readexactly(length)
            url = urlsplit(target)
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
            path = url.path + (f"?{url.query}" if url.query else "")
            up_writer.write(f"{method} {path} HTTP/1.1\r\n".encode() + b"\r\n".join([*kept, b"Connection: close"]))
            up_writer.write(b"\r\n\r\n" + body)
            answer = await up_reader.read()
            up_writer.close()
            writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ForwardProxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    server = ForwardProxy()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    async with server.server:
        yield server


def client(url: str) -> AsyncKayse:
    return AsyncKayse(KEY, base_url=url, calls_base_url=url, calls_api_key=CALLS_KEY, quota=MemoryQuota(limit=10_000))


async def test_http_proxy_carries_the_requests(
    proxy: ForwardProxy, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY set: every request goes through the proxy, and the answers come back through it."""
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.address}")
    async with client(emulator.url) as kayse:
        created = await kayse.clients.create(external_source="m", external_source_id="p", first_name="A", last_name="B")
        assert (await kayse.clients.get(created.id or 0)).first_name == "A"
    assert proxy.seen == [f"POST {emulator.url}/v1/clients", f"GET {emulator.url}/v1/clients/{created.id}"]
    assert emulator.stats()["requests"] == 2


async def test_no_proxy_sends_direct(proxy: ForwardProxy, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_PROXY naming the host: the requests go straight to it, the proxy sees nothing."""
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.address}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with client(emulator.url) as kayse:
        assert await kayse.metadata.objects()
    assert proxy.seen == []
    assert emulator.stats()["requests"] == 1


@contextlib.asynccontextmanager
async def tls_server(ca: trustme.CA) -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTPS server with a certificate from ``ca`` (which the SDK does not trust); the paths it received."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        return web.json_response([])

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        yield f"https://localhost:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_https_proxy_tunnels_with_its_credentials_and_never_sees_the_key(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY with user:password: a CONNECT with Proxy-Authorization; the key goes inside the tunnel only."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:s3cret@{proxy.address}")
    async with tls_server(trustme.CA()) as (url, seen), client(url) as kayse:
        with pytest.raises(errors.TLSError) as info:  # the tunnel reached the server, whose CA is not trusted
            await kayse.metadata.objects()
    port = urlsplit(url).port
    assert proxy.seen == [f"CONNECT localhost:{port}"]
    assert b"Proxy-Authorization: Basic dXNlcjpzM2NyZXQ=" in proxy.heads[0]
    assert all(KEY.encode() not in head for head in proxy.heads), proxy.heads
    assert seen == []
    assert "s3cret" not in str(info.value)


async def test_a_tunnel_the_proxy_refuses_costs_nothing_and_a_create_is_retried(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy answers CONNECT with 403: nothing reached the API, so every unit is refunded and a create retried."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://{proxy.address}")
    proxy.refuse = True
    quota = RecordingQuota()
    async with AsyncKayse(KEY, base_url="https://api.kayse.example", quota=quota, max_retries=1) as kayse:
        kayse._transport._sleep = _no_sleep
        with pytest.raises(errors.ConnectError, match="could not connect") as info:
            await kayse.clients.create(external_source="m", external_source_id="e", first_name="A", last_name="B")
    assert info.value.may_have_been_sent is False
    assert proxy.seen == ["CONNECT api.kayse.example:443"] * 2
    assert [lease.events for lease in quota.leases] == [["release"]] * 2


async def _no_sleep(_: float) -> None:
    return None
