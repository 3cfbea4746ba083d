"""The transport over real sockets: what counts as sent, and what aiohttp must not resend by itself."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from core.conftest import KEY
from core.recording import RecordingQuota

from kayse_async import AsyncKayse, RetryEvent, errors

NEW_CLIENT = {"external_source": "m", "external_source_id": "e", "first_name": "A", "last_name": "B"}


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one request whole (head and body); its head."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return head


class CuttingServer:
    """Reads each request whole, counts it, then closes the connection without answering."""

    def __init__(self) -> None:
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            self.requests += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture
async def cutting() -> AsyncIterator[CuttingServer]:
    server = CuttingServer()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    async with server.server:
        yield server


@pytest.fixture
def quota() -> RecordingQuota:
    return RecordingQuota()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def no_sleep(_: float) -> None:
    return None


async def test_a_refused_connection_costs_no_budget_and_a_create_is_retried(quota: RecordingQuota) -> None:
    async with AsyncKayse(KEY, base_url=f"http://127.0.0.1:{free_port()}", quota=quota, max_retries=2) as kayse:
        kayse._transport._sleep = no_sleep
        with pytest.raises(errors.ConnectError) as info:
            await kayse.clients.create(**NEW_CLIENT)
    assert not info.value.may_have_been_sent
    assert [lease.events for lease in quota.leases] == [["release"]] * 3  # every unit given back
    assert kayse._transport.requests_sent == 0


async def test_a_create_cut_after_sending_is_uncertain_and_never_resent(
    cutting: CuttingServer, quota: RecordingQuota
) -> None:
    async with AsyncKayse(KEY, base_url=cutting.url, quota=quota) as kayse:
        kayse._transport._sleep = no_sleep
        with pytest.raises(errors.ConnectError) as info:
            await kayse.clients.create(**NEW_CLIENT)
    assert info.value.may_have_been_sent
    assert cutting.requests == 1
    assert [lease.events for lease in quota.leases] == [["sent", "complete"]]


async def test_a_get_cut_after_sending_is_retried_by_the_sdk_only(
    cutting: CuttingServer, quota: RecordingQuota
) -> None:
    async with AsyncKayse(KEY, base_url=cutting.url, quota=quota, max_retries=2) as kayse:
        kayse._transport._sleep = no_sleep
        with pytest.raises(errors.ConnectError):
            await kayse.clients.get(1)
    # Three attempts, each granted by the quota: aiohttp resent nothing on its own.
    assert cutting.requests == 3
    assert len(quota.leases) == 3
    assert all(lease.events == ["sent", "complete"] for lease in quota.leases)


async def test_an_injected_session_is_counted_as_sent_up_front_and_resends_nothing(
    cutting: CuttingServer, quota: RecordingQuota
) -> None:
    """A session handed in has no hook: each attempt is spent up front; and a cut GET goes out once per attempt."""
    async with aiohttp.ClientSession() as session:
        async with AsyncKayse(
            KEY, base_url=f"http://127.0.0.1:{free_port()}", quota=quota, session=session, max_retries=1
        ) as kayse:
            kayse._transport._sleep = no_sleep
            with pytest.raises(errors.ConnectError) as info:
                await kayse.clients.get(1)
        assert info.value.may_have_been_sent is False
        # Without a hook into that session, a unit is spent even for a connection that never opened.
        assert [lease.events for lease in quota.leases] == [["sent", "complete"]] * 2
        quota.leases.clear()
        async with AsyncKayse(KEY, base_url=cutting.url, quota=quota, session=session, max_retries=2) as kayse:
            kayse._transport._sleep = no_sleep
            with pytest.raises(errors.ConnectError):
                await kayse.clients.get(1)
        assert not session.closed
    # aiohttp's own resend of a GET on a failed connection is off for this session's SDK requests too.
    assert cutting.requests == 3
    assert [lease.events for lease in quota.leases] == [["sent", "complete"]] * 3


class IdleClosingServer:
    """Answers the first request of each connection (kept alive), then closes it when the next one arrives.

    That is what a server whose idle time-out fires as a request comes in does: the client
    reused a kept-alive connection, wrote its request, and the connection closes under it.
    """

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = False
        try:
            while True:
                head = await read_request(reader)
                self.seen.append(head.split(b" ", 2)[0].decode())
                if answered:
                    break  # idle too long: closed, unanswered
                body = (
                    b'{"id": 1, "external_source": "m", "external_source_id": "e", "first_name": "A", "last_name": "B"}'
                )
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                    + body
                )
                await writer.drain()
                answered = True
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def idle_closing() -> AsyncIterator[tuple[IdleClosingServer, str]]:
    server = IdleClosingServer()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    async with server.server:
        yield server, f"http://127.0.0.1:{server.server.sockets[0].getsockname()[1]}"


async def test_a_server_closing_idle_connections_gets_no_request_the_quota_did_not_grant(
    idle_closing: tuple[IdleClosingServer, str], quota: RecordingQuota
) -> None:
    """A kept-alive connection closed under the next request: the SDK retries the GET (granted), never the create."""
    server, url = idle_closing
    events: list[RetryEvent] = []
    async with AsyncKayse(KEY, base_url=url, quota=quota, on_retry=events.append) as kayse:
        kayse._transport._sleep = no_sleep
        await kayse.clients.get(1)  # opens the connection the next request reuses
        assert (await kayse.clients.get(1)).id == 1
        assert server.seen == ["GET", "GET", "GET"]
        assert len(quota.leases) == 3
        assert [(e.method, e.attempt, "connection lost" in e.reason) for e in events] == [("GET", 1, True)]
        with pytest.raises(errors.ConnectError) as info:
            await kayse.clients.create(**NEW_CLIENT)
    assert info.value.may_have_been_sent
    # The create went out once on the reused connection, and was not sent again by anyone.
    assert server.seen == ["GET", "GET", "GET", "POST"]
    assert len(quota.leases) == 4
    assert all(lease.events == ["sent", "complete"] for lease in quota.leases)


async def test_an_attempt_cancelled_before_its_headers_were_written_costs_nothing(quota: RecordingQuota) -> None:
    """Cancelled while the TLS handshake hangs (the connection never opened): the unit is refunded, not spent."""
    connected = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()  # never answers the TLS hello
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with (
        server,
        AsyncKayse(KEY, base_url=f"https://localhost:{server.sockets[0].getsockname()[1]}", quota=quota) as kayse,
    ):
        call = asyncio.create_task(kayse.clients.get(1))
        await connected.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert [lease.events for lease in quota.leases] == [["release"]]
    assert kayse._transport.requests_sent == 0
