"""What the long jobs (imports, deletes) share: progress, stop signals, the journal's place, the resume command.

Progress goes to stderr: a bar at a terminal, else (cron, systemd, CI) plain whole lines at start,
every ``--progress-interval`` seconds, at each new rate-limit window and at the end.

SIGINT, SIGTERM and SIGHUP are handled alike. The first asks the job to stop: it reads no more
input and lets the requests in flight finish, for at most :data:`GRACE` seconds. A second signal,
or the end of the grace, cancels them (their batches stay in the journal as sent, and the rerun
finds out). Either way the summary is printed, with the command that resumes, and the exit status
is 128 + the signal's number.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs
import click
from rich.live import Live
from rich.text import Text

from ._config import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Config
from ._render import clock, err_console, local_time, out_console, print_json

if TYPE_CHECKING:
    from rich.console import Console

    from .. import Kayse
    from ..models import BulkProgress, QuotaSnapshot

F = TypeVar("F", bound=Callable[..., Any])
Mode = Literal["auto", "bar", "plain", "none"]

GRACE = 10.0  # seconds the requests in flight get to finish after the first stop signal
POLL = 1.0  # seconds between two looks at the quota for a new window, in plain mode
RENEWED = dt.timedelta(seconds=1.5)  # how far the Reset must move on to be a new window (it rounds to seconds)
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
JOURNAL_SUFFIX = ".kayse-journal"


def progress_options(command: F) -> F:
    """The ``--progress`` and ``--progress-interval`` options of a long job."""
    command = click.option("--progress-interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                           envvar="KAYSE_PROGRESS_INTERVAL", show_envvar=True, metavar="SECONDS",
                           help="Seconds between plain progress lines (one also comes at each new rate-limit window).",
                           )(command)  # fmt: skip
    return click.option("--progress", type=click.Choice(["auto", "bar", "plain", "none"]), default="auto",
                        show_default=True, help="On stderr: a bar, plain lines for a log file, or nothing; auto: a "
                        "bar at a terminal, else lines.")(command)  # fmt: skip


class Stop:
    """The stop signals while a job runs (``with Stop() as stop:``), handled as the module says.

    ``grace=None`` stops at once on the first signal (a job of one call cannot stop between its
    requests). Outside the main thread no handler can be installed: Ctrl-C keeps its own meaning.
    """

    def __init__(self, *, grace: float | None = GRACE) -> None:
        self.signal: int | None = None
        self._grace = grace if hasattr(signal, "setitimer") else None
        self._armed = False
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> Stop:
        with contextlib.suppress(ValueError):  # not the main thread
            for signum in (*SIGNALS, *([signal.SIGALRM] if self._grace else [])):
                self._saved[signum] = signal.signal(signum, self._handle)
            self._armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.over()
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    @property
    def requested(self) -> bool:
        """True once a stop signal came."""
        return self.signal is not None

    @property
    def name(self) -> str | None:
        """``SIGTERM``, or None."""
        return None if self.signal is None else signal.Signals(self.signal).name

    def over(self) -> None:
        """The job is over: a signal from now on is only noted (the summary still prints)."""
        if self._armed and self._grace:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self._armed = False

    def _handle(self, signum: int, frame: object) -> None:
        first = self.signal is None
        if signum != getattr(signal, "SIGALRM", None):
            self.signal = self.signal or signum
        if self._armed and first and self._grace:
            signal.setitimer(signal.ITIMER_REAL, self._grace)
        elif self._armed:
            self.over()
            raise KeyboardInterrupt


def eta_seconds(quota: QuotaSnapshot, items_left: int, chunk_size: int, pace: float | None) -> float | None:
    """How long the rest of a job should take, from the quota as the server told it.

    While the budget left covers the requests still needed, the ``pace`` so far (items a second)
    decides. Beyond it, the wait for the server's Reset, then one learned ``window`` per ``limit``
    requests. None while unknown: no pace yet, or the server has not told enough (no Reset and no
    window, or more windows needed and no window length learned).
    """
    if items_left <= 0:
        return 0.0
    requests_left, remaining, window = math.ceil(items_left / max(1, chunk_size)), quota.remaining, quota.window
    if remaining is None or requests_left <= remaining:
        return items_left / pace if pace and remaining is not None else None
    windows = math.ceil((requests_left - remaining) / quota.limit) if quota.limit > 0 else 0
    first = quota.resets_at.timestamp() - time.time() if quota.resets_at else window
    if not windows or first is None or (windows > 1 and window is None):
        return None
    return max(0.0, first) + (windows - 1) * (window or 0.0)


@attrs.define(eq=False)
class Meter:
    """A running job: its client, stop signals and counts, written by the job and read by the display."""

    kayse: Kayse
    stop: Stop
    name: str
    total: int
    per_request: int
    done: int = 0
    requests: int = 0
    started: float = attrs.field(factory=time.monotonic)
    _snapshot: QuotaSnapshot | None = None
    _snapshot_at: float = -math.inf

    def on_progress(self, progress: BulkProgress) -> None:
        """The bulk engine's ``progress`` callback: the requests spent so far."""
        self.requests = max(self.requests, progress.requests)

    def quota(self, *, fresh: bool = False) -> QuotaSnapshot | None:
        """The budget as the client knows it (no request), read at most five times a second."""
        if fresh or time.monotonic() - self._snapshot_at > 0.2:
            with contextlib.suppress(Exception):  # the display must never break the job
                self._snapshot, self._snapshot_at = self.kayse.quota, time.monotonic()
        return self._snapshot

    def tail(self, *, resets: bool = False) -> str:
        """``10 req · quota 490/500 · ETA 0:12``: what the bar shows after its count (a log line: when it resets)."""
        snap, elapsed = self.quota(), time.monotonic() - self.started
        pace = self.done / elapsed if self.done and elapsed > 0 else None
        eta = None if snap is None else eta_seconds(snap, self.total - self.done, self.per_request, pace)
        quota = "quota ?" if snap is None else f"quota {'?' if snap.remaining is None else snap.remaining}/{snap.limit}"
        if resets and snap and snap.resets_at:
            quota += f" (resets {local_time(snap.resets_at)[11:]})"
        text = f"{self.requests:,} req · {quota} · ETA {'--:--' if eta is None else clock(eta)}"
        return text + (f" · stopping ({self.stop.name})" if self.stop.requested else "")

    def line(self) -> str:
        """One plain progress line, whole in itself, for a log file."""
        elapsed = time.monotonic() - self.started
        percent = f" ({100 * self.done // self.total}%)" if self.total else ""
        rate = f"{self.done / elapsed if elapsed > 0 else 0.0:,.1f}/s"
        return f"{local_time()} {self.name} {self.done:,}/{self.total:,}{percent} · {rate} · {self.tail(resets=True)}"


@contextlib.contextmanager
def running(
    config: Config,
    name: str,
    total: int,
    *,
    per_request: int,
    progress: Mode,
    interval: float,
    quiet: bool,
    grace: float | None = GRACE,
) -> Iterator[Meter]:
    """A job's client, stop signals and progress display; a stop that cancels the job ends the block quietly."""
    with Stop(grace=grace) as stop, config.client(quiet=quiet) as kayse:
        meter = Meter(kayse, stop, name, total, per_request)
        if progress == "auto":
            progress = "bar" if sys.stderr.isatty() else "plain"
        display = _bar(meter) if progress == "bar" else _plain(meter, interval) if progress == "plain" else None
        try:
            with display or contextlib.nullcontext():
                yield meter
        except KeyboardInterrupt:
            stop.signal = stop.signal or signal.SIGINT  # without a handler (not the main thread): Ctrl-C
        finally:
            stop.over()


@contextlib.contextmanager
def _bar(meter: Meter) -> Iterator[None]:
    def frame() -> Text:  # drawn four times a second, so that the ETA moves while the job waits on the quota
        filled = 20 * meter.done // meter.total if meter.total else 20
        text = Text.assemble((meter.name, "bold"), " ", ("━" * filled, "magenta"), ("━" * (20 - filled), "grey23"))
        return text.append(f" {meter.done}/{meter.total} ").append(f"· {meter.tail()}", style="cyan")

    console = err_console()
    try:
        with Live(get_renderable=frame, console=console):
            try:
                yield
            finally:
                meter.quota(fresh=True)  # the last frame shows the budget as it is at the end
    finally:
        if not console.is_interactive:
            console.print()  # a terminal ends the frame's line itself


@contextlib.contextmanager
def _plain(meter: Meter, interval: float) -> Iterator[None]:
    done = threading.Event()

    def write() -> None:
        # A line at start, every interval, and when the quota's reset moves on by more than its rounding.
        _say(meter.line())
        last, reset = time.monotonic(), None
        while not done.wait(min(POLL, interval)):
            snap = meter.quota(fresh=True)
            now = snap.resets_at if snap else None
            if (now and reset and now > reset + RENEWED) or time.monotonic() - last >= interval:
                _say(meter.line())
                last = time.monotonic()
            reset = now or reset

    thread = threading.Thread(target=write, name="kayse-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        meter.quota(fresh=True)
        _say(meter.line())


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # a closed stderr must not break the job
        print(line, file=sys.stderr, flush=True)


@attrs.define(kw_only=True)
class Report:
    """How a long job ended, as both its summaries (human and ``--json``) and its exit status say it."""

    signal: str | None = None  # the signal that stopped the job (``SIGTERM``), if one did
    error: str | None = None  # the error that stopped the job (no server, a wrong URL), if one did
    resume: str | None = None  # the command line that resumes the job (``--api-key``'s value hidden)

    @property
    def complete(self) -> bool:
        """True when every record was done as asked."""
        raise NotImplementedError

    @property
    def exit_code(self) -> int:
        """0 complete, 1 not complete, 2 stopped on an error, 128 + N stopped by signal N."""
        if self.signal:
            return 128 + signal.Signals[self.signal].value
        return EXIT_USAGE if self.error else EXIT_OK if self.complete else EXIT_FAILED

    def verb(self, done: str) -> str:
        """How the summary starts: ``done`` (``Imported``), or what stopped the job first."""
        stopped = f"Interrupted by {self.signal}" if self.signal else "Stopped" if self.error else None
        return f"{stopped}: {done.lower()}" if stopped else done

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` summary."""
        own = attrs.filters.include(*attrs.fields(Report))
        return {"interrupted": self.signal is not None} | attrs.asdict(self, filter=own)

    def print(self, console: Console) -> None:
        """The human summary, on stdout."""
        raise NotImplementedError

    def finish(self, as_json: bool) -> None:
        """Print the summary, the stopping error (one line on stderr), and exit with the status."""
        if as_json:
            print_json(self.as_dict())
        else:
            self.print(out_console())
        if self.error:
            click.echo(f"Error: {self.error}", err=True)
        if self.exit_code:
            click.get_current_context().exit(self.exit_code)


def default_journal(path: Path) -> Path:
    """Where an import of ``path`` keeps its journal when not told: beside it, if its folder is writable,
    else in ``$XDG_STATE_HOME/kayse/`` (``~/.local/state/kayse/``), named after it and its full path."""
    full = path.resolve()
    if os.access(full.parent, os.W_OK):
        return path.with_name(path.name + JOURNAL_SUFFIX)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "kayse"
    state.mkdir(parents=True, exist_ok=True)
    digest = hashlib.blake2b(str(full).encode(), digest_size=4).hexdigest()
    return state / f"{path.name}.{digest}{JOURNAL_SUFFIX}"


def command_line(ctx: click.Context, *extra: str) -> str:
    """The command as it was typed (and ``extra``), for the line that resumes it; ``--api-key``'s value is ``***``."""
    parts, hide = ["kayse"], False
    for arg in [*ctx.meta.get("kayse.argv", []), *extra]:
        parts.append("***" if hide else "--api-key=***" if arg.startswith("--api-key=") else shlex.quote(arg))
        hide = arg == "--api-key"
    return " ".join(parts)
