"""A MemoryQuota survives os.fork(): the child gets a usable lock and budget of its own."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time

import pytest

from kayse_async.quota import MemoryQuota

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait_or_kill(pid: int, *, seconds: float) -> int:
    """The child's exit status; a child still running after ``seconds`` (deadlocked) is killed and fails."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)  # polling a real child process, not faking time
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child deadlocked on the quota's lock")


def test_a_child_forked_while_the_lock_is_held_can_still_acquire() -> None:
    quota = MemoryQuota(limit=10, period=60.0)
    held = threading.Event()
    release = threading.Event()

    def hold_the_lock() -> None:
        with quota._lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        try:

            async def one() -> None:
                lease = await asyncio.wait_for(quota.acquire("k:child"), 5)
                lease.release()

            asyncio.run(one())
            os.write(write, b"ok")
        except BaseException as exc:
            os.write(write, repr(exc).encode()[:200])
        finally:
            os._exit(0)
    os.close(write)
    release.set()
    holder.join()
    status = _wait_or_kill(pid, seconds=10.0)
    answer = os.read(read, 300)
    os.close(read)
    assert status == 0
    assert answer == b"ok", answer
    assert sys.modules["kayse_async.quota._memory"]._instances  # the parent still tracks its quotas
