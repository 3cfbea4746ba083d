"""What the blocking facade costs: Kayse against the AsyncKayse it wraps, side by side in one run.

    python benchmarks/sync_overhead.py [--calls 2000] [--rounds 5]

Measured in ``--rounds`` interleaved rounds; each figure is the median of the
rounds' per-call medians, with their range:

1. the facade against a bare anyio blocking portal (``start_blocking_portal``)
   in the same run: a no-op coroutine through ``Kayse``'s portal against
   ``portal.call`` of the same no-op (the facade's own cost on top of anyio's),
   and ``kayse.quota`` (a round trip to the loop, no I/O) against
   ``async_client.quota`` read directly;
2. a GET against a minimal local aiohttp server, and a GET against the
   emulator (both in their own processes): ``kayse.<call>()`` against
   ``await async_client.<call>()`` in a loop of the main thread;
3. throughput against the emulator: one thread making every call, against 32
   threads sharing one ``Kayse`` (and 32 tasks sharing one ``AsyncKayse``),
   once with the server answering at once (on a small machine its CPU is then
   the limit) and once with 10 ms of latency per request, as a remote API has.

The targets: a call through the facade costs at most 1.2x a bare anyio
``portal.call``; 32 threads at least as fast as one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from anyio.from_thread import start_blocking_portal

from kayse_async import AsyncKayse, Kayse
from kayse_async.quota import MemoryQuota

KEY = "bench-key"
THREADS = 32
LATENCY_MS = 10
"""Server latency of the second throughput run, in milliseconds."""

_MINIMAL_SERVER = """
import asyncio
from aiohttp import web

async def objects(request):
    return web.json_response([])

app = web.Application()
app.router.add_get("/v1/metadata/objects", objects)

async def main():
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@contextmanager
def server(command: list[str]) -> Iterator[str]:
    """Start a server process that prints ``listening on URL``; yield the URL."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"server did not start: {line!r}")
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(10)


def quota() -> MemoryQuota:
    return MemoryQuota(limit=1_000_000_000, period=3600.0)


def per_call_sync(function: Callable[[], object], calls: int) -> list[float]:
    """The duration of each of ``calls`` calls of ``function`` in a row, in seconds."""
    clock = time.perf_counter
    durations = []
    for _ in range(calls):
        started = clock()
        function()
        durations.append(clock() - started)
    return durations


def per_call_async(runner: asyncio.Runner, function: Callable[[], Awaitable[object]], calls: int) -> list[float]:
    async def loop() -> list[float]:
        clock = time.perf_counter
        durations = []
        for _ in range(calls):
            started = clock()
            await function()
            durations.append(clock() - started)
        return durations

    return runner.run(loop())


def median_of(rounds: int, *measures: Callable[[], list[float] | float]) -> list[list[float]]:
    """Run the measures interleaved, ``rounds`` times; each measure's median of every round.

    Per-call medians, not means: on a busy machine a few calls wait for a CPU
    for milliseconds, and a mean would report the machine's load, not the code.
    """
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(rounds):
        for index, measure in enumerate(measures):
            value = measure()
            samples[index].append(statistics.median(value) if isinstance(value, list) else value)
    return samples


def spread(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    """``median [min-max]`` of per-round values."""
    low, mid, high = min(values) * scale, statistics.median(values) * scale, max(values) * scale
    return f"{mid:.2f}{unit} [{low:.2f}-{high:.2f}]" if scale == 1.0 else f"{mid:.1f}{unit} [{low:.1f}-{high:.1f}]"


def row(label: str, facade: list[float], direct: list[float]) -> str:
    """Per-call medians (us) of the two sides and their ratio, each round's, as median [range]."""
    ratios = [f / d for f, d in zip(facade, direct, strict=True)]
    return f"{label:<46} {spread(facade, 1e6):>20} {spread(direct, 1e6):>20} {spread(ratios, unit='x'):>20}"


async def _noop() -> None:
    return None


async def _noop_on(_client: object) -> None:
    return None


def throughput_threads(kayse: Kayse, call: Callable[[Kayse], object], threads: int, calls: int) -> float:
    """Calls per second with ``threads`` threads sharing ``kayse``, ``calls`` in all."""
    share = calls // threads
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(share):
            call(kayse)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return share * threads / (time.perf_counter() - started)


def throughput_tasks(
    runner: asyncio.Runner, client: AsyncKayse, call: Callable[[AsyncKayse], Awaitable[object]], tasks: int, calls: int
) -> float:
    share = calls // tasks

    async def work() -> None:
        for _ in range(share):
            await call(client)

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(work() for _ in range(tasks)))
        return share * tasks / (time.perf_counter() - started)

    return runner.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are shown (default 5)")
    args = parser.parse_args()
    calls, rounds = args.calls, args.rounds
    io_calls = max(calls // 4, THREADS)

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load}")
    print(f"{calls} calls per no-op measurement, {io_calls} per GET; per-call medians over {rounds} interleaved rounds")
    print()
    print(f"{'per call (us), median [range] over rounds':<46} {'Kayse':>20} {'baseline':>20} {'ratio':>20}")

    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        # 1. No I/O: the facade against a bare anyio portal, and against the async client itself.
        direct_client = runner.run(_make_async(KEY, "http://127.0.0.1:9", quota()))
        with (
            Kayse(KEY, base_url="http://127.0.0.1:9", quota=quota()) as kayse,
            start_blocking_portal("asyncio") as portal,
        ):
            kayse.quota  # noqa: B018 - start the portal outside the timing
            facade, bare = median_of(
                rounds,
                lambda: per_call_sync(lambda: kayse._portal.call(None, _noop_on), calls),
                lambda: per_call_sync(lambda: portal.call(_noop), calls),
            )
            print(row("no-op coroutine: Kayse vs anyio portal.call", facade, bare))
            facade, direct = median_of(
                rounds,
                lambda: per_call_sync(lambda: kayse.quota, calls),
                lambda: per_call_sync(lambda: direct_client.quota, calls),
            )
            print(row("kayse.quota vs client.quota", facade, direct))
        runner.run(direct_client.aclose())

        # 2. A GET against a minimal aiohttp server, then against the emulator.
        with server([sys.executable, "-c", _MINIMAL_SERVER]) as url:
            facade, direct = _compare_get(runner, url, rounds, io_calls, lambda c: c.metadata.objects())
            print(row("GET, minimal aiohttp server", facade, direct))
        emulator = [
            sys.executable,
            "-m",
            "kayse_async.testing",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--limit",
            "1000000000",
        ]
        with server(emulator) as url:
            facade, direct = _compare_get(runner, url, rounds, io_calls, lambda c: c.metadata.objects())
            print(row("GET /v1/metadata/objects, emulator", facade, direct))

        # 3. Throughput: with the server answering at once (its CPU is then the limit), and with
        # a few milliseconds of latency per request, as any remote API has.
        for latency_ms, total in ((0, io_calls), (LATENCY_MS, THREADS * 8)):
            print()
            title = f"throughput, emulator, latency {latency_ms} ms (calls/s)"
            print(f"{title:<44} {'value':>10} {'vs 1 thread':>12}")
            with server([*emulator, "--latency-ms", str(latency_ms)]) as url:
                one, many, tasks = _throughput(runner, url, rounds, total)
            print(f"{'Kayse, 1 thread':<44} {statistics.median(one):>10.0f} {1.0:>11.2f}x")
            for label, values in (
                (f"Kayse, {THREADS} threads, one client", many),
                (f"AsyncKayse, {THREADS} tasks", tasks),
            ):
                ratios = [v / o for v, o in zip(values, one, strict=True)]
                print(f"{label:<44} {statistics.median(values):>10.0f} {spread(ratios, unit='x'):>20}")


def _throughput(runner: asyncio.Runner, url: str, rounds: int, calls: int) -> list[list[float]]:
    with Kayse(KEY, base_url=url, calls_base_url=url, quota=quota()) as kayse:
        kayse.metadata.objects()
        client = runner.run(_make_async(KEY, url, quota()))
        measured = median_of(
            rounds,
            lambda: throughput_threads(kayse, lambda k: k.metadata.objects(), 1, calls),
            lambda: throughput_threads(kayse, lambda k: k.metadata.objects(), THREADS, calls),
            lambda: throughput_tasks(runner, client, lambda c: c.metadata.objects(), THREADS, calls),
        )
        runner.run(client.aclose())
    return measured


async def _make_async(key: str, url: str, budget: MemoryQuota) -> AsyncKayse:
    return AsyncKayse(key, base_url=url, calls_base_url=url, quota=budget)


def _compare_get(
    runner: asyncio.Runner, url: str, rounds: int, calls: int, call: Callable[[Any], Any]
) -> list[list[float]]:
    client = runner.run(_make_async(KEY, url, quota()))
    with Kayse(KEY, base_url=url, calls_base_url=url, quota=quota()) as kayse:
        call(kayse)  # warm: portal started, connection open
        runner.run(call(client))
        measured = median_of(
            rounds,
            lambda: per_call_sync(lambda: call(kayse), calls),
            lambda: per_call_async(runner, lambda: call(client), calls),
        )
    runner.run(client.aclose())
    return measured


if __name__ == "__main__":
    main()
