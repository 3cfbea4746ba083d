"""What the long jobs (imports, deletes) share: stopping on a signal, the default journal, the resume command.

SIGINT (Ctrl-C), SIGTERM (``kill``, a service manager stopping the job) and
SIGHUP (a closed terminal or SSH session) are handled alike. The first one
asks the job to stop: it reads no more input and lets the requests already
in flight finish, for at most :data:`GRACE` seconds. A second signal, or the
end of the grace, cancels them: their batches stay in the journal as sent
without an answer, and the rerun finds out whether they were stored. Either
way the summary is printed and the exit status is 128 + the signal's number
(130, 143, 129).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from ._config import EXIT_FAILED, EXIT_OK, EXIT_USAGE

GRACE = 10.0
"""Seconds the requests in flight get to finish after the first stop signal."""
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
JOURNAL_SUFFIX = ".kayse-journal"


def exit_status(*, stopped_by: str | None, error: str | None, complete: bool) -> int:
    """0 complete, 1 not complete, 2 stopped on an error, 128 + N stopped by signal N (``stopped_by``: its name)."""
    if stopped_by:
        return 128 + signal.Signals[stopped_by].value
    return EXIT_USAGE if error else EXIT_OK if complete else EXIT_FAILED


class Stop:
    """While a job runs (``with Stop() as stop:``): the stop signals, handled as the module says.

    ``grace=None`` stops at once on the first signal (for a job made of one
    call, which cannot stop between its requests). Outside the main thread
    no handler can be installed, and Ctrl-C keeps Python's own meaning.
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

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.over()
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    @property
    def requested(self) -> bool:
        """True once a stop signal came."""
        return self.signal is not None

    @property
    def name(self) -> str:
        """``SIGTERM``."""
        return signal.Signals(self.signal).name if self.signal is not None else ""

    def interrupted(self) -> None:
        """Note a ``KeyboardInterrupt`` that came without this handler (it is Ctrl-C)."""
        self.signal = self.signal or signal.SIGINT

    def over(self) -> None:
        """The job is done: a signal from now on is only noted (the summary still prints)."""
        if self._armed and self._grace:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self._armed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signal is None
        if signum != getattr(signal, "SIGALRM", None):
            self.signal = self.signal or signum
        if not self._armed:
            return
        if first and self._grace:
            signal.setitimer(signal.ITIMER_REAL, self._grace)
            return
        self.over()
        raise KeyboardInterrupt


def default_journal(path: Path) -> Path:
    """Where an import of ``path`` keeps its journal when not told.

    Beside the input (``clients.csv.kayse-journal``) when its folder is
    writable; else in ``$XDG_STATE_HOME/kayse/`` (``~/.local/state/kayse/``),
    named after the input and a digest of its absolute path.
    """
    full = path.resolve()
    if os.access(full.parent, os.W_OK):
        return path.with_name(path.name + JOURNAL_SUFFIX)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "kayse"
    state.mkdir(parents=True, exist_ok=True)
    digest = hashlib.blake2b(str(full).encode(), digest_size=4).hexdigest()
    return state / f"{path.name}.{digest}{JOURNAL_SUFFIX}"


def command_line(argv: list[str]) -> str:
    """The command as it was typed, for the line that says how to resume; an ``--api-key`` value shows as ``***``."""
    parts, hide = ["kayse"], False
    for arg in argv:
        parts.append("***" if hide else "--api-key=***" if arg.startswith("--api-key=") else shlex.quote(arg))
        hide = arg == "--api-key"
    return " ".join(parts)
