"""End-to-end fixtures: a real emulator on a loopback socket and an AsyncKayse pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kayse_async import AsyncKayse
from kayse_async.testing import Emulator

KEY = "e2e-main-key-0123456789abcdef"
CALLS_KEY = "e2e-calls-key-fedcba9876543210"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(api_key=KEY, calls_api_key=CALLS_KEY, limit=0) as emu:
        yield emu


@pytest.fixture
async def kayse(emulator: Emulator) -> AsyncIterator[AsyncKayse]:
    async with AsyncKayse(KEY, base_url=emulator.url, calls_base_url=emulator.url, calls_api_key=CALLS_KEY) as client:
        yield client
