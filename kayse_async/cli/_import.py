"""``kayse import``: stream a file of records through the bulk engine, with progress, a summary and exit codes."""

from __future__ import annotations

import collections
import contextlib
import math
import re
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import click
from rich.console import Console

from .._defaults import CHUNK_SIZE, CONCURRENCY
from .._resources._base import prepare_upsert
from ..errors import APIError, AuthenticationError, BulkError, ConfigurationError, KayseError, ValidationError
from ..models import BulkItem, QuotaSnapshot
from ._config import EXIT_OK, Config, UsageProblem, translate
from ._jobs import Stop, command_line, default_journal, exit_status
from ._progress import Meter, Mode, progress_options, shown
from ._readers import (
    ENCODING,
    TABLES,
    Format,
    InputError,
    Record,
    Resource,
    check_encoding,
    detect_format,
    read_records,
    scan,
)
from ._render import clock, out_console, plural, print_json

if TYPE_CHECKING:
    from .._sync import Kayse

PLAN_RATE_PER_HOUR = 500
"""The rate a dry run plans with: the Kayse API's documented budget per key."""
SHOWN_REJECTIONS = 50
"""Rejected records listed in the human summary (``--json`` lists every one)."""

_API_NAME: dict[Resource, str] = {"clients": "clients", "cases": "cases", "case-lists": "case_lists"}
_ITEM_PATH = re.compile(r"^[a-z_]+\[\d+\]\.?")
_JOURNAL_ITEM = re.compile(r"input item (\d+)")

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
    total: int = 0
    """Records in the file (the up-front read)."""
    dry_run: bool = False
    records: int = 0
    """Records read by this run (fewer than ``total`` when it stopped)."""
    created: int = 0
    updated: int = 0
    rejected: list[Rejection] = attrs.field(factory=list)
    """Records not stored: refused (locally or by the server), or never sent."""
    uncertain: list[Rejection] = attrs.field(factory=list)
    """Records sent whose answer was lost: most likely stored, but their ids are unknown."""
    pending: int = 0
    """Records handed to the engine without an outcome when the job stopped (in flight, or about to be)."""
    requests: int = 0
    chunks: int = 0
    chunk_size: int = CHUNK_SIZE
    concurrency: int = CONCURRENCY
    seconds: float = 0.0
    quota: QuotaSnapshot | None = None
    signal: str | None = None
    """The signal that stopped the job (``SIGTERM``), if one did."""
    error: str | None = None
    """The error that stopped the job (no server, a wrong URL), if one did."""
    journal: str | None = None
    resume: str | None = None

    @property
    def not_done(self) -> int:
        """Records with no outcome: never read, or without an answer when the job stopped."""
        return self.total - self.created - self.updated - len(self.rejected) - len(self.uncertain)

    @property
    def exit_code(self) -> int:
        """0 every record stored, 1 some not, 2 the job stopped on an error, 128 + N stopped by signal N."""
        complete = not self.rejected and not self.uncertain and (self.dry_run or not self.not_done)
        return exit_status(stopped_by=self.signal, error=self.error, complete=complete)

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
            return data | {"chunks": self.chunks, "plan": self.plan()}
        quota = self.quota
        resets = quota.resets_at.isoformat() if quota is not None and quota.resets_at else None
        return data | {
            "not_done": self.not_done,
            "pending": self.pending,
            "interrupted": self.signal is not None,
            "signal": self.signal,
            "error": self.error,
            "journal": self.journal,
            "resume": self.resume,
            "quota": None
            if quota is None
            else {"limit": quota.limit, "remaining": quota.remaining, "resets_at": resets},
        }


def _rejection(line: int, item: BulkItem[Any], unreadable: str | None) -> Rejection:
    """The line's outcome from the engine's: the field without the batch's ``clients[3].``, the reason."""
    error = item.error
    field: str | None = None
    if unreadable is not None:  # the reader refused it; the engine only kept its place
        reason = unreadable
    elif isinstance(error, ValidationError):
        field, reason = _ITEM_PATH.sub("", error.field) or None, error.reason
    elif isinstance(error, APIError):
        named = error.body.get("field") if isinstance(error.body, dict) else None
        field = _ITEM_PATH.sub("", named) or None if isinstance(named, str) else None
        reason = f"{error.status}: {' '.join(error.message.split())}"
    else:
        reason = " ".join(str(error or "no reason given").split())
    if item.status == "uncertain":
        return Rejection(line, f"sent, but no answer came back: it may be stored ({reason})", field, "uncertain")
    if item.status == "not_attempted":
        return Rejection(line, f"not sent: {reason}", field, "not_attempted")
    return Rejection(line, reason, field)


def plan_records(resource: Resource, records: Iterator[Record], summary: Summary) -> Summary:
    """Check every record as the bulk engine would, and count the requests sending would take."""
    prepare = prepare_upsert(TABLES[resource], _API_NAME[resource])
    started = time.perf_counter()
    for record in records:
        summary.records += 1
        try:
            if record.fields is None:
                raise ValidationError("", record.error or "unreadable")
            prepare(record.fields, "")
        except ValidationError as exc:
            summary.rejected.append(Rejection(record.line, exc.reason, exc.field or None))
            continue
        if record.fields.get("id") is None:
            summary.created += 1
        else:
            summary.updated += 1
    summary.chunks = summary.requests = math.ceil((summary.created + summary.updated) / summary.chunk_size)
    summary.seconds = time.perf_counter() - started
    return summary


def run_import(
    kayse: Kayse,
    summary: Summary,
    records: Iterator[Record],
    *,
    stop: Stop,
    show: Callable[[Meter], contextlib.AbstractContextManager[Callable[[], None]]],
    period: float,
) -> Summary:
    """Send ``records`` through the bulk engine and fill ``summary`` with what happened.

    Every record is handed to the engine, an unreadable one too (as a
    placeholder the engine refuses): its place in the engine's input is its
    place in the file, so a journal stays valid when a refused line is mended.
    """
    meter = Meter(kayse, summary.resource, summary.total, per_request=summary.chunk_size, period=period, stop=stop)
    pending: collections.deque[tuple[int, bool, str | None]] = collections.deque()
    started = time.perf_counter()

    def items() -> Iterator[dict[str, Any] | None]:
        # Runs where the bulk engine reads its input: it must only read, never print.
        for record in records:
            if stop.requested:
                return  # the engine finishes what it holds, and sends nothing more
            summary.records += 1
            pending.append((record.line, bool(record.fields and record.fields.get("id") is not None), record.error))
            yield record.fields

    options = {"chunk_size": summary.chunk_size, "concurrency": summary.concurrency, "progress": meter.on_progress}
    try:
        with show(meter) as update, contextlib.closing(_outcomes(kayse, summary, items(), options)) as stream:
            for item in stream:
                if isinstance(item.error, AuthenticationError):
                    # A refused key refuses every record: a configuration error, not rejected records.
                    raise item.error
                if item.status == "not_attempted":
                    # No server, a wrong URL, the budget refused: every record after it would say the same.
                    summary.error = translate(item.error or KayseError("the job stopped")).format_message()
                    break
                line, has_id, unreadable = pending.popleft()
                _count(summary, line, has_id, item, unreadable)
                meter.done = summary.records - len(pending)
                update()
    except KeyboardInterrupt:
        stop.interrupted()
    except InputError as exc:  # the file changed since it was read up front
        summary.error = str(exc)
    except ConfigurationError as exc:  # the journal belongs to another input, or is in use
        text = str(exc)
        if pending and _JOURNAL_ITEM.search(text):  # raised as the engine read that record: the last one
            text = _JOURNAL_ITEM.sub(f"line {pending[-1][0]}", text)
        raise UsageProblem(f"{text}; the journal is {summary.journal}") from None
    finally:
        stop.over()
        summary.signal = stop.name or None
        summary.pending = len(pending)
        summary.requests = meter.requests
        summary.seconds = time.perf_counter() - started
        summary.quota = meter.quota(fresh=True)
    return summary


def _count(summary: Summary, line: int, has_id: bool, item: BulkItem[Any], unreadable: str | None) -> None:
    if item.status == "uncertain":
        summary.uncertain.append(_rejection(line, item, unreadable))
    elif item.status != "succeeded":
        summary.rejected.append(_rejection(line, item, unreadable))
    elif (action := getattr(item.value, "action", None)) == "created" or (action is None and not has_id):
        summary.created += 1
    else:
        summary.updated += 1


def _outcomes(
    kayse: Kayse, summary: Summary, items: Iterator[Any], options: dict[str, Any]
) -> Generator[BulkItem[Any]]:
    """One ``BulkItem`` per record, in input order."""
    options["journal"] = summary.journal
    if summary.resource != "case-lists":
        resource = kayse.clients if summary.resource == "clients" else kayse.cases
        yield from resource.bulk_upsert_iter(items, **options)
        return
    # Case lists have no streamed variant: they are few, and their bulk call returns id and action.
    batch = list(items)
    try:
        stored = kayse.case_lists.bulk_upsert(batch, **options) if batch else []
    except BulkError as exc:
        yield from exc.result.items
        return
    for index, value in enumerate(stored):
        yield BulkItem(index=index, status="succeeded", value=value)


def print_summary(summary: Summary, console: Console) -> None:
    """The human summary of an import or a dry run."""
    say = console.print
    if summary.dry_run:
        plan = summary.plan()
        what = f"{plural(summary.records, 'record')} of {summary.resource} from {summary.file}"
        say(f"[bold]Dry run[/] of {what}: nothing sent")
        say(f"  would create  {summary.created:,}\n  would update  {summary.updated:,}")
        say(f"  rejected      {len(summary.rejected):,}")
        say(
            f"  requests      {summary.requests:,} ({plural(summary.chunks, 'chunk')} of up to "
            f"{summary.chunk_size:,}, {summary.concurrency} at a time)"
        )
        if summary.requests <= PLAN_RATE_PER_HOUR:
            when = f"fits in one hour's budget ({summary.requests} of {PLAN_RATE_PER_HOUR} requests)"
        else:
            when = (
                f"{plan['hourly_windows']} hourly windows: about {clock(plan['seconds_with_fresh_budget'])} "
                f"if the key's budget is unused at start, {clock(plan['seconds_at_steady_rate'])} at a steady "
                f"{PLAN_RATE_PER_HOUR}/h"
            )
        say(f"  time at {PLAN_RATE_PER_HOUR}/h {when}")
    else:
        verb = f"Interrupted by {summary.signal}:" if summary.signal else "Stopped:" if summary.error else "Imported"
        say(f"[bold]{verb}[/] {summary.resource} from {summary.file} in {summary.seconds:.1f} s")
        say(f"  created   {summary.created:,}\n  updated   {summary.updated:,}\n  rejected  {len(summary.rejected):,}")
        if summary.uncertain:
            say(f"  uncertain {len(summary.uncertain):,} (sent, answer lost: most likely stored)")
        if summary.not_done:
            flight = f" ({summary.pending:,} of them sent or about to be when it stopped)" if summary.pending else ""
            say(f"  not done  {summary.not_done:,}{flight}")
        quota = summary.quota
        say(
            f"  requests  {summary.requests:,}"
            + (f" (quota left: {quota.remaining:,} of {quota.limit:,})" if quota else "")
        )
    if summary.rejected:
        say("[bold red]Rejected[/]:")
        ordered = sorted(summary.rejected, key=lambda r: r.line)
        for rejection in ordered[:SHOWN_REJECTIONS]:
            field = f"{rejection.field}: " if rejection.field else ""
            say(f"  line {rejection.line}: {field}{rejection.reason}", markup=False, highlight=False)
        if len(ordered) > SHOWN_REJECTIONS:
            say(f"  ... and {len(ordered) - SHOWN_REJECTIONS:,} more (--json lists every one)")
    if summary.uncertain:
        lines = [r.line for r in summary.uncertain]
        say(
            f"[bold yellow]Uncertain[/]: {plural(len(lines), 'record')} between lines {min(lines)} and {max(lines)} "
            "were sent but their answer was lost; the server most likely stored them. The same command with the "
            "same journal never sends them blindly: it finds out, or lists them again."
        )
    if not summary.dry_run:
        _advise(summary, say)


def _advise(summary: Summary, say: Callable[..., None]) -> None:
    """What to do next: the command that resumes, or why there is none."""
    if summary.journal is None:
        if summary.not_done:
            say("No journal was kept (--no-journal): running the command again sends every record again.")
        return
    if summary.not_done or summary.uncertain:
        say(f"To resume, run the same command (its journal is {summary.journal}):", markup=False, highlight=False)
        say(f"  {summary.resume}", markup=False, highlight=False, soft_wrap=True)
        if "***" in (summary.resume or ""):
            say("  (*** stands for your API key, which is never printed)")
    elif summary.rejected:
        say(
            f"The journal {summary.journal} is kept: mend the rejected lines and run the same command again; "
            "the records stored are not sent again.",
            markup=False,
            highlight=False,
        )


def _finish(summary: Summary, as_json: bool) -> None:
    if as_json:
        print_json(summary.as_dict())
    else:
        print_summary(summary, out_console())
    if summary.error:
        click.echo(f"Error: {summary.error}", err=True)
    if summary.exit_code:
        click.get_current_context().exit(summary.exit_code)


@click.command("import")
@click.argument("resource", type=click.Choice(["clients", "cases", "case-lists"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "json"]), help="Default: from the extension.")
@click.option(
    "--encoding", default=ENCODING, show_default=True, help="The file's text encoding (latin-1, cp1252, ...)."
)
@click.option("--dry-run", is_flag=True, help="Check every record and print the request plan; send nothing.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to record finished chunks (default: FILE.kayse-journal, see docs); rerun to resume.",
)
@click.option("--no-journal", is_flag=True, help="Keep no journal: an interrupted import cannot be resumed.")
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
@progress_options
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout, and nothing else.")
@click.pass_context
def import_command(
    ctx: click.Context,
    resource: Resource,
    file: Path,
    fmt: str | None,
    encoding: str,
    dry_run: bool,
    journal: Path | None,
    no_journal: bool,
    chunk_size: int,
    concurrency: int,
    progress: Mode,
    progress_interval: float,
    as_json: bool,
) -> None:
    """Create or update records from FILE (CSV, JSON Lines or a JSON array).

    Field names are the API's (CSV: the header row). Records without an id are
    created, records with an id are updated (a full replacement). A journal is
    kept, so that the same command resumes an interrupted import. Exit status:
    0 every record stored, 1 some not, 2 nothing could be sent or the job
    stopped on an error, 128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM).
    """
    config: Config = ctx.obj
    try:
        detected: Format = detect_format(file, fmt)
        encoding = check_encoding(encoding)
        if not file.is_file():
            raise InputError(f"no such file: {file}")
        if journal is not None and no_journal:
            raise InputError("--journal and --no-journal: choose one")
        total = scan(file, detected, resource, encoding)
    except InputError as exc:
        raise UsageProblem(str(exc)) from None
    summary = Summary(resource, str(file), total, dry_run, chunk_size=chunk_size, concurrency=concurrency)
    records = read_records(file, detected, resource, encoding)
    if dry_run:
        _finish(plan_records(resource, records, summary), as_json)
        return
    if not no_journal:
        summary.journal = str(journal or default_journal(file))
    summary.resume = command_line(ctx.meta.get("kayse.argv", []))
    with config.client(quiet=as_json) as kayse, Stop() as stop:
        run_import(
            kayse,
            summary,
            records,
            stop=stop,
            show=lambda meter: shown(meter, progress, progress_interval),
            period=config.period,
        )
    if journal is None and summary.journal and summary.exit_code == EXIT_OK:
        Path(summary.journal).unlink(missing_ok=True)  # every record stored: nothing left to resume
    _finish(summary, as_json)
