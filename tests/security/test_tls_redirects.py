"""TLS is verified by default, plain http is refused off loopback, and a key never follows a redirect elsewhere."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import aiohttp
import pytest
import trustme
from aiohttp import web

from kayse_async import AsyncKayse, errors

from .conftest import make_client
from .helpers import CALLS_KEY, KEY, Capture, assert_no_leak, exception_texts, serve

CLIENT_BODY = {"id": 1, "external_source": "m", "external_source_id": "e", "first_name": "A", "last_name": "B"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> Iterator[ssl.SSLContext]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


async def _ok(_request: web.Request) -> web.StreamResponse:
    return web.json_response(CLIENT_BODY)


async def test_an_untrusted_certificate_is_refused_by_default(server_tls: ssl.SSLContext, capture: Capture) -> None:
    """A self-signed (unknown CA) server: TLSError, nothing sent, nothing retried, no key in the error."""
    async with serve(_ok, ssl_context=server_tls) as server, make_client(server.url, max_retries=3) as kayse:
        with pytest.raises(errors.TLSError) as caught:
            await kayse.clients.get(1)
    assert caught.value.may_have_been_sent is False
    assert server.seen == [], "an HTTP request went through an unverified TLS connection"
    assert_no_leak(exception_texts(caught.value), capture.texts())


async def test_a_trusted_ca_given_through_an_injected_session_passes(
    ca: trustme.CA, server_tls: ssl.SSLContext
) -> None:
    """The same server passes once the CA is trusted explicitly (session=...), and the key arrives over TLS."""
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    connector = aiohttp.TCPConnector(ssl=trusting)
    async with serve(_ok, ssl_context=server_tls) as server, aiohttp.ClientSession(connector=connector) as session:
        async with make_client(server.url, session=session) as kayse:
            client = await kayse.clients.get(1)
        assert not session.closed, "the SDK closed a session it did not create"
    assert client.id == 1
    assert [seen.headers.get("X-API-KEY") for seen in server.seen] == [KEY]


async def test_a_certificate_for_another_name_is_refused_even_from_a_trusted_ca(ca: trustme.CA) -> None:
    """Hostname checking is on: a valid certificate for another name is a TLSError."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("api.other.example").configure_cert(context)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    connector = aiohttp.TCPConnector(ssl=trusting)
    async with (
        serve(_ok, ssl_context=context) as server,
        aiohttp.ClientSession(connector=connector) as session,
        make_client(server.url, session=session) as kayse,
    ):
        with pytest.raises(errors.TLSError):
            await kayse.clients.get(1)
    assert server.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://api.kayse.com",
        "http://10.0.0.8:8400",
        "http://0.0.0.0:8400",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "http://[::ffff:8.8.8.8]",
        "HTTP://API.KAYSE.COM",
        "ftp://127.0.0.1",
    ],
)
def test_plain_http_off_loopback_is_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """http:// (or another scheme) to a host that is not loopback: ConfigurationError, for each base URL and the env."""
    with pytest.raises(errors.ConfigurationError):
        AsyncKayse(KEY, base_url=url)
    with pytest.raises(errors.ConfigurationError):
        AsyncKayse(KEY, calls_base_url=url)
    monkeypatch.setenv("KAYSE_BASE_URL", url)
    with pytest.raises(errors.ConfigurationError):
        AsyncKayse(KEY)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8400", "http://localhost:1", "http://[::1]:8400", "https://a.example"]
)
async def test_loopback_http_and_https_are_accepted(url: str) -> None:
    """The refusal is targeted: loopback http (tests, the emulator) and https are accepted."""
    async with AsyncKayse(KEY, base_url=url) as kayse:
        assert kayse.base_url == url


def _redirect_to(target: str, status: int = 307) -> web.Response:
    return web.Response(status=status, headers={"Location": target})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("form", ["absolute", "scheme-relative", "userinfo"])
async def test_a_redirect_to_another_host_never_carries_the_key(capture: Capture, status: int, form: str) -> None:
    """Server A redirects to server B (another port, another origin): B receives nothing, the call fails."""
    async with serve(_ok) as second:
        b_port = second.url.rsplit(":", 1)[1]
        target = {
            "absolute": f"{second.url}/v1/clients/1",
            "scheme-relative": f"//127.0.0.1:{b_port}/v1/clients/1",
            "userinfo": f"http://127.0.0.1:1@127.0.0.1:{b_port}/v1/clients/1",
        }[form]

        async def first_handler(_request: web.Request) -> web.StreamResponse:
            return _redirect_to(target, status)

        async with serve(first_handler) as first, make_client(first.url) as kayse:
            with pytest.raises(errors.APIError) as caught:
                await kayse.clients.get(1)
    assert second.seen == [], f"the redirect target received {second.seen}"
    assert first.seen
    assert first.seen[0].headers["X-API-KEY"] == KEY
    assert "another host" in str(caught.value)
    assert_no_leak(exception_texts(caught.value), capture.texts())


async def test_a_redirect_chain_that_ends_elsewhere_stops_before_leaving() -> None:
    """A -> A/moved -> B: the same-origin hop is followed, the one to B is not."""
    async with serve(_ok) as second:

        async def first_handler(request: web.Request) -> web.StreamResponse:
            if request.path == "/moved":
                return _redirect_to(f"{second.url}/v1/clients/1")
            return _redirect_to("/moved")

        async with serve(first_handler) as first, make_client(first.url) as kayse:
            with pytest.raises(errors.APIError):
                await kayse.clients.get(1)
    assert [seen.path for seen in first.seen] == ["/v1/clients/1", "/moved"]
    assert all(seen.headers["X-API-KEY"] == KEY for seen in first.seen)
    assert second.seen == []


async def test_a_redirect_loop_ends_with_an_error() -> None:
    """A server that redirects to itself forever: a clear APIError after a bounded number of hops."""

    async def loop_handler(_request: web.Request) -> web.StreamResponse:
        return _redirect_to("/v1/clients/1")

    async with serve(loop_handler) as server, make_client(server.url) as kayse:
        with pytest.raises(errors.APIError, match="redirect"):
            await kayse.clients.get(1)
    assert 1 < len(server.seen) <= 10


async def test_the_calls_key_never_goes_to_the_main_host_and_back() -> None:
    """Each key goes to its own host only: the main host never sees the calls key, the calls host never the main key."""

    async def call_ok(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"campaign_id": 1, "client_id": None, "case_id": 2})

    async with serve(_ok) as main, serve(call_ok) as calls, make_client(main.url, calls.url) as kayse:
        await kayse.clients.get(1)
        await kayse.calls.schedule(campaign_id=1, case_id=2)
    assert [s.headers.get("X-API-KEY") for s in main.seen] == [KEY]
    assert all("X-Public-Api-Key" not in s.headers for s in main.seen)
    assert [s.headers.get("X-Public-Api-Key") for s in calls.seen] == [CALLS_KEY]
    assert all("X-API-KEY" not in s.headers for s in calls.seen)


async def test_a_redirect_from_the_calls_host_to_the_main_host_carries_no_key() -> None:
    """The calls host redirecting to the main host (another origin): not followed, the main host sees nothing."""
    async with serve(_ok) as main:

        async def calls_handler(_request: web.Request) -> web.StreamResponse:
            return _redirect_to(f"{main.url}/v1/calls")

        async with serve(calls_handler) as calls, make_client(main.url, calls.url) as kayse:
            with pytest.raises(errors.APIError):
                await kayse.calls.schedule(campaign_id=1, case_id=2)
    assert main.seen == []
