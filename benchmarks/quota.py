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

``--defaults``: the SDK as a user meets it, ``AsyncKayse(key, base_url=...)``
with no quota argument (its prior: 500 an hour), against emulators of each
window mode at periods of 2 s and 10 s, with 1, 16 and 64 callers, every cell
side by side with an emulator of its own; then ``--processes`` processes
through ``RedisQuota(url)`` (no limit or period given either) on one emulator
per mode. Per cell: budget use, 429s, and the longest time a caller waited,
with nothing of its own on the wire and room at the server, past the
server's last announced Reset (+ the scheduler's margin), sampled every 5 ms.

    python benchmarks/quota.py                      # full: 6 windows of 5 s, every mode
    python benchmarks/quota.py --windows 2 --period 2 --modes fixed
    python benchmarks/quota.py --defaults           # about 4 minutes; --duration 20 for a quick look
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
from kayse_async.quota import MemoryQuota, RedisQuota, default_quota
from kayse_async.testing import Emulator
from kayse_async.testing._ratelimit import WINDOWS, Decision, RateLimiter, Window

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


@dataclass
class Cell:
    """One --defaults run: what was served, refused, and the longest idle wait past the server's Reset."""

    served: int = 0
    rate_limited: int = 0
    beyond_reset: float = 0.0


def has_room(limiter: RateLimiter, key: str, now: float) -> bool:
    """Whether the emulator's limiter would accept a request of ``key`` at ``now`` (nothing spent)."""
    if limiter.window == "fixed":
        start, count = limiter._fixed.get(key, (now, 0))
        return now >= start + limiter.period or count < limiter.limit
    if limiter.window == "sliding":
        log = limiter._logs.get(key, ())
        return sum(1 for t in log if t > now - limiter.period) < limiter.limit
    tokens, last = limiter._buckets.get(key, (float(limiter.limit), now))
    return tokens + (now - last) * limiter.limit / limiter.period >= 1.0 - 1e-9


async def defaults_cell(mode: Window, period: float, workers: int, args: argparse.Namespace) -> Cell:
    """``workers`` callers through ``AsyncKayse`` with no quota argument, against one emulator of ``mode``."""
    loop = asyncio.get_running_loop()
    cell = Cell()
    async with Emulator(api_key=KEY, limit=args.limit, period=period, window=mode) as emu:
        limiter = emu.service.limiter
        assert limiter is not None
        said: list[float] = []  # when the client last heard the server's budget grows next
        last: list[Decision] = []
        hit = limiter.hit

        def recording_hit(key: str) -> Decision:
            decision = hit(key)
            last[:] = [decision]
            return decision

        limiter.hit = recording_hit  # type: ignore[method-assign]
        async with AsyncKayse(KEY, base_url=emu.url, calls_base_url=emu.url) as kayse:
            bucket = kayse._transport.bucket("main")

            async def call() -> bool:
                try:
                    await kayse.metadata.objects()
                except errors.KayseError:
                    return False
                finally:
                    # The newest answer's Reset, from the moment the client has it.
                    if last:
                        said[:] = [loop.time() + last[0].reset_seconds]
                return True

            async def sample() -> None:
                # Idle with room: callers in the scheduler's line, nothing of ours granted or on the wire,
                # room at the server, and the server's newest Reset (+ the margin) past.
                while True:
                    await asyncio.sleep(0.005)
                    now = loop.time()
                    entry = default_quota()._buckets.get(bucket)
                    if not said or entry is None or not entry.waiters:
                        continue
                    state = entry.state
                    if state.reserved + state.in_flight == 0 and has_room(limiter, KEY, now):
                        cell.beyond_reset = max(cell.beyond_reset, now - (said[0] + state.margin))

            sampler = asyncio.create_task(sample())
            result = Result()
            await saturate(call, workers, args.duration, result)
            sampler.cancel()
        cell.served = result.served
        cell.rate_limited = emu.stats()["rate_limited"]
    return cell


async def defaults_child(args: argparse.Namespace) -> None:
    """One of the processes on RedisQuota with its defaults: waits for the common start, then saturates."""
    quota = RedisQuota(args.redis_url, key_prefix=args.key_prefix)
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    result = await run_kayse(args.url, args, quota, args.duration)
    await quota.aclose()
    print(json.dumps({"served": result.served}))


async def defaults_redis(mode: Window, period: float, args: argparse.Namespace) -> Cell:
    """``args.processes`` processes, 16 callers each, on one emulator through RedisQuota with no limit or period."""
    async with Emulator(api_key=KEY, limit=args.limit, period=period, window=mode) as emu:
        start_at = time.time() + 3.0
        prefix = f"kayse:bench:{uuid.uuid4().hex[:8]}:"
        command = [sys.executable, SCRIPT, "--defaults-child", "--url", emu.url, "--redis-url", args.redis_url]
        command += ["--key-prefix", prefix, "--start-at", str(start_at), "--duration", str(args.duration)]
        command += ["--workers", "16"]
        procs = [await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE) for _ in range(args.processes)]
        outputs = await asyncio.gather(*(p.communicate() for p in procs))
        cell = Cell(rate_limited=emu.stats()["rate_limited"])
    cell.served = sum(json.loads(out.decode().strip().splitlines()[-1])["served"] for out, _ in outputs)
    return cell


async def defaults(args: argparse.Namespace) -> None:
    """The --defaults table: every mode, period and concurrency side by side, then the Redis processes."""
    modes: list[Window] = args.modes
    rows: list[list[str]] = []

    def add(name: str, mode: str, period: float, cell: Cell, beyond: bool = True) -> None:
        # Windows open one after another (a perfect client starts one each period); a bucket refills all along.
        best = (
            args.limit * (1 + args.duration / period)
            if mode == "token"
            else args.limit * math.ceil(args.duration / period)
        )
        beyond_text = f"{cell.beyond_reset:.2f}" if beyond else "-"
        rows.append([name, f"{100.0 * cell.served / best:.1f}%", str(cell.rate_limited), beyond_text])
        print(f"{name:40} served {cell.served} 429s {cell.rate_limited}", file=sys.stderr, flush=True)

    for period in (2.0, 10.0):
        plan = [(mode, workers) for mode in modes for workers in (1, 16, 64)]
        cells = await asyncio.gather(*(defaults_cell(mode, period, workers, args) for mode, workers in plan))
        for (mode, workers), cell in zip(plan, cells, strict=True):
            add(f"{mode}, {period:g} s, {workers} callers", mode, period, cell)
    if args.processes > 0:
        if redis_reachable(args.redis_url):
            for period in (2.0, 10.0):
                cells = await asyncio.gather(*(defaults_redis(mode, period, args) for mode in modes))
                for mode, cell in zip(modes, cells, strict=True):
                    add(f"{mode}, {period:g} s, {args.processes} processes (Redis)", mode, period, cell, beyond=False)
        else:
            print(f"no redis-server at {args.redis_url}: the shared-key runs are left out", file=sys.stderr)
    print(
        f"AsyncKayse with no quota argument; emulator limit {args.limit} per period; runs of {args.duration:g} s; "
        f"{environment(['kayse-async', 'aiohttp', 'redis'])}"
    )
    print()
    print(table(["window, period, callers", "budget use", "429s", "beyond Reset (s)"], rows))


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
    parser.add_argument("--defaults", action="store_true", help="the SDK with no quota argument (see above)")
    parser.add_argument("--duration", type=float, default=80.0, help="--defaults: seconds per run (default 80)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--defaults-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key-prefix", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.child:
        asyncio.run(child(arguments))
    elif arguments.defaults_child:
        asyncio.run(defaults_child(arguments))
    elif arguments.defaults:
        if "--limit" not in sys.argv:
            arguments.limit = 20
        asyncio.run(defaults(arguments))
    else:
        asyncio.run(main(arguments))
