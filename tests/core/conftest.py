"""Fixtures for the core's unit tests: a recording quota and a client with no real sleeping."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import MagicMock

import attrs
import pytest
from aiohttp import ClientResponse
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core

from kayse_async import AsyncKayse
from kayse_async._ratelimit import RateLimitInfo
from kayse_async.models import QuotaSnapshot

BASE = "https://api.example.test"
CALLS = "https://calls.example.test"
KEY = "sk_live_SECRET_main_key_0123456789"
CALLS_KEY = "sk_live_SECRET_calls_key_9876543210"


@attrs.define
class RecordingLease:
    """A lease that records what the transport did with it."""

    bucket: str
    priority: bool = False
    events: list[str] = attrs.field(factory=list)
    statuses: list[int | None] = attrs.field(factory=list)

    def sent(self) -> None:
        self.events.append("sent")

    def complete(self, info: RateLimitInfo | None, status: int | None) -> None:
        self.events.append("complete")
        self.statuses.append(status)

    def release(self) -> None:
        self.events.append("release")


@attrs.define
class RecordingQuota:
    """A Quota with an unbounded budget that keeps every lease it granted."""

    leases: list[RecordingLease] = attrs.field(factory=list)

    async def acquire(self, bucket: str, *, max_wait: float | None = None, priority: bool = False) -> RecordingLease:
        lease = RecordingLease(bucket, priority=priority)
        self.leases.append(lease)
        return lease

    def snapshot(self, bucket: str) -> QuotaSnapshot:
        return QuotaSnapshot(limit=500, remaining=500 - len(self.leases))

    async def aclose(self) -> None:
        return None


@pytest.fixture
def quota() -> RecordingQuota:
    return RecordingQuota()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
async def kayse(quota: RecordingQuota, sleeps: list[float]) -> AsyncIterator[AsyncKayse]:
    client = AsyncKayse(KEY, base_url=BASE, calls_base_url=CALLS, calls_api_key=CALLS_KEY, quota=quota)

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
