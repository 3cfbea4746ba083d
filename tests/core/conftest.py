"""Fixtures for the core's unit tests: a recording quota and a client with no real sleeping."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import MagicMock

import aiohttp
import pytest
from aiohttp import ClientResponse
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core

from kayse_async import AsyncKayse

from .recording import RecordingQuota

BASE = "https://api.example.test"
CALLS = "https://calls.example.test"
KEY = "sk_live_SECRET_main_key_0123456789"
CALLS_KEY = "sk_live_SECRET_calls_key_9876543210"


@pytest.fixture
def quota() -> RecordingQuota:
    return RecordingQuota()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
async def kayse(quota: RecordingQuota, sleeps: list[float]) -> AsyncIterator[AsyncKayse]:
    # aioresponses replaces aiohttp's send path, trace hooks included; with a session it did not
    # build, the transport counts each request as sent when it starts, which is what these tests need.
    async with aiohttp.ClientSession() as session:
        client = AsyncKayse(
            KEY, base_url=BASE, calls_base_url=CALLS, calls_api_key=CALLS_KEY, quota=quota, session=session
        )

        async def fake_sleep(seconds: float) -> None:
            sleeps.append(seconds)

        client._transport._sleep = fake_sleep
        async with client:
            yield client


class _CompatResponse(ClientResponse):
    """aioresponses 0.7.x builds responses without the ``stream_writer`` that aiohttp 3.14 requires."""

    def __init__(self, *args: Any, stream_writer: Any = None, **kwargs: Any) -> None:
        if stream_writer is None:
            stream_writer = MagicMock(output_size=0)
        super().__init__(*args, stream_writer=stream_writer, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Any:
    if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as m:
        yield m
