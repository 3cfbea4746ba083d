"""Kayse where processes begin and end: fork, Ctrl-C, and a process that never closes its clients."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal

from kayse_async._sync.portal import Portal
from kayse_async.testing import ThreadedEmulator

from .helpers import SCRIPTS, recording_server, run_script

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork and SIGINT are POSIX")


def test_never_closed_clients_exit_cleanly(emulator: ThreadedEmulator) -> None:
    """Clients never closed (one with a half-read iterator): exit 0, nothing on stderr (no unclosed session/loop)."""
    done = run_script("never_closed.py", emulator.url)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["list 0", "exiting"]


def test_forked_child_gets_its_own_client_and_leaves_the_parents_sockets_alone() -> None:
    """After fork the child uses a new connection; the parent's pooled connection still serves it afterwards."""
    with recording_server() as server:
        done = run_script("fork_child.py", server.url, timeout=90)
        assert (done.returncode, done.stderr) == (0, "")
        assert sorted(done.stdout.splitlines()) == ["child ok", "parent ok"]
        peers = server.peers()
    assert len(peers) == 4
    parent_first, child_first, child_second, parent_last = peers
    # The parent's keep-alive connection survived the child's whole life, exit included.
    assert parent_last == parent_first
    assert child_first == child_second != parent_first


def test_a_forked_child_keeps_the_parents_portal_to_its_end() -> None:
    """What the parent's portal holds is never finalized in a forked child, not even when the child exits."""
    done = run_script("fork_keeps.py")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "finalized in the parent\n"


def test_ctrl_c_cancels_the_request_and_raises_keyboard_interrupt() -> None:
    """SIGINT in a call never answered: the request is cancelled, its lease settled, then KeyboardInterrupt."""
    with recording_server() as server:
        server.hang = True
        child = subprocess.Popen(
            [sys.executable, "-W", "error", str(SCRIPTS / "ctrl_c.py"), server.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            assert child.stdout.readline() == "waiting\n"
            assert server.request_seen.wait(20), "the request never reached the server"
            child.send_signal(signal.SIGINT)
            # The client hung up on the request (its timeout is an hour: only the cancellation can do that).
            assert server.connection_closed.wait(20), "the request underneath was not cancelled"
            assert child.stdout.readline() == "interrupted, open leases: 0\n"
            server.hang = False
            child.stdin.write("go\n")
            child.stdin.flush()
            out, err = child.communicate(timeout=20)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert (child.returncode, err) == (0, "")
        assert out == "objects: []\n"
        assert len(server.requests) == 2


def test_ctrl_c_landing_while_the_call_is_handed_over_still_cancels_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C raised in anyio's start_task_soon, once the loop already runs the call, cancels the call too.

    anyio's hand-over blocks until the loop spawned the task, which may send before the calling
    thread wakes up (a loaded machine): a signal landing then must not leave the request running.
    """
    started, cancelled = threading.Event(), threading.Event()

    @contextlib.asynccontextmanager
    async def open_client() -> AsyncIterator[object]:
        yield object()

    async def nothing(_client: object) -> None:
        pass

    async def hang(_client: object) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    portal = Portal(open_client)
    portal.call(None, nothing)  # the loop runs: the next hand-over is the one interrupted
    hand_over = BlockingPortal.start_task_soon

    def interrupted(self: BlockingPortal, *args: Any, **kwargs: Any) -> Any:
        hand_over(self, *args, **kwargs)
        assert started.wait(10)
        raise KeyboardInterrupt  # as the signal handler would, when the calling thread wakes

    monkeypatch.setattr(BlockingPortal, "start_task_soon", interrupted)
    with pytest.raises(KeyboardInterrupt):
        portal.call(None, hang)
    assert cancelled.is_set(), "the call was left running"
    monkeypatch.undo()
    portal.call(None, nothing)  # the client still works
    portal.close()
