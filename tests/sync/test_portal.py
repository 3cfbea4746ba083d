"""Where calls run: on the portal's loop, in its thread, concurrently whatever thread they come from."""

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
        self.loop: asyncio.AbstractEventLoop | None = None

    async def acquire(self, bucket: str, **options: Any) -> Any:
        self.calls += 1
        self.loop = asyncio.get_running_loop()
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


def test_every_call_runs_on_the_portal_thread(emulator: ThreadedEmulator, quota: MemoryQuota) -> None:
    """Calls from the main thread and from another thread all run on the client's loop, in the portal thread."""
    watching = _Watching(quota)
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, quota=watching) as kayse:
        kayse.metadata.objects()
        worker = threading.Thread(target=kayse.metadata.objects, name="worker")
        worker.start()
        worker.join(20)
        kayse.metadata.objects()
    assert watching.acquired_in == ["kayse-portal"] * 3
    assert watching.completed_in == ["kayse-portal"] * 3


async def test_a_thread_running_its_own_loop_has_its_calls_run_by_the_portal_thread(
    emulator: ThreadedEmulator, quota: MemoryQuota
) -> None:
    """Inside a running event loop the call runs on the portal's loop, not on the caller's."""
    watching = _Watching(quota)
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, quota=watching) as kayse:
        kayse.metadata.objects()
    assert watching.acquired_in == ["kayse-portal"]
    assert watching.loop is not asyncio.get_running_loop()


def test_a_call_held_back_does_not_hold_back_another_threads_call(
    emulator: ThreadedEmulator, quota: MemoryQuota
) -> None:
    """A's call waits on the loop; B's call, made after it, completes meanwhile; then A's completes too."""
    watching = _Watching(quota)
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, quota=watching) as kayse:
        gate = asyncio.Event()
        watching.gates = {1: gate}
        outcome: dict[str, Any] = {}

        def call(name: str) -> None:
            outcome[name] = kayse.metadata.objects()

        a = threading.Thread(target=call, args=("a",), name="thread-a")
        a.start()
        _wait_until(lambda: watching.calls == 1)
        b = threading.Thread(target=call, args=("b",), name="thread-b")
        b.start()
        b.join(20)
        assert "b" in outcome
        assert "a" not in outcome  # A's call still waits for its gate
        assert a.is_alive()
        assert watching.loop is not None
        watching.loop.call_soon_threadsafe(gate.set)
        a.join(20)
        assert outcome["a"] == outcome["b"]


def test_a_connection_the_server_closed_while_the_client_was_idle_is_not_used() -> None:
    """The portal's loop sees a server hang up on an idle connection: the next call opens a new one at the first try."""
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
