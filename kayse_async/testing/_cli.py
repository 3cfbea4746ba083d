"""``python -m kayse_async.testing``: the emulator from the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ._emulator import Emulator
from ._faults import FAULT_KINDS
from ._ratelimit import WINDOWS


def build_parser(prog: str | None = "python -m kayse_async.testing") -> argparse.ArgumentParser:
    """The emulator's argument parser (``kayse emulator`` reuses it)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local server that behaves like the Kayse Public API (see docs/emulator.md).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    add("--port", type=int, default=8400, help="port to listen on; 0 picks a free one (default: 8400)")
    add("--api-key", required=True, help="key the main routes accept in X-API-KEY")
    add("--calls-api-key", default=None, help="key /v1/calls accepts in X-Public-Api-Key (default: --api-key)")
    add("--limit", type=int, default=500, help="requests per period and key; 0 turns limiting off (default: 500)")
    add("--period", type=float, default=3600.0, help="rate-limit period in seconds (default: 3600)")
    add("--window", choices=WINDOWS, default="fixed", help="rate-limit window mode (default: fixed)")
    add("--reset", choices=("delta", "epoch"), default="delta", help="X-RateLimit-Reset form (default: delta)")
    add("--fault-rate", type=float, default=0.0, help="share of requests given a fault, 0 to 1 (default: 0)")
    kinds = ",".join(FAULT_KINDS)
    add("--fault-kinds", default=kinds, help=f"comma-separated fault kinds (default: {kinds})")
    add("--latency-ms", type=float, default=0.0, help="latency added to every API request (default: 0)")
    add("--seed", type=int, default=None, help="seed of the fault sequence (default: random)")
    add("--max-batch", type=int, default=None, help="largest bulk upsert accepted, else 413 (default: no limit)")
    add("--clock-skew", type=float, default=0.0, help="seconds added to the server's wall clock (default: 0)")
    return parser


def emulator_from_args(args: argparse.Namespace) -> Emulator:
    """An :class:`Emulator` configured from parsed arguments, named as its parameters (ValueError if one is bad)."""
    options: dict[str, Any] = dict(vars(args))
    options["fault_kinds"] = [kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()]
    return Emulator(**options)


async def serve(emulator: Emulator) -> None:
    """Serve until SIGINT or SIGTERM, printing ``listening on URL`` once accepting."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not possible outside the main thread or on some platforms: then only cancellation stops us.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        async with emulator:
            print(f"listening on {emulator.url}", flush=True)
            await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


# The collector's thresholds while serving a heap that only grows (why: docs/emulator.md).
SERVING_GC_THRESHOLDS: tuple[int, int, int] = (50_000, 20, 20)


def run_served(emulator: Emulator) -> None:
    """Serve ``emulator`` until SIGINT/SIGTERM, with what was loaded frozen out of the collector's walks
    (unless something else froze objects already) and :data:`SERVING_GC_THRESHOLDS`; both undone on return."""
    thresholds = gc.get_threshold()
    froze = gc.get_freeze_count() == 0
    if froze:
        gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)
    try:
        asyncio.run(serve(emulator))
    finally:
        gc.set_threshold(*thresholds)
        if froze:
            gc.unfreeze()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        emulator = emulator_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    try:
        run_served(emulator)
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
