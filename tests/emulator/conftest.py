"""Fixtures of the emulator's tests: a running emulator and a plain aiohttp client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from kayse_async.testing import Emulator

from .helpers import CALLS_KEY, KEY, Api


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A running emulator with rate limiting off and a separate calls key."""
    async with Emulator(KEY, calls_api_key=CALLS_KEY, limit=0) as emu:
        yield emu


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(session: aiohttp.ClientSession, emulator: Emulator) -> Api:
    """Requests to the ``emulator`` fixture."""
    return Api(session, emulator)
