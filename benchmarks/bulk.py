"""Benchmark: stream client records through ``clients.bulk_upsert_iter`` vs the naive way.

Both ways send the same records to one emulator, run in a separate process
with rate limiting off, in chunks of 500:

- kayse_async: a generator of records through ``clients.bulk_upsert_iter``
  (every item checked before sending, every answer structured into a
  ``Client``, a bounded window of ``--concurrency`` chunks);
- naive: build the whole list first, then ``asyncio.gather`` one request per
  chunk (raw dicts, no checks, answers left as JSON).

Each way runs in a child process of its own, so that its peak RSS growth
(``ru_maxrss`` at the end minus the RSS at the start) is its own; the
emulator's store is emptied between them. Usage::

    python benchmarks/bulk.py [--records 1000000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

KEY = "bench-key"
CHUNK = 500


def records(n: int) -> Iterator[dict[str, Any]]:
    """``n`` distinct client records, made on demand."""
    for i in range(n):
        yield {
            "external_source": "bench",
            "external_source_id": f"b-{i}",
            "first_name": "Ann",
            "last_name": f"Smith {i}",
            "email": f"ann{i}@example.com",
        }


def rss_bytes() -> int:
    """Resident set size now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def streaming(url: str, n: int, concurrency: int) -> int:
    from kayse_async import AsyncKayse
    from kayse_async.quota import MemoryQuota

    stored = 0
    quota = MemoryQuota(limit=10_000_000, period=3600.0)
    async with AsyncKayse(KEY, base_url=url, calls_base_url=url, quota=quota, timeout=120) as kayse:
        async for item in kayse.clients.bulk_upsert_iter(records(n), chunk_size=CHUNK, concurrency=concurrency):
            if item.status == "succeeded":
                stored += 1
    return stored


async def naive(url: str, n: int, concurrency: int) -> int:
    from kayse_async import AsyncKayse
    from kayse_async._protocol import Request
    from kayse_async.quota import MemoryQuota

    items = list(records(n))
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    quota = MemoryQuota(limit=10_000_000, period=3600.0)
    async with AsyncKayse(KEY, base_url=url, calls_base_url=url, quota=quota, timeout=600) as kayse:
        transport = kayse._transport  # the naive way: one raw request per chunk, all at once

        async def send(chunk: list[dict[str, Any]]) -> Any:
            return (
                await transport.request(Request(method="POST", path="/v1/clients/bulk", json={"clients": chunk}))
            ).data

        answers = await asyncio.gather(*(send(chunk) for chunk in chunks))
    return sum(len(answer["clients"]) for answer in answers)


def child(way: str, url: str, n: int, concurrency: int) -> None:
    """Run one way in this process and print its figures as JSON."""
    start_rss = rss_bytes()
    started = time.perf_counter()
    run = streaming if way == "kayse_async" else naive
    stored = asyncio.run(run(url, n, concurrency))
    elapsed = time.perf_counter() - started
    growth = peak_rss_bytes() - start_rss
    print(json.dumps({"way": way, "stored": stored, "seconds": elapsed, "rss_growth": growth}))


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kayse_async.testing", "--port", "0", "--api-key", KEY, "--limit", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return proc, line.split("listening on", 1)[1].strip()


def reset_emulator(url: str) -> None:
    request = urllib.request.Request(f"{url}/_emulator/reset?store=1", method="POST")
    with urllib.request.urlopen(request) as response:
        response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="records per way (default: 1,000,000)")
    parser.add_argument("--concurrency", type=int, default=4, help="kayse_async chunks in flight (default: 4)")
    parser.add_argument("--child", choices=["kayse_async", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.records, args.concurrency)
        return
    emulator, url = start_emulator()
    results: dict[str, dict[str, Any]] = {}
    try:
        for way in ("naive", "kayse_async"):
            reset_emulator(url)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    way,
                    "--url",
                    url,
                    "--records",
                    str(args.records),
                    "--concurrency",
                    str(args.concurrency),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            results[way] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    mib = 1024 * 1024
    print(f"{args.records:,} client records, chunks of {CHUNK}, emulator in its own process, rate limit off")
    print(f"{'':14}{'records/s':>12}{'peak RSS growth':>18}{'stored':>12}")
    for way in ("kayse_async", "naive"):
        r = results[way]
        print(f"{way:14}{r['stored'] / r['seconds']:>12,.0f}{r['rss_growth'] / mib:>14.1f} MiB{r['stored']:>12,}")
    ours, base = results["kayse_async"], results["naive"]
    speed = (ours["stored"] / ours["seconds"]) / (base["stored"] / base["seconds"])
    memory = ours["rss_growth"] / base["rss_growth"] if base["rss_growth"] > 0 else float("nan")
    print(f"ratio kayse_async/naive: records/s x{speed:.2f}, peak RSS growth x{memory:.3f}")


if __name__ == "__main__":
    main()
