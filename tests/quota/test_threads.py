"""One MemoryQuota shared by event loops in several threads: one budget, woken across loops."""

from __future__ import annotations

import asyncio
import threading
import time

from kayse_async import errors
from kayse_async._wire.ratelimit import RateLimitInfo
from kayse_async.quota import MemoryLease, MemoryQuota

BUCKET = "k:threads"


def _run_in_thread(coro_factory: object, results: list[object]) -> threading.Thread:
    def target() -> None:
        results.append(asyncio.run(coro_factory()))  # type: ignore[operator]

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_two_loops_in_two_threads_share_one_budget() -> None:
    """Two threads, each with its own loop and 40 callers, share 50 units: exactly 50 granted in all."""
    q = MemoryQuota(50, 3600.0)
    assert q.snapshot(BUCKET).remaining is None

    async def seed() -> None:
        lease = await q.acquire(BUCKET)
        lease.sent()
        lease.complete(RateLimitInfo(limit=50, remaining=49, reset_after=3600), 200)

    seeded: list[object] = []
    _run_in_thread(seed, seeded).join(timeout=30)
    start = threading.Barrier(2)

    async def spend() -> tuple[int, int]:
        start.wait()

        async def one() -> bool:
            try:
                lease = await q.acquire(BUCKET, max_wait=0.0)
            except errors.QuotaExhaustedError:
                return False
            lease.sent()
            lease.complete(None, None)
            return True

        got = await asyncio.gather(*(one() for _ in range(40)))
        return sum(got), len(got) - sum(got)

    results: list[object] = []
    threads = [_run_in_thread(spend, results) for _ in range(2)]
    for t in threads:
        t.join(timeout=30)
    granted = sum(r[0] for r in results)  # type: ignore[index]
    refused = sum(r[1] for r in results)  # type: ignore[index]
    assert (granted, refused) == (49, 31)
    assert q.snapshot(BUCKET).remaining == 0


def test_a_release_on_one_loop_wakes_a_waiter_on_another() -> None:
    """A unit released in thread A is granted to a caller waiting on thread B's loop, without polling."""
    q = MemoryQuota(1, 3600.0, safety_margin=0.0)
    holder: list[MemoryLease] = []
    acquired = threading.Event()
    waiting = threading.Event()

    async def hold() -> None:
        lease = await q.acquire(BUCKET)
        lease.sent()
        lease.complete(RateLimitInfo(limit=2, remaining=1, reset_after=3600), 200)
        holder.append(await q.acquire(BUCKET))
        acquired.set()
        waiting.wait(timeout=10)
        await asyncio.sleep(0.05)
        holder[0].release()

    async def wait() -> float:
        acquired.wait(timeout=10)
        task = asyncio.create_task(q.acquire(BUCKET))
        await asyncio.sleep(0)
        waiting.set()
        began = time.monotonic()
        lease = await asyncio.wait_for(task, timeout=10)
        lease.release()
        return time.monotonic() - began

    results: list[object] = []
    threads = [_run_in_thread(hold, results), _run_in_thread(wait, results)]
    for t in threads:
        t.join(timeout=30)
    waited = [r for r in results if isinstance(r, float)]
    # The waiter's own timer would fire only after an hour: it was woken by the other thread's release.
    assert len(waited) == 1
    assert waited[0] < 5.0
