"""Helpers of the blocking client's tests: portal threads, a recording HTTP server, subprocess runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PORTAL_THREAD_NAME = "kayse-portal"


def portal_threads() -> list[threading.Thread]:
    """The live portal threads of this process."""
    return [thread for thread in threading.enumerate() if thread.name == PORTAL_THREAD_NAME]


class RecordingServer:
    """A bare HTTP/1.1 keep-alive server on loopback that records which connection served what.

    Every request gets ``200 []``, except while ``hang`` is set: then the
    request is recorded and never answered. While ``hang_up`` holds an event,
    the server answers, then waits for the event and hangs up without having
    said so (as a server whose keep-alive time-out runs out while the client
    is idle). ``requests`` holds
    ``(peer_port, method, path)``; ``closed`` the peer ports whose connection
    the client closed. Events let tests wait without sleeping.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[int, str, str]] = []
        self.closed: list[int] = []
        self.hang = False
        self.hang_up: threading.Event | None = None
        self.request_seen = threading.Event()
        self.connection_closed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = int(writer.get_extra_info("peername")[1])
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                self.requests.append((port, method, path))
                self.request_seen.set()
                if self.hang:
                    await reader.read()  # returns at EOF: the client dropped the request
                    break
                body = json.dumps([]).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + b"X-RateLimit-Limit: 1000000\r\nX-RateLimit-Remaining: 999999\r\nX-RateLimit-Reset: 3600\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                if self.hang_up is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self.hang_up.wait)
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.append(port)
            writer.close()
            # Told only once the socket is closed: a test that waits for it may count on the hang-up.
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.connection_closed.set()

    def start(self) -> None:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            async def serve() -> None:
                self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
                port = self._server.sockets[0].getsockname()[1]
                self.url = f"http://127.0.0.1:{port}"
                ready.set()

            async def shutdown() -> None:
                assert self._server is not None
                self._server.close()
                others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
                for task in others:
                    task.cancel()
                await asyncio.gather(*others, return_exceptions=True)
                await self._server.wait_closed()

            loop.run_until_complete(serve())
            loop.run_forever()
            loop.run_until_complete(shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="recording-server", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def peers(self) -> list[int]:
        """The peer port of every request, in order."""
        return [port for port, _, _ in self.requests]


@contextmanager
def recording_server() -> Iterator[RecordingServer]:
    """A running :class:`RecordingServer`."""
    server = RecordingServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


SCRIPTS = Path(__file__).with_name("scripts")


def run_script(name: str, *args: str, timeout: float = 30.0, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/<name>`` in a fresh interpreter with warnings as errors; capture its output."""
    env = {**os.environ, "PYTHONDEVMODE": "", "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [sys.executable, "-W", "error", str(SCRIPTS / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **kwargs,
    )
