"""``kayse import``: stream a file of records through the bulk engine, with progress, a summary and exit codes."""

from __future__ import annotations

import collections
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from .._defaults import CHUNK_SIZE, CONCURRENCY
from .._wire.fields import CASE_LISTS, CASES, CLIENTS, prepare
from ..errors import APIError, AuthenticationError, BulkError, KayseError, TransportError, ValidationError
from ..models import BulkItem, BulkProgress, QuotaSnapshot
from ._config import EXIT_FAILED, EXIT_OK, Config, UsageProblem, plural, translate
from ._readers import Format, InputError, Record, Resource, count_records, detect_format, read_records
from ._render import err_console, out_console, print_json

if TYPE_CHECKING:
    from .._sync import Kayse

PLAN_RATE_PER_HOUR = 500
"""The rate a dry run plans with: the Kayse API's documented budget per key."""
SHOWN_REJECTIONS = 50
"""Rejected records listed in the human summary (``--json`` lists every one)."""

_ITEM_PATH = re.compile(r"^[a-z_]+\[\d+\]\.?")

Outcome = Literal["rejected", "not_attempted", "uncertain"]


@attrs.define
class Rejection:
    """A record that was not stored: where it is in the file and why."""

    line: int
    reason: str
    field: str | None = None
    status: Outcome = "rejected"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"line": self.line, "status": self.status, "field": self.field, "reason": self.reason}


@attrs.define
class Summary:
    """What an import did, or (``dry_run``) would do."""

    resource: Resource
    file: str
    dry_run: bool = False
    records: int = 0
    created: int = 0
    updated: int = 0
    rejected: list[Rejection] = attrs.field(factory=list)
    """Records not stored: refused (locally or by the server), or never sent."""
    uncertain: list[Rejection] = attrs.field(factory=list)
    """Records sent whose answer was lost: most likely stored, but their ids are unknown."""
    requests: int = 0
    chunks: int = 0
    chunk_size: int = CHUNK_SIZE
    concurrency: int = CONCURRENCY
    seconds: float = 0.0
    quota: QuotaSnapshot | None = None
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every record was (or would be) stored, 1 otherwise."""
        return EXIT_OK if not self.rejected and not self.uncertain and not self.interrupted else EXIT_FAILED

    def plan(self) -> dict[str, Any]:
        """The request plan of a dry run: what sending would cost at the API's documented rate."""
        windows = math.ceil(self.requests / PLAN_RATE_PER_HOUR) if self.requests else 0
        return {
            "rate_per_hour": PLAN_RATE_PER_HOUR,
            "hourly_windows": windows,
            "seconds_with_fresh_budget": max(0, windows - 1) * 3600,
            "seconds_at_steady_rate": round(self.requests * 3600 / PLAN_RATE_PER_HOUR, 1),
        }

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable summary ``--json`` prints."""
        data: dict[str, Any] = {
            "resource": self.resource,
            "file": self.file,
            "dry_run": self.dry_run,
            "records": self.records,
            "created": self.created,
            "updated": self.updated,
            "rejected_count": len(self.rejected),
            "rejected": [r.as_dict() for r in sorted(self.rejected, key=lambda r: r.line)],
            "uncertain_count": len(self.uncertain),
            "uncertain": [r.as_dict() for r in sorted(self.uncertain, key=lambda r: r.line)],
            "requests": self.requests,
            "chunk_size": self.chunk_size,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
        }
        if self.dry_run:
            data["chunks"] = self.chunks
            data["plan"] = self.plan()
        else:
            data["interrupted"] = self.interrupted
            data["quota"] = (
                None
                if self.quota is None
                else {
                    "limit": self.quota.limit,
                    "remaining": self.quota.remaining,
                    "resets_at": self.quota.resets_at.isoformat() if self.quota.resets_at else None,
                }
            )
        return data


def _why(error: KayseError | None) -> tuple[str | None, str]:
    """The field (without the bulk payload's ``clients[3].`` prefix) and the reason of an item's error."""
    if error is None:
        return None, "no reason given"
    if isinstance(error, ValidationError):
        return _ITEM_PATH.sub("", error.field) or None, error.reason
    if isinstance(error, APIError):
        field = error.body.get("field") if isinstance(error.body, dict) else None
        field_text = _ITEM_PATH.sub("", field) if isinstance(field, str) else None
        return field_text or None, f"{error.status}: {' '.join(error.message.split())}"
    return None, " ".join(str(error).split())


def _rejection(line: int, item: BulkItem[Any]) -> Rejection:
    field, reason = _why(item.error)
    if item.status == "uncertain":
        return Rejection(line, f"sent, but no answer came back: it may be stored ({reason})", field, status="uncertain")
    if item.status == "not_attempted":
        return Rejection(line, f"not sent: {reason}", field, status="not_attempted")
    return Rejection(line, reason, field)


def dry_run(resource: Resource, records: Iterator[Record], summary: Summary) -> Summary:
    """Check every record as the bulk engine would, and count the requests sending would take."""
    table = {"clients": CLIENTS, "cases": CASES, "case-lists": CASE_LISTS}[resource]
    started = time.perf_counter()
    valid = 0
    for record in records:
        summary.records += 1
        if record.fields is None:
            summary.rejected.append(Rejection(record.line, record.error or "unreadable"))
            continue
        try:
            prepare(table, record.fields)
        except ValidationError as exc:
            summary.rejected.append(Rejection(record.line, exc.reason, exc.field or None))
            continue
        valid += 1
        if record.fields.get("id") is None:
            summary.created += 1
        else:
            summary.updated += 1
    summary.chunks = math.ceil(valid / summary.chunk_size) if valid else 0
    summary.requests = summary.chunks
    summary.seconds = time.perf_counter() - started
    return summary


class _State:
    """What the progress bar shows, shared by the import loop, the bulk engine's callback and rich's refresh thread."""

    def __init__(self, kayse: Kayse, total: int, chunk_size: int, period: float) -> None:
        self.kayse = kayse
        self.total = total
        self.chunk_size = chunk_size
        self.period = period
        self.sent_done = 0
        """Records the bulk engine has answered for (counted by the import loop)."""
        self.unreadable = 0
        """Records refused by the reader (counted where the engine reads its input: another thread)."""
        self.requests = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._snapshot: QuotaSnapshot | None = None
        self._snapshot_at = 0.0

    @property
    def done(self) -> int:
        """Records with an outcome so far."""
        return self.sent_done + self.unreadable

    def on_progress(self, progress: BulkProgress) -> None:
        with self._lock:
            self.requests = max(self.requests, progress.requests)

    def forget_quota(self) -> None:
        """Drop the cached snapshot: the next frame reads the budget afresh."""
        self._snapshot = None

    def quota(self) -> QuotaSnapshot | None:
        now = time.monotonic()
        if self._snapshot is None or now - self._snapshot_at > 0.2:
            try:
                self._snapshot = self.kayse.quota
            except Exception:  # the display must never break the import
                return self._snapshot
            self._snapshot_at = now
        return self._snapshot

    def eta(self) -> float | None:
        from ._config import eta_seconds

        snap = self.quota()
        elapsed = time.monotonic() - self.started
        done = self.done
        pace = done / elapsed if done and elapsed > 0 else None
        if snap is None:
            return None
        reset_in = None
        if snap.resets_at is not None:
            reset_in = snap.resets_at.timestamp() - time.time()
        return eta_seconds(
            items_left=self.total - done,
            chunk_size=self.chunk_size,
            remaining=snap.remaining,
            limit=snap.limit,
            reset_in=reset_in,
            period=self.period,
            items_per_second=pace,
        )


class _QuotaColumn(ProgressColumn):
    """Requests spent, the quota left and the ETA the quota allows."""

    def __init__(self, state: _State) -> None:
        super().__init__()
        self._state = state

    def render(self, task: Task) -> Text:
        state = self._state
        snap = state.quota()
        quota = "quota ?" if snap is None else f"quota {snap.remaining}/{snap.limit}"
        eta = state.eta()
        eta_text = "ETA --:--" if eta is None else f"ETA {_clock(eta)}"
        return Text(f"· {state.requests:,} req · {quota} · {eta_text}", style="cyan")


def _clock(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def run_import(
    kayse: Kayse,
    resource: Resource,
    path: Path,
    fmt: Format,
    summary: Summary,
    *,
    total: int,
    journal: str | None,
    period: float,
    console: Console,
) -> Summary:
    """Send every record of ``path`` through the bulk engine and fill ``summary`` with what happened."""
    state = _State(kayse, total, summary.chunk_size, period)
    pending: collections.deque[tuple[int, bool]] = collections.deque()
    stopped: list[InputError] = []
    started = time.perf_counter()

    def items() -> Iterator[dict[str, Any]]:
        # Runs where the bulk engine reads its input: it must only read, never print.
        try:
            for record in read_records(path, fmt, resource):
                summary.records += 1
                if record.fields is None:
                    summary.rejected.append(Rejection(record.line, record.error or "unreadable"))
                    state.unreadable += 1
                    continue
                pending.append((record.line, record.fields.get("id") is not None))
                yield record.fields
        except InputError as exc:
            stopped.append(exc)

    progress = Progress(
        TextColumn(f"[bold]{resource}[/]"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        _QuotaColumn(state),
        console=console,
        transient=False,
    )
    task = progress.add_task("import", total=total)
    try:
        with progress:
            for item in _outcomes(kayse, resource, items(), summary, journal, state.on_progress):
                if isinstance(item.error, AuthenticationError):
                    # A refused key refuses every record: a configuration error, not rejected records.
                    raise item.error
                line, has_id = pending.popleft()
                _count(summary, line, has_id, item)
                state.sent_done += 1
                progress.update(task, completed=state.done)
            state.forget_quota()  # the last frame shows the budget as it is at the end
            progress.update(task, completed=state.done)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.requests = state.requests
        summary.seconds = time.perf_counter() - started
        try:
            summary.quota = kayse.quota
        except Exception:  # a summary without the quota beats no summary
            summary.quota = None
    if stopped:
        summary.interrupted = True
        summary.rejected.append(Rejection(0, f"reading stopped: {stopped[0]}"))
    return summary


def _count(summary: Summary, line: int, has_id: bool, item: BulkItem[Any]) -> None:
    if item.status == "uncertain":
        summary.uncertain.append(_rejection(line, item))
        return
    if item.status != "succeeded":
        summary.rejected.append(_rejection(line, item))
        return
    action = getattr(item.value, "action", None)
    if action == "created" or (action is None and not has_id):
        summary.created += 1
    else:
        summary.updated += 1


def _outcomes(
    kayse: Kayse,
    resource: Resource,
    items: Iterator[dict[str, Any]],
    summary: Summary,
    journal: str | None,
    on_progress: Callable[[BulkProgress], None],
) -> Iterator[BulkItem[Any]]:
    """One ``BulkItem`` per sent record, in input order."""
    options: dict[str, Any] = {
        "chunk_size": summary.chunk_size,
        "concurrency": summary.concurrency,
        "journal": journal,
        "progress": on_progress,
    }
    if resource == "clients":
        yield from kayse.clients.bulk_upsert_iter(items, **options)
        return
    if resource == "cases":
        yield from kayse.cases.bulk_upsert_iter(items, **options)
        return
    # Case lists have no streamed variant: they are few, and their bulk call returns id and action.
    batch = list(items)
    if not batch:
        return
    try:
        stored = kayse.case_lists.bulk_upsert(batch, **options)
    except BulkError as exc:
        yield from exc.result.items
        return
    for index, value in enumerate(stored):
        yield BulkItem(index=index, status="succeeded", value=value)


def print_summary(summary: Summary, console: Console) -> None:
    """The human summary of an import or a dry run."""
    name = summary.resource
    if summary.dry_run:
        plan = summary.plan()
        console.print(
            f"[bold]Dry run[/] of {plural(summary.records, 'record')} of {name} from {summary.file}: nothing sent"
        )
        console.print(f"  would create  {summary.created:,}")
        console.print(f"  would update  {summary.updated:,}")
        console.print(f"  rejected      {len(summary.rejected):,}")
        console.print(
            f"  requests      {summary.requests:,} ({plural(summary.chunks, 'chunk')} of up to "
            f"{summary.chunk_size:,}, {summary.concurrency} at a time)"
        )
        if summary.requests <= PLAN_RATE_PER_HOUR:
            when = f"fits in one hour's budget ({summary.requests} of {PLAN_RATE_PER_HOUR} requests)"
        else:
            when = (
                f"{plan['hourly_windows']} hourly windows: about {_clock(plan['seconds_with_fresh_budget'])} "
                f"if the key's budget is unused at start, {_clock(plan['seconds_at_steady_rate'])} at a steady "
                f"{PLAN_RATE_PER_HOUR}/h"
            )
        console.print(f"  time at {PLAN_RATE_PER_HOUR}/h {when}")
    else:
        verb = "Interrupted" if summary.interrupted else "Imported"
        console.print(f"[bold]{verb}[/] {name} from {summary.file} in {summary.seconds:.1f} s")
        console.print(f"  created   {summary.created:,}")
        console.print(f"  updated   {summary.updated:,}")
        console.print(f"  rejected  {len(summary.rejected):,}")
        if summary.uncertain:
            console.print(f"  uncertain {len(summary.uncertain):,} (sent, answer lost: most likely stored)")
        quota = ""
        if summary.quota is not None:
            quota = f" (quota left: {summary.quota.remaining:,} of {summary.quota.limit:,})"
        console.print(f"  requests  {summary.requests:,}{quota}")
    if summary.rejected:
        console.print("[bold red]Rejected[/]:")
        ordered = sorted(summary.rejected, key=lambda r: r.line)
        for rejection in ordered[:SHOWN_REJECTIONS]:
            field = f"{rejection.field}: " if rejection.field else ""
            where = f"line {rejection.line}" if rejection.line else "file"
            console.print(f"  {where}: {field}{rejection.reason}", markup=False, highlight=False)
        if len(ordered) > SHOWN_REJECTIONS:
            console.print(f"  ... and {len(ordered) - SHOWN_REJECTIONS:,} more (--json lists every one)")
    if summary.uncertain:
        first, last = min(r.line for r in summary.uncertain), max(r.line for r in summary.uncertain)
        console.print(
            f"[bold yellow]Uncertain[/]: {plural(len(summary.uncertain), 'record')} between lines {first} and {last} "
            "were sent but their answer was lost; the server most likely stored them. Check them before "
            "sending them again: a resend could create duplicates."
        )
    if summary.interrupted and not summary.dry_run:
        console.print("Stopped before the end: run the same command again with the same --journal to resume.")


@click.command("import")
@click.argument("resource", type=click.Choice(["clients", "cases", "case-lists"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "json"]), help="Default: from the extension.")
@click.option("--dry-run", is_flag=True, help="Check every record and print the request plan; send nothing.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Record finished chunks here; rerun with the same journal to resume without duplicates.",
)
@click.option(
    "--chunk-size", type=click.IntRange(min=1), default=CHUNK_SIZE, show_default=True, help="Records per request."
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    default=CONCURRENCY,
    show_default=True,
    help="Requests at once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout, and nothing else.")
@click.pass_obj
def import_command(
    config: Config,
    resource: Resource,
    file: Path,
    fmt: str | None,
    dry_run: bool,
    journal: Path | None,
    chunk_size: int,
    concurrency: int,
    as_json: bool,
) -> None:
    """Create or update records from FILE (CSV, JSON Lines or a JSON array).

    Field names are the API's (CSV: the header row). Records without an id are
    created, records with an id are updated (a full replacement). Exit status:
    0 every record stored, 1 some rejected (or uncertain), 2 usage or configuration error.
    """
    try:
        detected = detect_format(file, fmt)
        if not file.is_file():
            raise InputError(f"no such file: {file}")
        total = count_records(file, detected, resource)
    except InputError as exc:
        raise UsageProblem(str(exc)) from None
    summary = Summary(
        resource=resource, file=str(file), dry_run=dry_run, chunk_size=chunk_size, concurrency=concurrency
    )
    console = out_console()
    if dry_run:
        dry_run_summary = _dry(resource, file, detected, summary)
        _finish(dry_run_summary, as_json, console)
        return
    with config.client(quiet=as_json) as kayse:
        try:
            run_import(
                kayse,
                resource,
                file,
                detected,
                summary,
                total=total,
                journal=str(journal) if journal is not None else None,
                period=config.period,
                console=err_console(),
            )
        except (KayseError, TransportError) as exc:
            raise translate(exc) from None
    _finish(summary, as_json, console)


def _dry(resource: Resource, file: Path, fmt: Format, summary: Summary) -> Summary:
    try:
        return dry_run(resource, read_records(file, fmt, resource), summary)
    except InputError as exc:
        raise UsageProblem(str(exc)) from None


def _finish(summary: Summary, as_json: bool, console: Console) -> None:
    if as_json:
        print_json(summary.as_dict())
    else:
        print_summary(summary, console)
    code = 130 if summary.interrupted and not summary.rejected and not summary.uncertain else summary.exit_code
    if code:
        click.get_current_context().exit(code)
