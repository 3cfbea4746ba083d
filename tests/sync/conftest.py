"""Fixtures of the blocking client's tests: the emulator, a quota no test spends, thread accounting."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from kayse_async import Kayse
from kayse_async.quota import MemoryQuota
from kayse_async.testing import ThreadedEmulator

from .helpers import portal_threads


@pytest.fixture
def quota() -> MemoryQuota:
    """A configured quota, for the tests about what the client does with one (wrapped, counted)."""
    return MemoryQuota(limit=1_000_000_000, period=3600.0)


@pytest.fixture
def emulator(kayse_emulator: ThreadedEmulator) -> ThreadedEmulator:
    """The emulator, in a thread of its own (the plugin's fixture)."""
    return kayse_emulator


@pytest.fixture
def kayse(emulator: ThreadedEmulator) -> Iterator[Kayse]:
    """A blocking client of the emulator, closed after the test."""
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url) as client:
        yield client


@pytest.fixture(autouse=True)
def no_portal_thread_left() -> Iterator[None]:
    """Every test leaves no portal thread behind (after its fixtures closed their clients)."""
    before = set(portal_threads())
    yield
    gc.collect()
    leaked = [thread for thread in portal_threads() if thread not in before and thread.is_alive()]
    assert leaked == [], f"portal threads left running: {leaked}"
    assert threading.active_count() < 200
