"""Resources: file descriptors and threads stay flat over 10,000 requests; a cancelled call leaves nothing running."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import warnings
from collections.abc import Iterator

import pytest

from kayse_async import AsyncKayse, errors
from kayse_async.quota import MemoryQuota
from kayse_async.testing import Emulator, ThreadedEmulator

KEY = "k-resources"
REQUESTS = 10_000
CONCURRENCY = 50
FD_SLACK = 8
"""Descriptors a run may gain after warm-up (an epoll, a wake-up pipe): not one per request."""


def open_fds() -> int:
    """The number of open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def threaded_emulator() -> Iterator[ThreadedEmulator]:
    """An emulator serving from its own thread and loop, so this loop holds only the client's tasks."""
    with ThreadedEmulator(KEY, limit=10**9, latency_ms=0) as emu:
        yield emu


async def test_fds_and_threads_stay_flat_over_10000_requests() -> None:
    """10,000 requests, 50 at a time, against the emulator: fds and threads reach a plateau and stay on it."""
    async with Emulator(KEY, limit=10**9) as emu, AsyncKayse(KEY, base_url=emu.url) as kayse:
        created = await kayse.clients.create(
            external_source="m", external_source_id="e", first_name="Ann", last_name="Lee"
        )
        done = 0
        samples: list[tuple[int, int, int]] = []

        async def worker(share: int) -> None:
            nonlocal done
            for n in range(share):
                if n % 10 == 9:
                    with pytest.raises(errors.NotFoundError):
                        await kayse.clients.get(10**9 + n)
                else:
                    await kayse.clients.get(created.id or 0)
                done += 1
                if done % 1000 == 0:
                    samples.append((done, open_fds(), threading.active_count()))

        await asyncio.gather(*(worker(REQUESTS // CONCURRENCY) for _ in range(CONCURRENCY)))
        assert emu.stats()["requests"] == REQUESTS + 1
    assert len(samples) == REQUESTS // 1000
    _, base_fds, base_threads = samples[0]
    print(f"\n(done, fds, threads) every 1,000 requests: {samples}")
    assert max(fds for _, fds, _ in samples) <= base_fds + FD_SLACK, samples
    assert max(threads for _, _, threads in samples) <= base_threads, samples


def test_fds_and_threads_stay_flat_through_the_sync_client(threaded_emulator: ThreadedEmulator) -> None:
    """The blocking client: 2,000 calls; fds and threads flat; after close, the client's thread is gone."""
    from kayse_async import Kayse

    threads_before = threading.active_count()
    samples: list[tuple[int, int]] = []
    with Kayse(KEY, base_url=threaded_emulator.url) as kayse:
        created = kayse.clients.create(external_source="m", external_source_id="s", first_name="A", last_name="B")
        for n in range(2000):
            kayse.clients.get(created.id or 0)
            if n % 500 == 499:
                samples.append((open_fds(), threading.active_count()))
    assert max(fds for fds, _ in samples) <= samples[0][0] + FD_SLACK, samples
    assert {threads for _, threads in samples} == {samples[0][1]}, samples
    for _ in range(50):
        if threading.active_count() <= threads_before:
            break
        threading.Event().wait(0.02)
    assert threading.active_count() <= threads_before, "the sync client left a thread running"


def _others() -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_cancelled_call_in_flight_leaves_no_task(threaded_emulator: ThreadedEmulator) -> None:
    """A GET cancelled while the server is still answering: CancelledError, and no task of ours survives."""
    threaded_emulator.configure(latency_ms=2000)
    async with AsyncKayse(KEY, base_url=threaded_emulator.url) as kayse:
        call = asyncio.create_task(kayse.clients.get(1))
        for _ in range(200):
            await asyncio.sleep(0.005)
            if threaded_emulator.stats()["requests"] >= 1:
                break
        assert threaded_emulator.stats()["requests"] == 1, "the request never reached the server"
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await _settle()
        assert _others() == set()
    await _settle()
    assert _others() == set()


async def test_a_cancelled_bulk_upsert_leaves_no_task(threaded_emulator: ThreadedEmulator) -> None:
    """A bulk upsert with 4 chunks in flight, cancelled: every chunk's task is gone, and the client still works."""
    threaded_emulator.configure(latency_ms=1000)
    items = [
        {"external_source": "m", "external_source_id": f"b{i}", "first_name": "A", "last_name": "B"} for i in range(40)
    ]
    async with AsyncKayse(KEY, base_url=threaded_emulator.url) as kayse:
        call = asyncio.create_task(kayse.clients.bulk_upsert(items, chunk_size=5, concurrency=4))
        for _ in range(200):
            await asyncio.sleep(0.005)
            if threaded_emulator.stats()["requests"] >= 4:
                break
        assert len(_others()) > 1, "the bulk call runs no tasks of its own: nothing to prove"
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await _settle()
        assert _others() == set()
        threaded_emulator.configure(latency_ms=0)
        assert (await kayse.metadata.objects()) is not None


async def test_a_call_cancelled_while_waiting_for_budget_leaves_no_task_and_no_lease() -> None:
    """A call queued for budget, cancelled: no task left, and its reservation is returned to the quota."""
    clock = [0.0]
    quota = MemoryQuota(limit=1, period=3600.0, clock=lambda: clock[0])
    async with Emulator(KEY, limit=0) as emu, AsyncKayse(KEY, base_url=emu.url, quota=quota) as kayse:
        await kayse.metadata.objects()
        assert kayse.quota.remaining == 0
        call = asyncio.create_task(kayse.metadata.objects())
        await _settle()
        assert not call.done(), "the second call should wait for the next window"
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await _settle()
        assert _others() - _server_tasks() == set()
        assert emu.stats()["requests"] == 1, "a cancelled waiter sent its request anyway"


def _server_tasks() -> set[asyncio.Task[object]]:
    """Tasks of the in-process emulator's server (its connection handlers), not of the client."""
    return {t for t in asyncio.all_tasks() if "web_protocol" in repr(t.get_coro()) or "RequestHandler" in repr(t)}


async def test_a_call_cancelled_during_retry_backoff_leaves_no_task(threaded_emulator: ThreadedEmulator) -> None:
    """A GET whose first answer was a 503 (Retry-After: 1), cancelled while it waits to retry: nothing left."""
    threaded_emulator.set_faults(1.0, ["503"], seed=3)
    async with AsyncKayse(KEY, base_url=threaded_emulator.url) as kayse:
        call = asyncio.create_task(kayse.clients.get(1))
        for _ in range(200):
            await asyncio.sleep(0.005)
            if threaded_emulator.stats()["requests"] >= 1:
                break
        await asyncio.sleep(0.05)
        assert not call.done()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await _settle()
        assert _others() == set()
    assert threaded_emulator.stats()["requests"] == 1


async def test_error_paths_leave_no_resource_warning(threaded_emulator: ThreadedEmulator) -> None:
    """Dropped connections, lost answers, timeouts and closes: after gc, not one ResourceWarning."""
    threaded_emulator.set_faults(1.0, ["drop", "lost"], seed=5)
    # Every answer is lost: a prior of 0.1 s keeps the scheduler's back-off between probes that short.
    quota = MemoryQuota(period=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            async with AsyncKayse(
                KEY, base_url=threaded_emulator.url, quota=quota, timeout=0.5, max_retries=1
            ) as kayse:
                for _ in range(5):
                    with pytest.raises(errors.TransportError):
                        await kayse.clients.create(
                            external_source="m", external_source_id="x", first_name="A", last_name="B"
                        )
        threaded_emulator.set_faults(0.0)
        threaded_emulator.configure(latency_ms=2000)
        async with AsyncKayse(KEY, base_url=threaded_emulator.url, quota=quota, timeout=0.2) as kayse:
            with pytest.raises(errors.RequestTimeoutError):
                await kayse.metadata.objects()
        await _settle()
        gc.collect()
    resource = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert resource == [], [str(w.message) for w in resource]
