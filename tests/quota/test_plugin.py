"""The kayse_emulator fixture, throttled by its options, through the SDK with its defaults."""

from __future__ import annotations

import time

import pytest

from kayse_async import Kayse
from kayse_async.testing import ThreadedEmulator


@pytest.mark.kayse_emulator_options(limit=3, period=1.0, window="sliding")
def test_a_throttled_fixture_is_followed_by_the_default_scheduler(kayse_emulator: ThreadedEmulator) -> None:
    """limit=3 per 1 s: seven blocking calls with no quota= take about two windows and earn no 429."""
    began = time.monotonic()
    with Kayse(kayse_emulator.api_key, base_url=kayse_emulator.url, calls_base_url=kayse_emulator.url) as kayse:
        for _ in range(7):
            kayse.metadata.objects()
        snapshot = kayse.quota
    elapsed = time.monotonic() - began
    stats = kayse_emulator.stats()
    assert (stats["requests"], stats["rate_limited"]) == (7, 0)
    assert snapshot.limit == 3
    assert 2.0 <= elapsed < 10.0


def test_two_fixtures_worth_of_emulators_with_one_key_do_not_share_a_budget() -> None:
    """The same key ("test-key") on two emulators: spending the first's hour leaves the second's whole."""
    with ThreadedEmulator(limit=2, period=3600.0) as first, ThreadedEmulator(limit=2, period=3600.0) as second:
        for emulator in (first, second):
            with Kayse(emulator.api_key, base_url=emulator.url, max_wait=0) as kayse:
                kayse.metadata.objects()
                kayse.metadata.objects()
                assert kayse.quota.remaining == 0
        assert (first.stats()["rate_limited"], second.stats()["rate_limited"]) == (0, 0)
