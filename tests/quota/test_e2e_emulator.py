"""The SDK and its quota against the emulator, through real sockets: no 429 surfaced, the budget spent.

Every scenario runs for a little over two windows of a scaled budget (20 per
2 s); the scenarios of one test run side by side, each with its own emulator
and quota, to keep the real time short.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from kayse_async import AsyncKayse, errors
from kayse_async.quota import MemoryQuota
from kayse_async.testing import Emulator

LIMIT = 20
PERIOD = 2.0
DURATION = 4.3
WORKERS = 8


async def _saturate(kayse: AsyncKayse, duration: float) -> tuple[int, list[BaseException]]:
    """Workers call the API back to back until ``duration`` has passed; returns successes and errors."""
    served = 0
    failures: list[BaseException] = []
    deadline = time.monotonic() + duration

    async def worker() -> None:
        nonlocal served
        while time.monotonic() < deadline:
            try:
                await kayse.metadata.objects()
            except errors.KayseError as exc:
                failures.append(exc)
            else:
                served += 1

    tasks = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    await asyncio.sleep(duration)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return served, failures


async def _scenario(*, other_per_window: int = 0, **emulator: Any) -> dict[str, Any]:
    async with Emulator(api_key="k", limit=LIMIT, period=PERIOD, **emulator) as emu:
        # The limit is left at its default (500): the server's X-RateLimit-Limit must replace it.
        quota = MemoryQuota(period=PERIOD)
        async with AsyncKayse("k", base_url=emu.url, calls_base_url=emu.url, quota=quota) as kayse:
            other_served = other_429 = 0

            async def other() -> None:
                # Another consumer of the same key, with raw aiohttp, spending at each of its windows.
                nonlocal other_served, other_429
                async with aiohttp.ClientSession() as session:
                    while True:
                        for _ in range(other_per_window):
                            async with session.get(
                                f"{emu.url}/v1/metadata/objects", headers={"X-API-KEY": "k"}
                            ) as resp:
                                await resp.read()
                                other_served += resp.status == 200
                                other_429 += resp.status == 429
                        await asyncio.sleep(PERIOD)

            other_task = asyncio.create_task(other()) if other_per_window else None
            served, failures = await _saturate(kayse, DURATION)
            if other_task is not None:
                other_task.cancel()
                await asyncio.gather(other_task, return_exceptions=True)
            snapshot = kayse.quota
        stats = emu.stats()
    return {
        "served": served,
        "failures": failures,
        "sdk_429": stats["rate_limited"] - other_429,
        "other": other_served,
        "options": emulator,
        "snapshot": snapshot,
    }


def _windows() -> int:
    return int(DURATION // PERIOD)


async def test_each_window_mode_and_reset_form_without_a_429() -> None:
    """Fixed, sliding and token windows, delta and epoch Reset: no 429 at all, >= 95% of the budget."""
    results = await asyncio.gather(
        *(
            _scenario(window=window, reset=reset)
            for window in ("fixed", "sliding", "token")
            for reset in ("delta", "epoch")
        )
    )
    assert len(results) == 6
    for result in results:
        # kayse.quota, without a request: the limit the server announced, what is left of it.
        assert result["snapshot"].limit == LIMIT
        assert 0 <= result["snapshot"].remaining <= LIMIT
        assert result["failures"] == [], result["options"]
        assert result["sdk_429"] == 0, result
        assert result["served"] >= 0.95 * LIMIT * _windows(), result


async def test_skewed_date_latency_and_a_second_consumer() -> None:
    """A server clock an hour off (epoch Reset), 40 ms latency, and another consumer of the key."""
    skewed, slow, shared = await asyncio.gather(
        _scenario(window="fixed", reset="epoch", clock_skew=3600.0),
        _scenario(window="sliding", latency_ms=40.0),
        _scenario(window="fixed", other_per_window=5),
    )
    for result in (skewed, slow):
        assert result["failures"] == [], result["options"]
        assert result["sdk_429"] == 0, result
        assert result["served"] >= 0.9 * LIMIT * _windows(), result
    # Sharing the key: the SDK surfaces no 429 and takes few (never more than the units the
    # other consumer took behind its back); together the two use the budget.
    assert shared["failures"] == []
    assert shared["sdk_429"] <= min(4, shared["other"]), shared
    assert shared["served"] + shared["other"] >= 0.9 * LIMIT * _windows(), shared
