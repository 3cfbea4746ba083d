"""Client CPU time per request: raw aiohttp (the floor) vs kayse_async vs httpx.AsyncClient.

``--requests`` GETs of ``/v1/clients/{id}`` (default 20,000), ``--concurrency``
at once (default 50), against a server in another process with rate limiting
off. By default the server is a minimal aiohttp.web process that answers every
GET with one fixed client object, so that the server is never what is
measured; ``--server emulator`` runs against ``python -m kayse_async.testing
--limit 0`` instead (seeded with clients first).

The contenders run in this one process, interleaved round by round, the
order reversed every other round (A B C, C B A, ...). Each run's CPU time is ``time.process_time()`` of this
process around the whole run (client creation, every request with its JSON
decoding, closing), so it is the client's own cost; the server's CPU is in
another process. Figures are medians over ``--rounds``, and ratios are
against raw aiohttp measured in the same run. The verdict on the 1.5x target
takes each round's kayse_async run against the raw aiohttp run next to it
and reports the median of those paired ratios with their range: on a shared
machine the speed drifts between rounds by more than the difference measured,
and a pair run back to back shares the drift. httpx runs ``--httpx-requests``
GETs (default 2,000): at about twenty times the CPU per request, fewer of them
measure it as well.

What each contender does per request:

- raw aiohttp: one ``ClientSession`` (default pool of 100), ``session.get``,
  ``raise_for_status()``, ``await resp.json()``;
- kayse_async: ``await kayse.clients.get(id)`` on one ``AsyncKayse`` with a
  ``MemoryQuota`` whose budget never runs out: a lease from the quota, the
  request built by the protocol, the response deciphered, rate-limit headers
  parsed, the JSON structured into ``models.Client``;
- httpx: one ``AsyncClient`` with a keep-alive pool as large as aiohttp's
  (httpx keeps only 20 idle connections by default, which at concurrency 50
  would measure reconnections), ``client.get``, ``raise_for_status()``,
  ``resp.json()``.

Run ``python benchmarks/overhead.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import _common
import aiohttp
import httpx

from kayse_async import AsyncKayse, models
from kayse_async._wire.ratelimit import RateLimitInfo
from kayse_async.models import QuotaSnapshot
from kayse_async.quota import MemoryQuota, Quota

API_KEY = "bench-key"
BASELINE = "raw aiohttp"
OURS = "kayse_async"
HTTPX = "httpx.AsyncClient"
CPU_TARGET = 1.5
"""kayse_async may spend at most this many times raw aiohttp's CPU per request."""


class _UnlimitedLease:
    def sent(self) -> None:
        pass

    def complete(self, info: RateLimitInfo | None, status: int | None) -> None:
        pass

    def release(self) -> None:
        pass


class UnlimitedQuota:
    """A Quota that grants every request at once: isolates the cost of the real scheduler (``--quota none``)."""

    _lease = _UnlimitedLease()

    async def acquire(self, bucket: str, *, max_wait: float | None = None, priority: bool = False) -> _UnlimitedLease:
        return self._lease

    def snapshot(self, bucket: str) -> QuotaSnapshot:
        return QuotaSnapshot(limit=10**9, remaining=10**9, resets_at=None)

    async def aclose(self) -> None:
        pass


def make_quota(kind: str) -> Quota:
    """The quota the kayse_async contender uses: ``memory`` (the real one) or ``none``."""
    if kind == "none":
        return UnlimitedQuota()
    return MemoryQuota(limit=10**9, period=3600.0)


async def _drive(n: int, concurrency: int, ids: list[int], fetch: Callable[[int], Awaitable[None]]) -> None:
    """``n`` calls of ``fetch`` from ``concurrency`` tasks sharing one counter."""
    counter: Iterator[int] = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await fetch(ids[i % len(ids)])

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_raw_aiohttp(url: str, n: int, concurrency: int, ids: list[int]) -> _common.Timing:
    """The floor: plain aiohttp, one session."""
    with _common.measure() as m:
        async with aiohttp.ClientSession(headers={"X-API-KEY": API_KEY}) as session:

            async def fetch(client_id: int) -> None:
                async with session.get(f"{url}/v1/clients/{client_id}") as resp:
                    resp.raise_for_status()
                    data = await resp.json()
                assert data["id"] is not None

            await _drive(n, concurrency, ids, fetch)
    assert m.timing is not None
    return m.timing


async def run_kayse(url: str, n: int, concurrency: int, ids: list[int], quota_kind: str) -> _common.Timing:
    """kayse_async: ``clients.get`` into a ``models.Client``."""
    with _common.measure() as m:
        async with AsyncKayse(API_KEY, base_url=url, calls_base_url=url, quota=make_quota(quota_kind)) as kayse:

            async def fetch(client_id: int) -> None:
                client = await kayse.clients.get(client_id)
                assert isinstance(client, models.Client)

            await _drive(n, concurrency, ids, fetch)
    assert m.timing is not None
    return m.timing


async def run_httpx(url: str, n: int, concurrency: int, ids: list[int]) -> _common.Timing:
    """httpx.AsyncClient, keep-alive pool sized like aiohttp's."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    with _common.measure() as m:
        async with httpx.AsyncClient(headers={"X-API-KEY": API_KEY}, limits=limits, timeout=30.0) as client:

            async def fetch(client_id: int) -> None:
                resp = await client.get(f"{url}/v1/clients/{client_id}")
                resp.raise_for_status()
                data = resp.json()
                assert data["id"] is not None

            await _drive(n, concurrency, ids, fetch)
    assert m.timing is not None
    return m.timing


async def _seed_emulator(url: str, count: int) -> list[int]:
    """Create ``count`` clients on the emulator; their ids."""
    ids: list[int] = []
    async with aiohttp.ClientSession(headers={"X-API-KEY": API_KEY}) as session:
        for i in range(count):
            body = dict(_common.CLIENT_JSON)
            body.pop("id")
            body.pop("gender")
            body.pop("voice_calls_opted_out")
            body["external_source_id"] = f"bench-{i}"
            body["case_ids"] = []
            async with session.post(f"{url}/v1/clients", json=body) as resp:
                resp.raise_for_status()
                ids.append(int((await resp.json())["id"]))
    return ids


def server_for(kind: str, rate_headers: bool) -> _common.ServerProcess:
    """The server process: the fixed minimal one, or the emulator with rate limiting off."""
    if kind == "emulator":
        if rate_headers:
            raise SystemExit("--rate-headers applies to the fixed server only")
        argv = [sys.executable, "-m", "kayse_async.testing", "--port", "0", "--api-key", API_KEY, "--limit", "0"]
        return _common.ServerProcess(argv)
    return _common.fixed_client_server(API_KEY, rate_headers=rate_headers)


def contenders(
    url: str, n: int, concurrency: int, ids: list[int], quota_kind: str, httpx_n: int | None = None
) -> list[tuple[str, Callable[[], _common.Timing]]]:
    """The three contenders, each a callable doing one full measured run in a fresh event loop."""
    return [
        (BASELINE, lambda: asyncio.run(run_raw_aiohttp(url, n, concurrency, ids))),
        (OURS, lambda: asyncio.run(run_kayse(url, n, concurrency, ids, quota_kind))),
        (HTTPX, lambda: asyncio.run(run_httpx(url, httpx_n or n, concurrency, ids))),
    ]


def report(samples: _common.Samples, counts: dict[str, int]) -> str:
    """The figures table and the verdict lines; ``counts`` is each contender's requests per run."""
    per = {name: [t.cpu / counts[name] for t in samples.by_name[name]] for name in (BASELINE, OURS, HTTPX)}
    walls = {name: [t.wall / counts[name] for t in samples.by_name[name]] for name in (BASELINE, OURS, HTTPX)}
    base_cpu = statistics.median(per[BASELINE])
    base_wall = statistics.median(walls[BASELINE])
    rows: list[list[str]] = []
    for name in (BASELINE, OURS, HTTPX):
        cpu = statistics.median(per[name])
        wall = statistics.median(walls[name])
        rows.append(
            [
                name,
                f"{cpu * 1e6:.1f}",
                _common.ratio(cpu, base_cpu),
                f"{wall * 1e6:.1f}",
                _common.ratio(wall, base_wall),
                f"{1 / wall:,.0f}",
            ]
        )
    headers = ["client", "CPU µs/request", "CPU vs raw aiohttp", "wall µs/request", "wall vs raw aiohttp", "requests/s"]
    # Each round's kayse_async run against the raw aiohttp run next to it: the pair shares the
    # machine's state of the moment, which drifts a lot between rounds on a shared machine.
    paired = sorted(ours / base for ours, base in zip(per[OURS], per[BASELINE], strict=True))
    ours_ratio = statistics.median(paired)
    vs_httpx = statistics.median(per[OURS]) / statistics.median(per[HTTPX])
    verdict = [
        f"kayse_async CPU per request, paired with raw aiohttp round by round: median {ours_ratio:.2f}x "
        f"(rounds from {paired[0]:.2f}x to {paired[-1]:.2f}x; target <= {CPU_TARGET:.2f}x): "
        + ("met" if ours_ratio <= CPU_TARGET else "MISSED"),
        f"kayse_async CPU per request: {vs_httpx:.2f}x httpx (target < 1.00x): "
        + ("met" if vs_httpx < 1 else "MISSED"),
    ]
    return _common.table(headers, rows) + "\n\n" + "\n".join(verdict)


def profile_kayse(url: str, n: int, concurrency: int, ids: list[int], quota_kind: str, top: int) -> str:
    """cProfile one kayse_async run: the functions with the most own time, and kayse_async's share by module."""
    # CPU time, not wall: the machine may be shared, and waiting on the server is not overhead.
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    asyncio.run(run_kayse(url, n, concurrency, ids, quota_kind))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    package_dir = os.path.dirname(os.path.abspath(sys.modules["kayse_async"].__file__ or ""))
    own: dict[str, float] = {}
    total = 0.0
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _func), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        total += tottime
        if filename.startswith(package_dir):
            module = os.path.relpath(filename, package_dir)
            own[module] = own.get(module, 0.0) + tottime
    lines = [f"own time by kayse_async module ({n} requests, profiler on; total {total:.2f} s):"]
    for module, seconds in sorted(own.items(), key=lambda item: -item[1]):
        lines.append(f"  {module:<32} {seconds:7.3f} s  {seconds / total:6.1%}  {seconds / n * 1e6:6.1f} µs/request")
    return out.getvalue() + "\n" + "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000, help="GETs per run (default: 20000)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight (default: 50)")
    parser.add_argument(
        "--httpx-requests",
        type=int,
        default=2_000,
        help="GETs per httpx run (default: 2000): its CPU per request is about 20 times the others', "
        "so fewer requests measure it as well, and leave time for more rounds",
    )
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds; medians are reported (default: 9)")
    parser.add_argument(
        "--server",
        choices=("fixed", "emulator"),
        default="fixed",
        help="fixed: a minimal server answering one fixed object (default); emulator: kayse_async.testing",
    )
    parser.add_argument(
        "--rate-headers",
        action="store_true",
        help="the fixed server sends X-RateLimit-* headers (a budget that never runs out), as the real API does",
    )
    parser.add_argument(
        "--quota",
        choices=("memory", "none"),
        default="memory",
        help="kayse_async's quota: MemoryQuota with a huge budget (default), or none (grants everything at once)",
    )
    parser.add_argument("--warmup", type=int, default=1000, help="unmeasured requests per contender first")
    parser.add_argument("--profile", action="store_true", help="also cProfile one kayse_async run and print where")
    parser.add_argument("--profile-top", type=int, default=40, help="functions listed by --profile")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instead of timing, count the instructions per request of raw aiohttp and kayse_async under "
        "valgrind's callgrind (deterministic; needs valgrind; httpx is left out, too slow under it)",
    )
    parser.add_argument(
        "--bytecodes",
        action="store_true",
        help="instead of timing, count the Python bytecodes per request of raw aiohttp and kayse_async "
        "(sys.settrace; deterministic, no other tool needed; httpx is left out)",
    )
    parser.add_argument("--child", choices=(BASELINE, OURS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.instructions and args.server != "fixed":
        parser.error("--instructions runs against the fixed server only")
    if args.instructions and args.bytecodes:
        parser.error("--instructions and --bytecodes are two different counts: one at a time")
    for name in ("requests", "httpx_requests", "concurrency", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


# --instructions: each contender runs this many GETs in two child processes under callgrind; the
# difference of the two counts, divided by the difference of the requests, leaves start-up out.
INSTRUCTION_RUNS = (500, 2_500)


def _run_child(args: argparse.Namespace) -> int:
    """``--child``: one contender's GETs against ``--url``, nothing printed (counted from outside)."""
    ids = list(range(1, 1001))
    if args.child == BASELINE:
        asyncio.run(run_raw_aiohttp(args.url, args.requests, args.concurrency, ids))
    else:
        asyncio.run(run_kayse(args.url, args.requests, args.concurrency, ids, args.quota))
    return 0


def _callgrind_total(valgrind: str, name: str, url: str, requests: int, args: argparse.Namespace) -> int:
    argv = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, os.path.abspath(__file__)]
    argv += ["--child", name, "--url", url, "--requests", str(requests), "--concurrency", str(args.concurrency)]
    argv += ["--quota", args.quota]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run of {name} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def count_instructions(url: str, args: argparse.Namespace) -> str:
    """Instructions per request of raw aiohttp and kayse_async, as a table with the ratio."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind on the PATH (apt-get install valgrind)")
    small, large = INSTRUCTION_RUNS
    per: dict[str, float] = {}
    for name in (BASELINE, OURS):
        counts = [_callgrind_total(valgrind, name, url, n, args) for n in (small, large)]
        per[name] = (counts[1] - counts[0]) / (large - small)
        print(f"  {name:<22} {per[name]:,.0f} instructions/request", file=sys.stderr, flush=True)
    rows = [[name, f"{per[name]:,.0f}", _common.ratio(per[name], per[BASELINE])] for name in (BASELINE, OURS)]
    return _common.table(["client", "instructions/request", "vs raw aiohttp"], rows)


# --bytecodes: each contender runs this many GETs traced; the difference of the two counts, divided
# by the difference of the requests, leaves the client's creation and closing out.
BYTECODE_RUNS = (200, 1_000)


def bytecodes_of(run: Callable[[], object]) -> collections.Counter[str]:
    """The Python bytecodes ``run()`` executes in this thread, counted by the file of their code."""
    counts: collections.Counter[str] = collections.Counter()

    def tracer(frame: types.FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            counts[frame.f_code.co_filename] += 1
        return tracer

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return counts


def count_bytecodes(url: str, ids: list[int], args: argparse.Namespace) -> str:
    """Bytecodes per request of raw aiohttp and kayse_async, as a table, and kayse_async's own by module.

    The time a request costs follows the bytecodes the interpreter runs for it
    more closely than the machine instructions (``--instructions``): much of
    the floor's work is C (the HTTP parser, JSON), which runs many
    instructions per unit of time, and the client's own work is Python.
    """
    small, large = BYTECODE_RUNS
    package_dir = os.path.dirname(os.path.abspath(sys.modules["kayse_async"].__file__ or ""))
    per: dict[str, float] = {}
    own: dict[str, float] = {}
    # Each contender's measured run at each size (its timing, a few bytecodes a run, cancels out).
    sized = {n: dict(contenders(url, n, args.concurrency, ids, args.quota)) for n in (small, large)}
    for name in (BASELINE, OURS):
        sized[small][name]()  # warm: imports, the first connection's set-up
        counts = [bytecodes_of(sized[n][name]) for n in (small, large)]
        per[name] = (sum(counts[1].values()) - sum(counts[0].values())) / (large - small)
        if name == OURS:
            for filename in set(counts[0]) | set(counts[1]):
                # The package's files, and the code it generates (structure functions, attrs methods).
                if filename.startswith(package_dir) or (filename.startswith("<") and "kayse_async" in filename):
                    module = os.path.relpath(filename, package_dir) if filename.startswith(package_dir) else filename
                    own[module] = (counts[1][filename] - counts[0][filename]) / (large - small)
        print(f"  {name:<22} {per[name]:,.0f} bytecodes/request", file=sys.stderr, flush=True)
    rows = [[name, f"{per[name]:,.0f}", _common.ratio(per[name], per[BASELINE])] for name in (BASELINE, OURS)]
    lines = [f"kayse_async's own bytecodes per request, by module (of {per[OURS]:,.0f}):"]
    for module, value in sorted(own.items(), key=lambda item: -item[1]):
        if value >= 1:
            lines.append(f"  {module:<64} {value:7,.0f}")
    return _common.table(["client", "bytecodes/request", "vs raw aiohttp"], rows) + "\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    args = parse_args(argv)
    if args.child is not None:
        return _run_child(args)
    if args.instructions:
        with server_for(args.server, args.rate_headers) as server:
            counted = count_instructions(server.url, args)
        print(f"# overhead, counted: instructions per GET at concurrency {args.concurrency} under callgrind")
        print("# " + _common.environment(["aiohttp", "attrs", "cattrs", "kayse-async"]))
        print()
        print(counted)
        return 0
    if args.bytecodes:
        with server_for(args.server, args.rate_headers) as server:
            ids = asyncio.run(_seed_emulator(server.url, 100)) if args.server == "emulator" else list(range(1, 1001))
            counted = count_bytecodes(server.url, ids, args)
        print(f"# overhead, counted: Python bytecodes per GET at concurrency {args.concurrency} (sys.settrace)")
        print(f"# server: {args.server}" + (" with X-RateLimit-* headers" if args.rate_headers else ""))
        print("# " + _common.environment(["aiohttp", "attrs", "cattrs", "kayse-async"]))
        print()
        print(counted)
        return 0
    with server_for(args.server, args.rate_headers) as server:
        ids = asyncio.run(_seed_emulator(server.url, 100)) if args.server == "emulator" else list(range(1, 1001))
        if args.warmup > 0:
            for _name, run in contenders(server.url, args.warmup, args.concurrency, ids, args.quota):
                run()
        samples = _common.interleave(
            args.rounds, contenders(server.url, args.requests, args.concurrency, ids, args.quota, args.httpx_requests)
        )
        profile = (
            profile_kayse(server.url, args.requests, args.concurrency, ids, args.quota, args.profile_top)
            if args.profile
            else None
        )
    server_note = (
        "the kayse_async emulator (rate limiting off)"
        if args.server == "emulator"
        else "a minimal aiohttp.web server answering one fixed client object"
        + (" with X-RateLimit-* headers" if args.rate_headers else "")
    )
    print(
        f"# overhead: {args.requests} GETs per run ({args.httpx_requests} for httpx) at concurrency "
        f"{args.concurrency}, median of {args.rounds} rounds"
    )
    print(f"# server: {server_note}, in another process; kayse_async quota: {args.quota}")
    print("# " + _common.environment(["aiohttp", "httpx", "attrs", "cattrs", "kayse-async"]))
    print()
    print(report(samples, {BASELINE: args.requests, OURS: args.requests, HTTPX: args.httpx_requests}))
    if profile is not None:
        print()
        print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
