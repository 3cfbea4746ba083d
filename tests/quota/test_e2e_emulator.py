"""The SDK with its defaults (no ``quota=``) against the emulator, through real sockets, on a fast-forwarded loop.

Every window mode at 2 s and 10 s and 1, 16 or 64 callers: no 429, the
budget used; and the cases that stalled or misled the first scheduler. The
emulator's windows follow the loop's clock, and so does the default
scheduler's, so a run of minutes takes a moment.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web

from kayse_async import AsyncKayse, errors
from kayse_async.quota import MemoryQuota, default_quota
from kayse_async.testing import Emulator

pytestmark = pytest.mark.looptime

LIMIT = 20
WINDOWS = 30


async def saturate(kayse: AsyncKayse, workers: int, duration: float) -> tuple[int, list[BaseException]]:
    """``workers`` callers call the API back to back for ``duration`` seconds; returns successes and errors."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration
    served = 0
    failures: list[BaseException] = []

    async def worker() -> None:
        nonlocal served
        while loop.time() < deadline:
            try:
                await kayse.metadata.objects()
            except errors.KayseError as exc:
                failures.append(exc)
            else:
                served += 1

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(duration)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return served, failures


@pytest.mark.parametrize("workers", [1, 16, 64])
@pytest.mark.parametrize("period", [2.0, 10.0])
@pytest.mark.parametrize("window", ["fixed", "sliding", "token"])
async def test_the_defaults_follow_every_window_mode(window: Any, period: float, workers: int) -> None:
    """Defaults (a 500 an hour prior) against 20 per 2 s or 10 s: no 429, >= 97% of the budget, the limit learned."""
    duration = WINDOWS * period
    async with (
        Emulator(api_key="k", limit=LIMIT, period=period, window=window) as emu,
        AsyncKayse("k", base_url=emu.url, calls_base_url=emu.url) as kayse,
    ):
        served, failures = await saturate(kayse, workers, duration)
        snapshot = kayse.quota
        stats = emu.stats()
    assert failures == []
    assert stats["rate_limited"] == 0
    # A token bucket starts full: its budget is the full bucket and its refill.
    budget = LIMIT * WINDOWS + (LIMIT if window == "token" else 0)
    assert served >= 0.97 * budget, (served, budget)
    assert snapshot.limit == LIMIT


@pytest.mark.parametrize("reset", ["delta", "epoch"])
async def test_twenty_five_gets_at_ten_per_two_seconds_finish_in_three_windows(reset: Any) -> None:
    """25 concurrent clients.get at 10 per 2 s: done in about three windows (not 90 s), no 429."""
    loop = asyncio.get_running_loop()
    async with (
        Emulator(api_key="k", limit=10, period=2.0, reset=reset) as emu,
        AsyncKayse("k", base_url=emu.url, calls_base_url=emu.url) as kayse,
    ):
        rows = [
            {"external_source": "crm", "external_source_id": f"e{i}", "first_name": "A", "last_name": "B"}
            for i in range(25)
        ]
        created = await kayse.clients.bulk_upsert(rows)
        start = loop.time()
        got = await asyncio.gather(*(kayse.clients.get(client.id) for client in created.succeeded))
        elapsed = loop.time() - start
        stats = emu.stats()
    assert len(got) == 25
    assert stats["rate_limited"] == 0
    # 1 + 25 requests: the window of the bulk call and two more. An epoch Reset is whole seconds
    # against a whole-second Date, so it may say up to two seconds late.
    assert elapsed <= 2 * 2.0 + (2 * 2.0 if reset == "epoch" else 0.5)


async def test_a_429_then_a_lost_answer_does_not_stall_the_key() -> None:
    """A 429 with Retry-After: 0, then a request that times out: the next one goes seconds later, not an hour."""
    loop = asyncio.get_running_loop()
    calls: list[float] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(loop.time())
        if len(calls) == 1:
            return web.json_response({"message": "slow down"}, status=429, headers={"Retry-After": "0"})
        if len(calls) == 2:
            await asyncio.sleep(3600)  # the answer never comes: the client times out
        headers = {"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "400", "X-RateLimit-Reset": "1800"}
        return web.json_response([], headers=headers)

    app = web.Application()
    app.router.add_get("/v1/metadata/objects", handler)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with AsyncKayse("k", base_url=url, calls_base_url=url, timeout=2.0, max_retries=0) as kayse:
            with pytest.raises(errors.RateLimitError):
                await kayse.metadata.objects()
            with pytest.raises(errors.RequestTimeoutError):
                await kayse.metadata.objects()
            start = loop.time()
            await kayse.metadata.objects()
            waited = loop.time() - start
    finally:
        await runner.cleanup()
    # The back-off after the lost answer: the time it was out (2 s), not a configured hour.
    assert len(calls) == 3
    assert waited <= 2.5


async def test_two_emulators_with_the_same_key_have_budgets_of_their_own() -> None:
    """One budget per server origin and key: spending one emulator's does not touch the other's."""
    loop = asyncio.get_running_loop()
    async with (
        Emulator(api_key="k", limit=3, period=3600.0) as first,
        Emulator(api_key="k", limit=3, period=3600.0) as second,
    ):
        async with AsyncKayse("k", base_url=first.url) as kayse:
            for _ in range(3):
                await kayse.metadata.objects()
            assert kayse.quota.remaining == 0
        start = loop.time()
        async with AsyncKayse("k", base_url=second.url) as kayse:
            assert kayse.quota.remaining is None  # nothing known of this server yet
            await kayse.metadata.objects()
            assert kayse.quota.remaining == 2
        assert loop.time() - start < 1.0
        assert (first.stats()["rate_limited"], second.stats()["rate_limited"]) == (0, 0)


async def test_quota_bucket_names_one_budget_across_servers_on_purpose() -> None:
    """quota_bucket: two origins that are one service (a proxy and the API) share one budget."""
    async with (
        Emulator(api_key="k", limit=3, period=3600.0) as first,
        Emulator(api_key="k", limit=3, period=3600.0) as second,
    ):
        async with AsyncKayse("k", base_url=first.url, quota_bucket="kayse-prod") as a:
            for _ in range(3):
                await a.metadata.objects()
        async with AsyncKayse("k", base_url=second.url, quota_bucket="kayse-prod", max_wait=0) as b:
            assert b.quota.remaining == 0
            with pytest.raises(errors.QuotaExhaustedError):
                await b.metadata.objects()
        assert second.stats()["requests"] == 0


async def test_a_server_without_rate_limit_headers_is_warned_of_and_the_prior_rules(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """--limit 0: one WARNING saying what is assumed; the default quota then counts 500 per hour."""
    async with Emulator(api_key="k", limit=0) as emu, AsyncKayse("k", base_url=emu.url) as kayse:
        with caplog.at_level(logging.WARNING, logger="kayse_async"):
            for _ in range(3):
                await kayse.metadata.objects()
        snapshot = kayse.quota
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "without rate-limit headers" in warnings[0]
    assert "500 requests per 3600 s" in warnings[0]
    assert (snapshot.remaining, snapshot.window) == (497, 3600.0)
    assert default_quota().limit == 500


async def test_a_configured_quota_is_the_rule_for_a_server_without_headers() -> None:
    """MemoryQuota(limit=3, period=10) against --limit 0: the fourth request waits the period."""
    loop = asyncio.get_running_loop()
    quota = MemoryQuota(limit=3, period=10.0, safety_margin=0.0)
    async with Emulator(api_key="k", limit=0) as emu, AsyncKayse("k", base_url=emu.url, quota=quota) as kayse:
        start = loop.time()
        for _ in range(4):
            await kayse.metadata.objects()
        assert loop.time() - start == pytest.approx(10.0, abs=0.2)
