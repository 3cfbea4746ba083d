"""Progress of a long job on stderr: a bar at a terminal, plain lines in a log file, or nothing.

``--progress auto`` (the default) draws the bar when stderr is a terminal and
writes plain lines otherwise (cron, systemd, CI): one every
``--progress-interval`` seconds and one whenever the rate-limit window
changes, each a whole line with the time, records done of the total, the
rate, the requests spent, the quota left and the ETA.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from ._render import clock, err_console, local_time

if TYPE_CHECKING:
    from .._sync import Kayse
    from ..models import BulkProgress, QuotaSnapshot
    from ._jobs import Stop

F = TypeVar("F", bound=Callable[..., Any])

Mode = Literal["auto", "bar", "plain", "none"]
INTERVAL = 30.0
"""Seconds between two plain progress lines (``--progress-interval``)."""
POLL = 1.0
"""Seconds between two looks at the quota for a window change, in plain mode."""
RENEWED = dt.timedelta(seconds=1.5)
"""How far the quota's reset must move on to count as a new window (its header rounds to whole seconds)."""


def eta_seconds(
    *,
    items_left: int,
    chunk_size: int,
    remaining: int,
    limit: int,
    reset_in: float | None,
    period: float,
    items_per_second: float | None,
) -> float | None:
    """How long the rest of a job should take, from the quota.

    While the budget left covers the requests still needed, the pace so far
    decides (None before there is one). Beyond it, the wait for the window to
    reset, then a window per ``limit`` requests, dominates: each window's
    requests are sent at its start.
    """
    if items_left <= 0:
        return 0.0
    requests_left = math.ceil(items_left / max(1, chunk_size))
    if requests_left <= remaining:
        return items_left / items_per_second if items_per_second else None
    if limit <= 0:
        return None
    waits = math.ceil((requests_left - remaining) / limit)
    return max(0.0, period if reset_in is None else reset_in) + (waits - 1) * period


def progress_options(command: F) -> F:
    """The ``--progress`` and ``--progress-interval`` options of a long job."""
    command = click.option(
        "--progress-interval",
        type=click.FloatRange(min=0.1),
        default=INTERVAL,
        show_default=True,
        envvar="KAYSE_PROGRESS_INTERVAL",
        show_envvar=True,
        metavar="SECONDS",
        help="Seconds between plain progress lines (a line also comes at each new rate-limit window).",
    )(command)
    return click.option(
        "--progress",
        type=click.Choice(["auto", "bar", "plain", "none"]),
        default="auto",
        show_default=True,
        help="On stderr: a bar, plain lines for a log file, or nothing; auto: a bar at a terminal, else lines.",
    )(command)


class Meter:
    """What a running job has done: written by the job, read by the display (from another thread too)."""

    def __init__(self, kayse: Kayse, name: str, total: int, *, per_request: int, period: float, stop: Stop) -> None:
        self.kayse, self.name, self.total, self.per_request, self.period = kayse, name, total, per_request, period
        self.stop = stop
        self.done = 0
        self.requests = 0
        self.started = time.monotonic()
        self._snapshot: QuotaSnapshot | None = None
        self._snapshot_at = -math.inf

    def on_progress(self, progress: BulkProgress) -> None:
        """The bulk engine's ``progress`` callback: the requests spent so far."""
        self.requests = max(self.requests, progress.requests)

    def quota(self, *, fresh: bool = False) -> QuotaSnapshot | None:
        """The budget as the client knows it (no request), read at most five times a second."""
        if fresh or time.monotonic() - self._snapshot_at > 0.2:
            with contextlib.suppress(Exception):  # the display must never break the job
                self._snapshot = self.kayse.quota
                self._snapshot_at = time.monotonic()
        return self._snapshot

    def eta(self) -> float | None:
        """Seconds left, from the pace so far and the quota."""
        snap = self.quota()
        if snap is None:
            return None
        elapsed = time.monotonic() - self.started
        return eta_seconds(
            items_left=self.total - self.done,
            chunk_size=self.per_request,
            remaining=snap.remaining,
            limit=snap.limit,
            reset_in=None if snap.resets_at is None else snap.resets_at.timestamp() - time.time(),
            period=self.period,
            items_per_second=self.done / elapsed if self.done and elapsed > 0 else None,
        )

    def tail(self) -> str:
        """``10 req · quota 490/500 · ETA 0:12``: what the bar shows after its count."""
        snap = self.quota()
        quota = "quota ?" if snap is None else f"quota {snap.remaining}/{snap.limit}"
        eta = self.eta()
        text = f"{self.requests:,} req · {quota} · ETA {'--:--' if eta is None else clock(eta)}"
        return text + (f" · stopping ({self.stop.name})" if self.stop.requested else "")

    def line(self) -> str:
        """One plain progress line, whole in itself, for a log file."""
        elapsed = time.monotonic() - self.started
        percent = f" ({100 * self.done // self.total}%)" if self.total else ""
        snap = self.quota()
        resets = f" (resets {local_time(snap.resets_at)[11:]})" if snap and snap.resets_at else ""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return (
            f"{local_time()} {self.name} {self.done:,}/{self.total:,}{percent} · {rate:,.1f}/s · "
            f"{self.tail().replace(' · ETA', resets + ' · ETA', 1)}"
        )


class _Tail(ProgressColumn):
    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter

    def render(self, task: Task) -> Text:
        return Text(f"· {self.meter.tail()}", style="cyan")


@contextlib.contextmanager
def shown(meter: Meter, mode: Mode, interval: float = INTERVAL) -> Iterator[Callable[[], None]]:
    """Show ``meter`` on stderr while the block runs; yields the function to call when its counts change."""
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "plain"
    if mode == "none":
        yield lambda: None
    elif mode == "bar":
        columns = (TextColumn(f"[bold]{meter.name}[/]"), BarColumn(bar_width=20), MofNCompleteColumn(), _Tail(meter))
        with Progress(*columns, console=err_console()) as bar:
            task = bar.add_task(meter.name, total=meter.total)
            yield lambda: bar.update(task, completed=meter.done)
            meter.quota(fresh=True)  # the last frame shows the budget as it is at the end
            bar.update(task, completed=meter.done)
    else:
        done = threading.Event()
        thread = threading.Thread(target=_plain, args=(meter, interval, done), name="kayse-progress", daemon=True)
        thread.start()
        try:
            yield lambda: None
        finally:
            done.set()
            thread.join()
            meter.quota(fresh=True)
            _say(meter.line())


def _plain(meter: Meter, interval: float, done: threading.Event) -> None:
    """Write a line at start, every ``interval`` seconds, and when the quota's window changes."""
    _say(meter.line())
    last, window = time.monotonic(), meter.quota()
    while not done.wait(min(POLL, interval)):
        snap = meter.quota(fresh=True)
        # A new window: the reset moved on by more than the rounding of the server's header (whole seconds).
        renewed = bool(
            snap and window and snap.resets_at and window.resets_at and snap.resets_at > window.resets_at + RENEWED
        )
        if renewed or time.monotonic() - last >= interval:
            _say(meter.line())
            last = time.monotonic()
        if snap is not None and snap.resets_at is not None:
            window = snap


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # a closed stderr must not break the job
        print(line, file=sys.stderr, flush=True)
