"""Helpers shared by the benchmarks: timing, medians, tables, the environment line, server processes.

The benchmarks are scripts (``python benchmarks/NAME.py``); each one puts this
directory first on ``sys.path`` by being run from it, so ``import _common``
works without a package.

Rules every benchmark here follows: the contenders run side by side in one
process, interleaved (A B C A B C ...) so that drift of the machine touches
them alike; figures are medians over rounds; and each is quoted as a ratio
against a baseline measured in the same run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Timing:
    """CPU seconds of this process and wall seconds, of one measured run."""

    cpu: float
    wall: float


@dataclass
class Measure:
    """Filled in when the ``measure()`` block ends."""

    timing: Timing | None = None


@contextlib.contextmanager
def measure() -> Iterator[Measure]:
    """Time a block: ``with measure() as m: ...`` then ``m.timing.cpu`` / ``m.timing.wall``.

    CPU time is ``time.process_time()`` (user + system of this process, every
    thread): a server in another process is not counted.
    """
    result = Measure()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    try:
        yield result
    finally:
        result.timing = Timing(cpu=time.process_time() - cpu0, wall=time.perf_counter() - wall0)


@dataclass
class Samples:
    """Every timing of every contender, in the order they were added."""

    by_name: dict[str, list[Timing]] = field(default_factory=dict)

    def add(self, name: str, timing: Timing) -> None:
        """Record one run of ``name``."""
        self.by_name.setdefault(name, []).append(timing)

    def median_cpu(self, name: str) -> float:
        """Median CPU seconds of ``name``'s runs."""
        return statistics.median(t.cpu for t in self.by_name[name])

    def median_wall(self, name: str) -> float:
        """Median wall seconds of ``name``'s runs."""
        return statistics.median(t.wall for t in self.by_name[name])


def interleave(rounds: int, contenders: Sequence[tuple[str, Callable[[], Timing]]]) -> Samples:
    """Run every contender once per round, in turn, and collect the timings.

    The order turns round from round to round (A B C, C B A, A B C, ...): no
    contender always runs just after the same other one, or always first,
    whose leftovers (a heap grown, caches filled, connections warm on the
    server) would otherwise count for or against it in every round.
    """
    samples = Samples()
    for round_no in range(1, rounds + 1):
        order = contenders if round_no % 2 else list(reversed(contenders))
        for name, run in order:
            timing = run()
            samples.add(name, timing)
            print(
                f"  round {round_no}/{rounds}  {name:<22} cpu {timing.cpu:8.3f} s  wall {timing.wall:8.3f} s",
                file=sys.stderr,
                flush=True,
            )
    return samples


def ratio(value: float, baseline: float) -> str:
    """``value / baseline`` as ``1.23x`` (or ``n/a`` against a zero baseline)."""
    if baseline <= 0:
        return "n/a"
    return f"{value / baseline:.2f}x"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (readable as plain text too), first column left-aligned, the others right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def version_of(distribution: str) -> str:
    """The installed version of a distribution, or ``absent``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def environment(distributions: Sequence[str]) -> str:
    """One line saying when and on what the figures were taken (no host names)."""
    versions = ", ".join(f"{name} {version_of(name)}" for name in distributions)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    return (
        f"{today}; Python {platform.python_version()} ({platform.python_implementation()}); "
        f"{os.cpu_count()} CPU cores; {versions}"
    )


class ServerProcess:
    """A server in a child process that prints ``listening on URL`` once it accepts connections.

    Use as a context manager; ``url`` is set on entry. The child is stopped
    with SIGTERM (then killed if it lingers) on exit.
    """

    def __init__(self, argv: Sequence[str], *, start_timeout: float = 30.0) -> None:
        self.argv = list(argv)
        self.start_timeout = start_timeout
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServerProcess:
        self._proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            if line.startswith("listening on "):
                self.url = line.removeprefix("listening on ").strip()
                return self
        self.__exit__(None, None, None)
        raise RuntimeError(f"server did not start: {' '.join(self.argv)}")

    def __exit__(self, *exc: Any) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# ---------------------------------------------------------------------------
# A minimal fixed server: the floor against which client overhead is measured.

CLIENT_JSON: dict[str, Any] = {
    "id": 123,
    "email": "john.doe@example.com",
    "mobile": "+1234567890",
    "external_source": "manual",
    "external_source_id": "ext_123",
    "first_name": "John",
    "last_name": "Doe",
    "gender": "male",
    "date_of_birth": "1990-01-15",
    "city": "New York",
    "state": "NY",
    "postal_code": "10001",
    "address_line1": "123 Main St",
    "address_line2": "Apt 4B",
    "voice_calls_opted_out": False,
    "date_of_death": None,
    "meta": {"notes": "Client prefers email communication", "source": "website"},
    "case_ids": [12345, 67890],
}
"""The client object of the reference's GET /v1/clients/{id} example (with the fields its PUT example adds)."""

UNLIMITED = 1_000_000_000
"""The X-RateLimit-Limit the fixed server announces when asked to send rate-limit headers."""


async def _serve_fixed_client(host: str, port: int, api_key: str, rate_headers: bool) -> None:
    import asyncio
    import json
    import signal

    from aiohttp import web

    body = json.dumps(CLIENT_JSON).encode()
    served = 0

    async def get_client(request: web.Request) -> web.Response:
        nonlocal served
        if request.headers.get("X-API-KEY") != api_key:
            return web.json_response({"message": "invalid API key", "field": None}, status=401)
        served += 1
        headers = {"Content-Type": "application/json"}
        if rate_headers:
            headers["X-RateLimit-Limit"] = str(UNLIMITED)
            headers["X-RateLimit-Remaining"] = str(UNLIMITED - served)
            headers["X-RateLimit-Reset"] = "3600"
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/v1/clients/{client_id}", get_client)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def fixed_client_server(api_key: str, *, rate_headers: bool = False) -> ServerProcess:
    """A child process serving ``CLIENT_JSON`` for ``GET /v1/clients/{id}`` on a free loopback port.

    It checks ``X-API-KEY`` (401 otherwise), logs nothing, and does no other
    work, so that it is not what a client benchmark measures. With
    ``rate_headers`` it adds ``X-RateLimit-*`` headers announcing a budget
    that never runs out, as the real API would send them.
    """
    argv = [sys.executable, os.path.abspath(__file__), "--serve-fixed-client", "--api-key", api_key]
    if rate_headers:
        argv.append("--rate-headers")
    return ServerProcess(argv)


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(description="Benchmark helpers: run the fixed client server.")
    parser.add_argument("--serve-fixed-client", action="store_true", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--rate-headers", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(_serve_fixed_client(args.host, args.port, args.api_key, args.rate_headers))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
