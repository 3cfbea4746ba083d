"""The quota scheduler under saturated demand, against the emulator in each window mode.

For each window mode (fixed, sliding, token bucket) and a scaled budget (by
default 50 requests per 5 s, for 6 windows), three contenders run side by
side, each against an emulator of its own, with the same number of workers
calling GET /v1/metadata/objects back to back:

- ``kayse_async``: ``AsyncKayse`` with ``MemoryQuota(limit, period)``;
- ``aiolimiter``: ``AsyncLimiter(limit, period)`` in front of raw aiohttp;
- ``naive``: raw aiohttp, sleeping Retry-After after each 429 and trying again.

Then ``--processes`` (default 4) processes share one key of one emulator
through ``RedisQuota`` (needs a redis-server; ``--redis-url``).

Printed per run: requests served (200s within the run), budget use (% of the
theoretical maximum: limit x windows for fixed and sliding windows; the full
bucket plus its refill, limit + limit x duration / period, for the token
bucket), 429s received, and the p95 of the time a call took (waiting for
budget included).

    python benchmarks/quota.py                      # full: 6 windows of 5 s, every mode
    python benchmarks/quota.py --windows 2 --period 2 --modes fixed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _common import environment, table
from aiolimiter import AsyncLimiter

from kayse_async import AsyncKayse, errors
from kayse_async.quota import MemoryQuota, RedisQuota
from kayse_async.testing import Emulator
from kayse_async.testing._ratelimit import WINDOWS, Window

KEY = "bench-key"
SCRIPT = os.path.abspath(__file__)
PATH = "/v1/metadata/objects"


@dataclass
class Result:
    """What one contender achieved in one run."""

    served: int = 0
    rate_limited: int = 0
    latencies: list[float] = field(default_factory=list)

    def p95(self) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def theoretical(mode: str, limit: int, period: float, windows: int) -> float:
    """The most a perfect client could be served in ``windows`` periods."""
    if mode == "token":
        return limit + limit * windows
    return limit * windows


async def saturate(call: Callable[[], Awaitable[bool]], workers: int, duration: float, result: Result) -> None:
    """``workers`` tasks run ``call`` back to back for ``duration`` seconds; a True return is a 200."""
    deadline = time.monotonic() + duration

    async def worker() -> None:
        while True:
            began = time.monotonic()
            ok = await call()
            ended = time.monotonic()
            if ended > deadline:
                return
            if ok:
                result.served += 1
                result.latencies.append(ended - began)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_kayse(url: str, args: argparse.Namespace, quota: Any, duration: float) -> Result:
    result = Result()
    async with AsyncKayse(KEY, base_url=url, calls_base_url=url, quota=quota) as kayse:

        async def call() -> bool:
            try:
                await kayse.metadata.objects()
            except errors.KayseError:
                return False
            return True

        await saturate(call, args.workers, duration, result)
    return result


async def run_aiolimiter(url: str, args: argparse.Namespace, duration: float) -> Result:
    result = Result()
    limiter = AsyncLimiter(args.limit, args.period)
    async with aiohttp.ClientSession() as session:

        async def call() -> bool:
            async with limiter, session.get(url + PATH, headers={"X-API-KEY": KEY}) as resp:
                await resp.read()
                return resp.status == 200

        await saturate(call, args.workers, duration, result)
    return result


async def run_naive(url: str, args: argparse.Namespace, duration: float) -> Result:
    result = Result()
    async with aiohttp.ClientSession() as session:

        async def call() -> bool:
            while True:
                async with session.get(url + PATH, headers={"X-API-KEY": KEY}) as resp:
                    await resp.read()
                    if resp.status != 429:
                        return resp.status == 200
                    retry_after = float(resp.headers.get("Retry-After", "1"))
                await asyncio.sleep(retry_after)

        await saturate(call, args.workers, duration, result)
    return result


async def one_mode(mode: Window, args: argparse.Namespace) -> list[tuple[str, Result]]:
    """The three in-process contenders side by side, each against its own emulator."""
    duration = args.windows * args.period
    emulators = [Emulator(api_key=KEY, limit=args.limit, period=args.period, window=mode) for _ in range(3)]
    for emu in emulators:
        await emu.__aenter__()
    try:
        quota = MemoryQuota(args.limit, args.period)
        results = await asyncio.gather(
            run_kayse(emulators[0].url, args, quota, duration),
            run_aiolimiter(emulators[1].url, args, duration),
            run_naive(emulators[2].url, args, duration),
        )
        for result, emu in zip(results, emulators, strict=True):
            result.rate_limited = emu.stats()["rate_limited"]
    finally:
        for emu in emulators:
            await emu.__aexit__(None, None, None)
    return list(zip(["kayse_async", "aiolimiter + aiohttp", "naive retry-on-429"], results, strict=True))


async def child(args: argparse.Namespace) -> None:
    """One of the processes sharing a key through Redis: waits for the common start, then saturates."""
    quota = RedisQuota(args.redis_url, limit=args.limit, period=args.period, key_prefix=args.key_prefix)
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    result = await run_kayse(args.url, args, quota, args.windows * args.period)
    await quota.aclose()
    print(json.dumps({"served": result.served, "latencies": result.latencies}))


async def shared_redis(mode: Window, args: argparse.Namespace) -> Result:
    """``args.processes`` processes, one key, one emulator, one RedisQuota bucket."""
    async with Emulator(api_key=KEY, limit=args.limit, period=args.period, window=mode) as emu:
        start_at = time.time() + 3.0
        prefix = f"kayse:bench:{uuid.uuid4().hex[:8]}:"
        command = [
            sys.executable,
            SCRIPT,
            "--child",
            "--url",
            emu.url,
            "--redis-url",
            args.redis_url,
            "--key-prefix",
            prefix,
            "--start-at",
            str(start_at),
            "--limit",
            str(args.limit),
            "--period",
            str(args.period),
            "--windows",
            str(args.windows),
            "--workers",
            str(max(1, args.workers // args.processes)),
        ]
        procs = [await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE) for _ in range(args.processes)]
        outputs = await asyncio.gather(*(p.communicate() for p in procs))
        total = Result(rate_limited=emu.stats()["rate_limited"])
    for out, _ in outputs:
        data = json.loads(out.decode().strip().splitlines()[-1])
        total.served += data["served"]
        total.latencies.extend(data["latencies"])
    return total


def redis_reachable(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception:
        return False
    return True


def parse_modes(text: str) -> list[Window]:
    """``--modes``: comma-separated window modes of the emulator."""
    by_name: dict[str, Window] = {window: window for window in WINDOWS}
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown mode {', '.join(unknown)}; choose from {', '.join(WINDOWS)}")
    return [by_name[name] for name in names]


async def main(args: argparse.Namespace) -> None:
    modes: list[Window] = args.modes
    rows: list[list[str]] = []

    def add(mode: str, name: str, result: Result) -> None:
        best = theoretical(mode, args.limit, args.period, args.windows)
        rows.append(
            [
                f"{mode}: {name}",
                str(result.served),
                f"{100.0 * result.served / best:.1f}%",
                str(result.rate_limited),
                f"{result.p95():.2f}",
            ]
        )
        print(f"{mode:8} {name:28} served {result.served} 429s {result.rate_limited}", file=sys.stderr, flush=True)

    for mode in modes:
        for name, result in await one_mode(mode, args):
            add(mode, name, result)
    if args.processes > 0:
        if redis_reachable(args.redis_url):
            for mode in modes:
                add(mode, f"kayse_async, {args.processes} processes, RedisQuota", await shared_redis(mode, args))
        else:
            print(f"no redis-server at {args.redis_url}: the shared-key runs are left out", file=sys.stderr)
    print(
        f"Budget {args.limit} per {args.period:g} s, {args.windows} windows, {args.workers} workers per contender; "
        f"{environment(['kayse-async', 'aiohttp', 'aiolimiter', 'redis'])}"
    )
    print()
    print(table(["window: contender", "served", "budget use", "429s", "p95 wait (s)"], rows))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=50, help="requests per window (default 50)")
    parser.add_argument("--period", type=float, default=5.0, help="window length in seconds (default 5)")
    parser.add_argument("--windows", type=int, default=6, help="windows per run (default 6)")
    parser.add_argument("--workers", type=int, default=20, help="concurrent callers per contender (default 20)")
    parser.add_argument(
        "--modes", type=parse_modes, default="fixed,sliding,token", help="window modes, comma-separated"
    )
    parser.add_argument("--processes", type=int, default=4, help="processes sharing a key via Redis (0: skip)")
    parser.add_argument(
        "--redis-url", default=os.environ.get("KAYSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"), help="Redis URL"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key-prefix", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.child:
        asyncio.run(child(arguments))
    else:
        asyncio.run(main(arguments))
