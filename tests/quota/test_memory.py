"""MemoryQuota on a fast-forwarded loop: budget use, FIFO, cancellation, 429s, max_wait, threads."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading

import pytest
from quota_sim import FixedServer, Load, SlidingServer, TokenServer, Wire

from kayse_async import errors
from kayse_async._wire.ratelimit import RateLimitInfo
from kayse_async.models import QuotaSnapshot
from kayse_async.quota import MemoryQuota, Quota, QuotaWait, default_quota

pytestmark = pytest.mark.looptime

BUCKET = "k:test"


def quota(limit: int = 20, period: float = 10.0, **kwargs: object) -> MemoryQuota:
    loop = asyncio.get_running_loop()
    return MemoryQuota(limit, period, clock=loop.time, **kwargs)  # type: ignore[arg-type]


def info(remaining: int, reset: float, *, limit: int = 20, retry_after: float | None = None) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, reset_after=reset, retry_after=retry_after)


async def spend(q: MemoryQuota, remaining: int, reset: float, *, limit: int = 20, status: int = 200) -> None:
    lease = await q.acquire(BUCKET)
    lease.sent()
    lease.complete(info(remaining, reset, limit=limit, retry_after=reset if status == 429 else None), status)


def test_memory_quota_satisfies_the_protocol() -> None:
    """MemoryQuota is a Quota (runtime-checkable protocol)."""
    assert isinstance(MemoryQuota(), Quota)


async def test_a_second_consumer_on_the_key_costs_few_429s_and_surfaces_none() -> None:
    """Someone else spends 5 of 20 at each window start: the scheduler notices and stays under the limit."""
    loop = asyncio.get_running_loop()
    server = FixedServer(20, 10.0, origin=loop.time())

    async def other() -> None:
        while True:
            for _ in range(5):
                server.handle(loop.time())
            await asyncio.sleep(10.0)

    other_task = asyncio.create_task(other())
    load = Load(quota(), server, workers=8, latency=0.05)
    await load.run(6 * 10.0 - 0.5)
    other_task.cancel()
    await asyncio.gather(other_task, return_exceptions=True)
    assert load.surfaced_429 == 0
    assert load.rate_limited <= 6
    assert len(load.served) >= 0.95 * 6 * 15


async def test_the_first_request_is_a_probe_and_the_rest_follow_its_answer() -> None:
    """Unknown is not zero, but unknown: one request goes first, the rest wait for its headers."""
    q = quota()
    first = await q.acquire(BUCKET)
    second = asyncio.create_task(q.acquire(BUCKET))
    await asyncio.sleep(1.0)
    assert not second.done()
    first.sent()
    first.complete(info(19, 10), 200)
    lease = await asyncio.wait_for(second, 0.01)
    lease.release()
    assert q.snapshot(BUCKET).remaining == 19


async def test_without_rate_limit_headers_never_more_than_limit_per_rolling_period() -> None:
    """A server that sends no headers: the sliding log alone paces, limit per period."""
    loop = asyncio.get_running_loop()
    q = quota(limit=3, period=10.0, safety_margin=0.0)
    sent_at: list[float] = []
    for _ in range(7):
        lease = await q.acquire(BUCKET)
        lease.sent()
        sent_at.append(loop.time())
        lease.complete(RateLimitInfo(), 200)
    start = sent_at[0]
    assert [round(t - start, 6) for t in sent_at] == [0, 0, 0, 10, 10, 10, 20]


async def test_a_sliding_server_gives_back_room_as_entries_leave() -> None:
    """Against a sliding window, waiting for Reset brings back only part of the budget: no 429."""
    loop = asyncio.get_running_loop()
    server = SlidingServer(10, 10.0)
    q = quota(limit=10, period=10.0)
    # A ramp: the window fills unevenly, so room comes back piecemeal.
    for gap in [0.0, 1.0, 1.0, 2.0, 0.5, 0.5, 0.0, 0.0, 3.0, 0.1] * 3:
        await asyncio.sleep(gap)
        lease = await q.acquire(BUCKET)
        lease.sent()
        decision = server.handle(loop.time())
        lease.complete(Wire().info(decision, loop.time()), 200 if decision.ok else 429)
    assert server.rejected == 0


async def test_token_bucket_served_beyond_limit_per_period_when_tokens_trickle_back() -> None:
    """Against a token bucket, the header may allow more than the log: used, still no 429."""
    loop = asyncio.get_running_loop()
    server = TokenServer(20, 10.0)
    load = Load(quota(), server, workers=1, latency=0.05)
    await load.run(59.5)
    assert server.rejected == 0
    assert len(load.served) > 120
    assert loop.time() > 59


async def test_waiters_are_served_first_come_first_served() -> None:
    """Queued callers get their units in arrival order."""
    q = quota()
    await spend(q, 0, 10)
    order: list[int] = []

    async def caller(n: int) -> None:
        lease = await q.acquire(BUCKET)
        order.append(n)
        lease.sent()
        # Spent again: each Reset lets exactly one probe through, so grant order shows.
        lease.complete(info(0, 1), 200)

    tasks = []
    for n in range(6):
        tasks.append(asyncio.create_task(caller(n)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert order == list(range(6))


async def test_a_retry_with_priority_goes_ahead_of_queued_callers() -> None:
    """priority=True puts a retried request at the head of the line, behind earlier retries only."""
    q = quota()
    await spend(q, 0, 10)
    order: list[str] = []

    async def caller(name: str, priority: bool) -> None:
        lease = await q.acquire(BUCKET, priority=priority)
        order.append(name)
        lease.sent()
        lease.complete(info(0, 1), 200)

    tasks = [asyncio.create_task(caller("a", False)), asyncio.create_task(caller("b", False))]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(caller("retry1", True)))
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(caller("retry2", True)))
    await asyncio.gather(*tasks)
    assert order == ["retry1", "retry2", "a", "b"]


async def test_a_429_blocks_everyone_until_retry_after() -> None:
    """A 429 is authoritative: no grant before Retry-After (+ margin), the wait reported as rate_limited."""
    loop = asyncio.get_running_loop()
    waits: list[QuotaWait] = []
    q = quota(on_wait=waits.append, safety_margin=0.1)
    await spend(q, 12, 10)
    lease = await q.acquire(BUCKET)
    lease.sent()
    lease.complete(info(0, 30, retry_after=7), 429)
    start = loop.time()
    retry = await q.acquire(BUCKET, priority=True)
    assert loop.time() - start == pytest.approx(7.1, abs=0.01)
    assert waits[-1].reason == "rate_limited"
    assert waits[-1].seconds == pytest.approx(7.1, abs=0.01)
    # The retry is a probe: nobody else goes until its answer.
    other = asyncio.create_task(q.acquire(BUCKET))
    await asyncio.sleep(0.5)
    assert not other.done()
    retry.sent()
    retry.complete(info(11, 2), 200)
    (await asyncio.wait_for(other, 0.01)).release()


async def test_max_wait_raises_at_once_when_the_budget_comes_back_too_late() -> None:
    """The unit cannot be had within max_wait: QuotaExhaustedError at once, resets_at when it can."""
    loop = asyncio.get_running_loop()
    q = MemoryQuota(20, 10.0, clock=loop.time, wall_clock=lambda: 1_000_000.0, safety_margin=0.0)
    await spend(q, 0, 10)
    start = loop.time()
    with pytest.raises(errors.QuotaExhaustedError) as caught:
        await q.acquire(BUCKET, max_wait=5.0)
    assert loop.time() == start
    assert caught.value.resets_at == dt.datetime.fromtimestamp(1_000_010.0, tz=dt.UTC)
    lease = await q.acquire(BUCKET, max_wait=11.0)
    assert loop.time() - start == pytest.approx(10.0, abs=0.01)
    lease.release()


async def test_max_wait_counts_the_callers_ahead() -> None:
    """Room for one at Reset and one caller already waiting: a second caller with max_wait is refused at once."""
    q = quota(safety_margin=0.0)
    await spend(q, 0, 10)
    first = asyncio.create_task(q.acquire(BUCKET))
    await asyncio.sleep(0.01)
    # At Reset only one probe goes, and the first caller takes it.
    with pytest.raises(errors.QuotaExhaustedError):
        await q.acquire(BUCKET, max_wait=0.0)
    lease = await first
    lease.release()


async def test_max_wait_raises_after_the_deadline_when_the_estimate_was_hopeful() -> None:
    """Waiting on an answer that never comes: refused once max_wait has passed, no unit leaked."""
    loop = asyncio.get_running_loop()
    q = quota()
    probe = await q.acquire(BUCKET)
    probe.sent()
    start = loop.time()
    with pytest.raises(errors.QuotaExhaustedError):
        await q.acquire(BUCKET, max_wait=3.0)
    assert loop.time() - start == pytest.approx(3.0, abs=0.01)
    probe.complete(info(19, 10), 200)
    assert q.snapshot(BUCKET).remaining == 19


async def test_cancelling_a_waiter_leaks_nothing_and_keeps_the_line() -> None:
    """A caller cancelled while waiting leaves no reservation and no hole in the line."""
    q = quota()
    await spend(q, 1, 10)
    held = await q.acquire(BUCKET)
    waiting = [asyncio.create_task(q.acquire(BUCKET)) for _ in range(3)]
    await asyncio.sleep(0.01)
    waiting[0].cancel()
    held.release()
    await asyncio.sleep(0.01)
    assert waiting[0].cancelled()
    assert waiting[1].done()
    assert not waiting[2].done()
    waiting[1].result().release()
    lease = await waiting[2]
    lease.release()
    state = q._buckets[BUCKET].state
    assert (state.reserved, state.in_flight, state.hdr) == (0, 0, 1)


async def test_a_grant_racing_a_cancellation_is_given_back() -> None:
    """Granted and cancelled before the task resumed: the unit returns to the budget."""
    q = quota()
    await spend(q, 1, 10)
    held = await q.acquire(BUCKET)
    waiter = asyncio.create_task(q.acquire(BUCKET))
    await asyncio.sleep(0.01)
    held.release()  # grants the waiter, whose task has not run yet
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert waiter.cancelled()
    state = q._buckets[BUCKET].state
    assert (state.reserved, state.in_flight, state.hdr) == (0, 0, 1)


async def test_release_before_sending_refunds_but_after_sending_never() -> None:
    """release() before sent() gives the unit back; after sent() the unit stays spent."""
    q = quota()
    await spend(q, 10, 10)
    lease = await q.acquire(BUCKET)
    assert q.snapshot(BUCKET).remaining == 9
    lease.release()
    assert q.snapshot(BUCKET).remaining == 10
    lease = await q.acquire(BUCKET)
    lease.sent()
    lease.release()
    lease.release()
    assert q.snapshot(BUCKET).remaining == 9


async def test_limit_is_learned_from_the_header_and_snapshot_reports_it() -> None:
    """Before an answer: the configured limit, remaining None. After: the header's limit, its Remaining, its Reset."""
    q = MemoryQuota(500, 3600.0, clock=asyncio.get_running_loop().time, wall_clock=lambda: 2_000_000.0)
    assert q.snapshot(BUCKET) == QuotaSnapshot(limit=500, remaining=None, resets_at=None, window=None)
    await spend(q, 3, 42, limit=5)
    snap = q.snapshot(BUCKET)
    assert (snap.limit, snap.remaining) == (5, 3)
    # The margin is 1% of the window learned from the Reset (42 s), not of the configured hour.
    assert snap.resets_at == dt.datetime.fromtimestamp(2_000_000.0 + 42 + 0.42, tz=dt.UTC)
    # Not confirmed yet (no whole budget seen coming back at a Reset): no window is claimed.
    assert snap.window is None


async def test_snapshot_shows_the_window_once_the_server_states_it() -> None:
    """RateLimit-Policy's w: the snapshot's window, for the ETA of callers."""
    q = quota()
    lease = await q.acquire(BUCKET)
    lease.sent()
    lease.complete(RateLimitInfo(limit=20, remaining=19, reset_after=10.0, window=10.0), 200)
    assert q.snapshot(BUCKET).window == 10.0


async def test_a_wait_is_announced_when_it_starts(caplog: pytest.LogCaptureFixture) -> None:
    """INFO on kayse_async.quota and on_wait as the wait starts, with its expected length and reason."""
    loop = asyncio.get_running_loop()
    waits: list[tuple[float, QuotaWait]] = []
    q = quota(on_wait=lambda wait: waits.append((loop.time(), wait)))
    await spend(q, 0, 4)
    start = loop.time()
    with caplog.at_level(logging.INFO, logger="kayse_async.quota"):
        task = asyncio.create_task(q.acquire(BUCKET))
        await asyncio.sleep(0.5)
        assert not task.done()
        # Announced at once, half a second into a four-second wait.
        assert waits == [(start, QuotaWait(bucket=BUCKET, seconds=pytest.approx(4.04), reason="exhausted"))]
        messages = [r.getMessage() for r in caplog.records if r.name == "kayse_async.quota"]
        assert messages == ["quota wait of about 4.040 s for bucket k:test (exhausted)"]
        (await task).release()
    assert loop.time() - start == pytest.approx(4.04, abs=0.01)


async def test_a_failing_on_wait_callback_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    """An on_wait that raises does not break the wait."""

    def broken(wait: QuotaWait) -> None:
        raise RuntimeError("callback broke")

    q = quota(on_wait=broken)
    await spend(q, 0, 4)
    with caplog.at_level(logging.INFO, logger="kayse_async.quota"):
        (await q.acquire(BUCKET)).release()
    assert any("on_wait callback failed" in r.getMessage() for r in caplog.records)


async def test_a_server_without_rate_limit_headers_is_warned_of_once(caplog: pytest.LogCaptureFixture) -> None:
    """One WARNING naming what is assumed (the configured limit and period); the configured rule applies."""
    q = quota(limit=3, period=10.0)
    with caplog.at_level(logging.WARNING, logger="kayse_async.quota"):
        for _ in range(3):
            lease = await q.acquire(BUCKET, max_wait=0)
            lease.sent()
            lease.complete(RateLimitInfo(), 200)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "bucket k:test: the server answered without rate-limit headers; assuming the configured "
        "3 requests per 10 s (MemoryQuota/RedisQuota limit and period)"
    ]
    assert q.snapshot(BUCKET) == QuotaSnapshot(limit=3, remaining=0, resets_at=None, window=10.0)
    with pytest.raises(errors.QuotaExhaustedError):
        await q.acquire(BUCKET, max_wait=5.0)


async def test_buckets_are_independent() -> None:
    """Spending one key's budget leaves another's alone."""
    q = quota()
    await spend(q, 0, 10)
    other = await q.acquire("k:other")
    other.release()
    assert q.snapshot(BUCKET).remaining == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"limit": 0}, "limit"), ({"period": -1.0}, "period"), ({"safety_margin": -1.0}, "safety_margin")],
)
def test_bad_options_are_refused_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    """Bad configuration: ConfigurationError naming the option."""
    with pytest.raises(errors.ConfigurationError, match=field):
        MemoryQuota(**kwargs)  # type: ignore[arg-type]


async def test_bad_max_wait_is_refused() -> None:
    """A negative max_wait is a ConfigurationError naming it."""
    with pytest.raises(errors.ConfigurationError, match="max_wait"):
        await quota().acquire(BUCKET, max_wait=-1.0)


def test_default_quota_is_one_instance_for_every_thread() -> None:
    """default_quota() returns the same MemoryQuota from any thread."""
    seen: list[MemoryQuota] = []
    threads = [threading.Thread(target=lambda: seen.append(default_quota())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(q) for q in seen}) == 1
    assert seen[0] is default_quota()
    assert (seen[0].limit, seen[0].period) == (500, 3600.0)


async def test_a_newcomer_does_not_jump_the_line() -> None:
    """Room coming back goes to the caller already in line, not to one arriving at that moment."""
    q = quota()
    await spend(q, 0, 10)
    waiter = asyncio.create_task(q.acquire(BUCKET))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    # One unit of room appears without a dispatch (as if a response had just been read).
    q._buckets[BUCKET].state.hdr = 1
    newcomer = asyncio.create_task(q.acquire(BUCKET))
    await asyncio.sleep(0.01)
    assert waiter.done()
    assert not newcomer.done()
    waiter.result().release()
    (await newcomer).release()


async def test_a_bucket_whose_clock_went_back_starts_afresh() -> None:
    """A loop that fast-forwards from its own zero (another test's) does not inherit what an earlier one learned."""
    clock = [1000.0]
    q = MemoryQuota(20, 10.0, clock=lambda: clock[0])
    await spend(q, 0, 600)
    assert q.snapshot(BUCKET).remaining == 0
    clock[0] = 5.0
    (await q.acquire(BUCKET, max_wait=0)).release()
    assert q.snapshot(BUCKET).remaining is None
