"""The transport over real sockets: what counts as sent, and what aiohttp must not resend by itself."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from core.conftest import KEY
from core.recording import RecordingQuota

from kayse_async import AsyncKayse, errors

NEW_CLIENT = {"external_source": "m", "external_source_id": "e", "first_name": "A", "last_name": "B"}


class CuttingServer:
    """Reads each request whole, counts it, then closes the connection without answering."""

    def __init__(self) -> None:
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
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


async def test_an_injected_session_is_counted_as_sent_up_front(cutting: CuttingServer, quota: RecordingQuota) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with AsyncKayse(KEY, base_url=f"http://127.0.0.1:{free_port()}", quota=quota, session=session) as kayse:
            kayse._transport._sleep = no_sleep
            with pytest.raises(errors.ConnectError):
                await kayse.clients.get(1)
        assert getattr(session, "_retry_connection", False) is False
    # Without a hook into that session, a unit is spent even for a connection that never opened.
    assert all(lease.events == ["sent", "complete"] for lease in quota.leases)
