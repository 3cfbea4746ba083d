"""Who runs the client's loop: the calling thread when the loop is idle, the portal thread for hand-offs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from kayse_async import Kayse, models
from kayse_async.quota import MemoryQuota
from kayse_async.testing import ThreadedEmulator

from .helpers import recording_server


class _Watching:
    """A quota that records the thread of each acquire and of each completion, and counts what was sent."""

    def __init__(self, inner: MemoryQuota) -> None:
        self.inner = inner
        self.acquired_in: list[str] = []
        self.completed_in: list[str] = []
        self.sent = 0
        self.gates: dict[int, asyncio.Event] = {}
        self.calls = 0

    async def acquire(self, bucket: str, **options: Any) -> Any:
        self.calls += 1
        gate = self.gates.get(self.calls)
        if gate is not None:
            await gate.wait()
        self.acquired_in.append(threading.current_thread().name)
        return _WatchedLease(self, await self.inner.acquire(bucket, **options))

    def snapshot(self, bucket: str) -> models.QuotaSnapshot:
        return self.inner.snapshot(bucket)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _WatchedLease:
    def __init__(self, owner: _Watching, inner: Any) -> None:
        self.owner = owner
        self.inner = inner

    def sent(self) -> None:
        self.owner.sent += 1
        self.inner.sent()

    def complete(self, info: Any, status: int | None) -> None:
        self.owner.completed_in.append(threading.current_thread().name)
        self.inner.complete(info, status)

    def release(self) -> None:
        self.inner.release()


def _client(url: str, quota: Any) -> Kayse:
    return Kayse("test-key", base_url=url, calls_base_url=url, quota=quota)


def test_one_thread_at_a_time_runs_its_calls_itself(emulator: ThreadedEmulator, quota: MemoryQuota) -> None:
    """With the loop idle, a call runs in the calling thread: no hand-off to the portal thread and back."""
    watching = _Watching(quota)
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, quota=watching) as kayse:
        kayse.metadata.objects()
        worker = threading.Thread(target=kayse.metadata.objects, name="worker")
        worker.start()
        worker.join(20)
        kayse.metadata.objects()
    me = threading.current_thread().name
    assert watching.acquired_in == [me, "worker", me]
    assert watching.completed_in == [me, "worker", me]


async def test_a_thread_running_its_own_loop_hands_its_calls_to_the_portal_thread(
    emulator: ThreadedEmulator, quota: MemoryQuota
) -> None:
    """Inside a running event loop the calling thread cannot run a second one: the portal thread does."""
    watching = _Watching(quota)
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, quota=watching) as kayse:
        kayse.metadata.objects()
    assert watching.acquired_in == ["kayse-portal"]


def test_the_portal_thread_takes_over_calls_left_when_the_running_thread_is_done(
    emulator: ThreadedEmulator, quota: MemoryQuota
) -> None:
    """A runs the loop; B hands its call to it; A's call ends first: B's call is finished by the portal thread."""
    watching = _Watching(quota)
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, quota=watching) as kayse:
        kayse.quota  # noqa: B018 - starts the portal without a request
        gate_a, gate_b = asyncio.Event(), asyncio.Event()
        watching.gates = {1: gate_a, 2: gate_b}
        outcome: dict[str, Any] = {}

        def call(name: str) -> None:
            outcome[name] = kayse.metadata.objects()

        a = threading.Thread(target=call, args=("a",), name="thread-a")
        a.start()
        _wait_until(lambda: watching.calls == 1)
        b = threading.Thread(target=call, args=("b",), name="thread-b")
        b.start()
        _wait_until(lambda: watching.calls == 2)
        loop = kayse._portal._core.running().loop
        assert loop is not None
        loop.call_soon_threadsafe(gate_a.set)
        a.join(20)
        assert not a.is_alive()
        assert "a" in outcome
        assert "b" not in outcome  # B's call still waits for its gate
        loop.call_soon_threadsafe(gate_b.set)
        b.join(20)
        assert outcome["b"] == outcome["a"]
    # A ran the loop for both acquires; B's call was finished after A let go, by the portal thread.
    assert watching.acquired_in == ["thread-a", "kayse-portal"]
    assert watching.completed_in == ["thread-a", "kayse-portal"]


def test_a_connection_the_server_closed_while_the_client_was_idle_is_not_used() -> None:
    """The calling thread polls the loop's I/O before its call: a server's hang-up is seen, no attempt is wasted."""
    with recording_server() as server:
        server.hang_up = threading.Event()
        watching = _Watching(MemoryQuota(limit=1_000_000_000, period=3600.0))
        with _client(server.url, watching) as kayse:
            kayse.metadata.objects()
            # Once the call is over, the server hangs up on the idle connection; nothing ran the loop since.
            server.hang_up.set()
            assert server.connection_closed.wait(10)
            server.hang_up = None
            kayse.metadata.objects()
        # Two requests, two attempts sent: the second went out on a new connection at the first try.
        assert len(server.requests) == 2
        assert watching.sent == 2
        assert len(set(server.peers())) == 2


def _wait_until(condition: Any, timeout: float = 20.0) -> None:
    done = threading.Event()
    deadline = timeout
    while not condition():
        if done.wait(0.005):
            break
        deadline -= 0.005
        assert deadline > 0, "condition not reached"
