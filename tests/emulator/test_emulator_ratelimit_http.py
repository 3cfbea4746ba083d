"""Rate limiting as clients see it: headers, 429, Reset forms, budgets per key, window modes."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from kayse_async.testing import Emulator

from .helpers import Api, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def limited(clock: FakeClock, session: aiohttp.ClientSession) -> AsyncIterator[Api]:
    """An emulator allowing 3 requests per 60 s per key (fixed window), on a fake clock."""
    async with Emulator("main", calls_api_key="calls", limit=3, period=60.0, clock=clock) as emu:
        yield Api(session, emu)


def budget(headers: dict[str, str] | object) -> tuple[int, int, int]:
    assert isinstance(headers, dict)
    return int(headers["X-RateLimit-Limit"]), int(headers["X-RateLimit-Remaining"]), int(headers["X-RateLimit-Reset"])


async def test_headers_on_every_authenticated_response_then_429(limited: Api, clock: FakeClock) -> None:
    """Success, 400 and 404 all carry the headers and spend budget; past the limit a 429 with Retry-After."""
    ok = await limited.call("GET", "/v1/metadata/objects")
    assert budget(ok.headers) == (3, 2, 60)
    clock.advance(10)
    bad = await limited.call("POST", "/v1/clients", {})
    assert (bad.status, budget(bad.headers)) == (400, (3, 1, 50))
    missing = await limited.call("GET", "/v1/clients/5")
    assert (missing.status, budget(missing.headers)) == (404, (3, 0, 50))
    refused = await limited.call("GET", "/v1/metadata/objects")
    assert refused.status == 429
    assert refused.body == {"message": "rate limit exceeded", "field": None}
    assert budget(refused.headers) == (3, 0, 50)
    assert refused.headers["Retry-After"] == "50"
    stats = limited.emulator.stats()
    assert (stats["requests"], stats["rate_limited"]) == (4, 1)


async def test_429s_spend_nothing_and_the_window_refills(limited: Api, clock: FakeClock) -> None:
    """Many 429s later, the next window still has the whole limit."""
    for _ in range(3):
        await limited.call("GET", "/v1/metadata/objects")
    for _ in range(10):
        assert (await limited.call("GET", "/v1/metadata/objects")).status == 429
    clock.advance(60)
    statuses = [(await limited.call("GET", "/v1/metadata/objects")).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_unauthenticated_and_introspection_requests_are_not_counted(limited: Api) -> None:
    """401s spend nothing (their headers show an untouched budget); /_emulator routes are never limited."""
    reply = await limited.call("GET", "/v1/metadata/objects", key="nope")
    assert reply.status == 401
    assert budget(reply.headers) == (3, 3, 60)
    for _ in range(5):
        assert (await limited.call("GET", "/_emulator/stats", key=None)).status == 200
    assert budget((await limited.call("GET", "/v1/metadata/objects")).headers)[1] == 2


@pytest.mark.parametrize(
    ("method", "path", "key", "status"),
    [
        ("GET", "/v1/metadata/objects", None, 401),
        ("GET", "/v1/metadata/objects", "wrong", 401),
        ("GET", "/v1/no/such/route", "main", 404),
        ("GET", "/elsewhere", "main", 404),
        ("DELETE", "/v1/campaigns", "main", 405),
    ],
)
async def test_answers_that_spend_nothing_still_carry_the_headers(
    limited: Api, clock: FakeClock, method: str, path: str, key: str | None, status: int
) -> None:
    """401, 404 and 405 answers carry X-RateLimit-* too: the budget of the key sent, unspent."""
    await limited.call("GET", "/v1/metadata/objects")
    clock.advance(15)
    reply = await limited.call(method, path, key=key)
    assert reply.status == status
    assert budget(reply.headers) == ((3, 2, 45) if key == "main" else (3, 3, 60))
    assert budget((await limited.call("GET", "/v1/metadata/objects")).headers) == (3, 1, 45)


async def test_main_and_calls_keys_have_separate_budgets(limited: Api) -> None:
    """Spending the main key's budget leaves the calls key's whole."""
    for _ in range(3):
        await limited.call("GET", "/v1/metadata/objects")
    assert (await limited.call("GET", "/v1/metadata/objects")).status == 429
    reply = await limited.call("POST", "/v1/calls", {})
    assert (reply.status, budget(reply.headers)[1]) == (400, 2)


async def test_one_key_for_both_shares_one_budget(session: aiohttp.ClientSession) -> None:
    """When the calls key is the main key, /v1/calls spends the same budget."""
    async with Emulator("same", limit=2, period=60.0, clock=FakeClock()) as emu:
        api = Api(session, emu)
        await api.call("GET", "/v1/metadata/objects")
        assert budget((await api.call("POST", "/v1/calls", {})).headers)[1] == 0
        assert (await api.call("GET", "/v1/metadata/objects")).status == 429


async def test_epoch_reset_uses_the_skewed_server_clock(session: aiohttp.ClientSession) -> None:
    """Reset as epoch = server wall clock (real + skew) + time left, and Date shows the same clock."""
    skew = -7200.0
    async with Emulator("k", limit=5, period=30.0, reset="epoch", clock_skew=skew) as emu:
        before = time.time() + skew
        reply = await Api(session, emu).call("GET", "/v1/metadata/objects")
        after = time.time() + skew
    reset = budget(reply.headers)[2]
    assert reset >= 1_000_000_000
    assert before + 30 <= reset <= after + 31
    date = email.utils.parsedate_to_datetime(reply.headers["Date"]).timestamp()
    assert before - 1 <= date <= after + 1


async def test_sliding_window_through_the_server(session: aiohttp.ClientSession) -> None:
    """Sliding mode: Reset tells when the oldest request leaves; then exactly one more is allowed."""
    clock = FakeClock()
    async with Emulator("k", limit=2, period=10.0, window="sliding", clock=clock) as emu:
        api = Api(session, emu)
        await api.call("GET", "/v1/metadata/objects")
        clock.advance(4)
        second = await api.call("GET", "/v1/metadata/objects")
        assert budget(second.headers) == (2, 0, 6)
        refused = await api.call("GET", "/v1/metadata/objects")
        assert (refused.status, refused.headers["Retry-After"]) == (429, "6")
        clock.advance(6)
        assert (await api.call("GET", "/v1/metadata/objects")).status == 200
        assert (await api.call("GET", "/v1/metadata/objects")).status == 429


async def test_token_bucket_through_the_server(session: aiohttp.ClientSession) -> None:
    """Token mode: a burst of `limit`, then one request per period/limit."""
    clock = FakeClock()
    async with Emulator("k", limit=4, period=8.0, window="token", clock=clock) as emu:
        api = Api(session, emu)
        statuses = [(await api.call("GET", "/v1/metadata/objects")).status for _ in range(5)]
        assert statuses == [200, 200, 200, 200, 429]
        clock.advance(2)
        reply = await api.call("GET", "/v1/metadata/objects")
        assert (reply.status, budget(reply.headers)) == (200, (4, 0, 2))


async def test_limit_zero_is_off_and_limits_change_at_runtime(session: aiohttp.ClientSession) -> None:
    """limit 0: no 429 and no headers; set_rate_limit turns it on with fresh budgets."""
    async with Emulator("k", limit=0, clock=FakeClock()) as emu:
        api = Api(session, emu)
        for _ in range(20):
            reply = await api.call("GET", "/v1/metadata/objects")
            assert reply.status == 200
            assert "X-RateLimit-Limit" not in reply.headers
        emu.set_rate_limit(1, 60.0, "sliding", "delta")
        assert budget((await api.call("GET", "/v1/metadata/objects")).headers) == (1, 0, 60)
        assert (await api.call("GET", "/v1/metadata/objects")).status == 429
        emu.reset_stats(limits=True)
        assert (await api.call("GET", "/v1/metadata/objects")).status == 200


async def test_real_time_window_expiry(session: aiohttp.ClientSession) -> None:
    """With the real clock, a 1 s fixed window refills after its Reset."""
    async with Emulator("k", limit=1, period=1.0) as emu:
        api = Api(session, emu)
        assert (await api.call("GET", "/v1/metadata/objects")).status == 200
        refused = await api.call("GET", "/v1/metadata/objects")
        assert (refused.status, refused.headers["Retry-After"]) == (429, "1")
        deadline = time.monotonic() + 3
        while (await api.call("GET", "/v1/metadata/objects")).status == 429:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)


@pytest.mark.looptime
async def test_windows_follow_a_fast_forwarded_loop(session: aiohttp.ClientSession) -> None:
    """By default the limiter reads the event loop's clock, so looptime's fast-forwarding refills windows."""
    async with Emulator("k", limit=1, period=3600.0) as emu:
        api = Api(session, emu)
        assert (await api.call("GET", "/v1/metadata/objects")).status == 200
        refused = await api.call("GET", "/v1/metadata/objects")
        assert (refused.status, refused.headers["Retry-After"]) == (429, "3600")
        await asyncio.sleep(3600)
        assert (await api.call("GET", "/v1/metadata/objects")).status == 200
