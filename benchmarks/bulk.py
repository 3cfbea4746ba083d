"""Benchmark: stream client records through ``clients.bulk_upsert_iter`` vs the naive way.

Both ways send the same records to the emulator, run in a separate process
with rate limiting off, in chunks of 500:

- kayse_async: a generator of records through ``clients.bulk_upsert_iter``
  (every item checked before sending, every answer structured into a
  ``Client``, a bounded window of ``--concurrency`` chunks);
- naive: build the whole list first, then ``asyncio.gather`` one request per
  chunk (raw dicts, no checks, answers left as JSON).

Each run of each way gets a child process of its own, so that its peak RSS
growth (``ru_maxrss`` at the end minus the RSS at the start) is its own, and a
fresh emulator process, so that neither way inherits the other's server state
(a million stored records, a heap grown by the naive way's 2,000 requests at
once). ``--rounds`` rounds run the two ways in turn, the order alternating from
round to round; the figures are medians, and the speed ratio is the median of
each round's pair. Usage::

    python benchmarks/bulk.py [--records 1000000] [--concurrency 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
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
    from kayse_async._wire.protocol import Request
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="records per way (default: 1,000,000)")
    parser.add_argument("--concurrency", type=int, default=4, help="kayse_async chunks in flight (default: 4)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both ways (default: 3)")
    parser.add_argument("--child", choices=["kayse_async", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.records, args.concurrency)
        return
    ways = ("naive", "kayse_async")
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
    for round_no in range(args.rounds):
        for way in ways if round_no % 2 == 0 else ways[::-1]:
            runs[way].append(_run_child(way, args.records, args.concurrency))
            print(f"  round {round_no + 1}/{args.rounds} {way}: {_rate(runs[way][-1]):,.0f} records/s", file=sys.stderr)
    mib = 1024 * 1024
    print(
        f"{args.records:,} client records, chunks of {CHUNK}, emulator in its own process (a fresh one per run), "
        f"rate limit off; medians of {args.rounds} rounds"
    )
    print(f"{'':14}{'records/s':>12}{'peak RSS growth':>18}{'stored':>12}")
    for way in ("kayse_async", "naive"):
        rate = statistics.median(_rate(r) for r in runs[way])
        growth = max(r["rss_growth"] for r in runs[way])
        stored = min(r["stored"] for r in runs[way])
        print(f"{way:14}{rate:>12,.0f}{growth / mib:>14.1f} MiB{stored:>12,}")
    pairs = sorted(_rate(ours) / _rate(base) for ours, base in zip(runs["kayse_async"], runs["naive"], strict=True))
    ours_growth = max(r["rss_growth"] for r in runs["kayse_async"])
    base_growth = max(r["rss_growth"] for r in runs["naive"])
    memory = ours_growth / base_growth if base_growth > 0 else float("nan")
    print(
        f"ratio kayse_async/naive: records/s x{statistics.median(pairs):.2f} (rounds from x{pairs[0]:.2f} to "
        f"x{pairs[-1]:.2f}), peak RSS growth x{memory:.3f} (largest of each way)"
    )


def _rate(run: dict[str, Any]) -> float:
    return float(run["stored"]) / float(run["seconds"])


def _run_child(way: str, records: int, concurrency: int) -> dict[str, Any]:
    """One run of ``way`` in a child process, against an emulator of its own."""
    emulator, url = start_emulator()
    try:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                way,
                "--url",
                url,
                "--records",
                str(records),
                "--concurrency",
                str(concurrency),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    main()
