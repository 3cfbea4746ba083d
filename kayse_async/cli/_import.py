"""``kayse import``: stream a file of records through the bulk engine, with progress, a summary and exit codes."""

from __future__ import annotations

import array
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

from .. import errors
from ..models import BulkItem, QuotaSnapshot
from ._config import Config, UsageProblem, translate
from ._jobs import Meter, Mode, Report, command_line, default_journal, progress_options, running
from ._readers import ENCODING, Format, InputError, Record, Resource, api, open_file
from ._render import as_json_ready, clock, plural

if TYPE_CHECKING:
    from rich.console import Console

    from .. import Kayse

CHUNK_SIZE = 500  # records per request: the most the API takes, and what counts at 500 requests an hour
CONCURRENCY = 4
BISECT_BUDGET = 50  # requests a job may spend narrowing refused batches down to the record at fault
PLAN_RATE_PER_HOUR = 500  # the rate a dry run plans with: the API's documented budget per key
SHOWN_REJECTIONS = 50  # rejected records listed in the human summary (``--json`` lists every one)
_LISTS = ("rejected", "uncertain")
# A batch position or input index (``clients[3].``) in the SDK's text: the summary names file lines instead.
_ITEM = re.compile(r"\b(?:clients|cases|lists)\[\d+\](?:\.|: )?")


@attrs.define
class Rejection:
    """A record that was not stored: where it is in the file and why."""

    line: int
    reason: str
    field: str | None = None
    status: Literal["rejected", "not_attempted", "uncertain"] = "rejected"


@attrs.define(kw_only=True)
class Summary(Report):
    """What an import did, or (``dry_run``) would do."""

    resource: Resource
    file: str
    total: int  # records in the file, read whole before anything is sent
    dry_run: bool = False
    chunk_size: int = CHUNK_SIZE
    concurrency: int = CONCURRENCY
    records: int = 0  # records this run read: fewer than ``total`` when it stopped
    created: int = 0
    updated: int = 0
    resolved_stored_before: int = 0  # left uncertain by an earlier run, found stored (counted in ``created``)
    resolved_stored_now: int = 0  # left uncertain by an earlier run, not stored then, stored now
    rejected: list[Rejection] = attrs.field(factory=list)  # refused (file, check, server) or never sent
    uncertain: list[Rejection] = attrs.field(factory=list)  # sent, answer lost: perhaps stored
    pending: int = 0  # handed to the engine, no outcome when the job stopped
    requests: int = 0
    seconds: float = 0.0
    quota: QuotaSnapshot | None = None
    journal: str | None = None

    @property
    def not_done(self) -> int:
        """Records with no outcome: never read, or without an answer when the job stopped."""
        done = self.created + self.updated + len(self.rejected) + len(self.uncertain)
        return 0 if self.dry_run else self.total - done

    @property
    def complete(self) -> bool:
        """Every record stored (dry run: valid)."""
        return not self.rejected and not self.uncertain and not self.not_done

    def plan(self) -> dict[str, Any]:
        """The request plan of a dry run: what sending would cost at the API's documented rate."""
        windows = math.ceil(self.requests / PLAN_RATE_PER_HOUR)
        return {
            "rate_per_hour": PLAN_RATE_PER_HOUR,
            "hourly_windows": windows,
            "seconds_with_fresh_budget": max(0, windows - 1) * 3600,
            "seconds_at_steady_rate": round(self.requests * 3600 / PLAN_RATE_PER_HOUR, 1),
        }

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable summary ``--json`` prints."""
        data = super().as_dict() | attrs.asdict(self, filter=lambda a, _: a.name not in ("quota", *_LISTS))
        for name in _LISTS:
            found = sorted(getattr(self, name), key=lambda r: r.line)
            data |= {f"{name}_count": len(found), name: [attrs.asdict(r) for r in found]}
        data |= {"seconds": round(self.seconds, 3), "exit_code": self.exit_code}
        if self.dry_run:
            return data | {"chunks": self.requests, "plan": self.plan()}
        return data | {"not_done": self.not_done, "quota": as_json_ready(self.quota)}

    def print(self, console: Console) -> None:
        """The human summary of an import or a dry run."""
        say = console.print
        (self._print_plan if self.dry_run else self._print_counts)(say)
        ordered = sorted(self.rejected, key=lambda r: r.line)
        if ordered:
            say("[bold red]Rejected[/]:")
        for rejection in ordered[:SHOWN_REJECTIONS]:
            field = f"{rejection.field}: " if rejection.field else ""
            say(f"  line {rejection.line}: {field}{rejection.reason}", markup=False, highlight=False)
        if len(ordered) > SHOWN_REJECTIONS:
            say(f"  ... and {len(ordered) - SHOWN_REJECTIONS:,} more (--json lists every one)")
        if not self.dry_run:
            self._print_advice(say)

    def _print_counts(self, say: Callable[..., None]) -> None:
        say(f"[bold]{self.verb('Imported')}[/] {self.resource} from {self.file} in {self.seconds:.1f} s")
        say(f"  created   {self.created:,}\n  updated   {self.updated:,}\n  rejected  {len(self.rejected):,}")
        if resolved := self.resolved_stored_before + self.resolved_stored_now:
            say(f"  resolved  {resolved:,} left uncertain by an earlier run: {self.resolved_stored_before:,} stored "
                f"by it, {self.resolved_stored_now:,} stored now")  # fmt: skip
        if self.uncertain:
            say(f"  uncertain {len(self.uncertain):,} (sent, answer lost: perhaps stored)")
        if self.not_done:
            flight = f" ({self.pending:,} cut off in flight)" if self.pending and self.signal else ""
            say(f"  not done  {self.not_done:,}{flight}")
        quota = self.quota
        left = f" (quota left: {quota.remaining:,} of {quota.limit:,})" if quota and quota.remaining is not None else ""
        say(f"  requests  {self.requests:,}{left}")

    def _print_plan(self, say: Callable[..., None]) -> None:
        plan, requests = self.plan(), self.requests
        say(f"[bold]Dry run[/] of {plural(self.records, 'record')} of {self.resource} from {self.file}: nothing sent")
        say(f"  would create  {self.created:,}\n  would update  {self.updated:,}")
        say(f"  rejected      {len(self.rejected):,}\n  requests      {requests:,} ({plural(requests, 'chunk')} "
            f"of up to {self.chunk_size:,}, {self.concurrency} at a time)")  # fmt: skip
        when = f"fits in one hour's budget ({requests} of {PLAN_RATE_PER_HOUR} requests)"
        if requests > PLAN_RATE_PER_HOUR:
            when = (
                f"{plan['hourly_windows']} hourly windows: about {clock(plan['seconds_with_fresh_budget'])} "
                f"if the key's budget is unused at start, {clock(plan['seconds_at_steady_rate'])} at a steady "
                f"{PLAN_RATE_PER_HOUR}/h"
            )
        say(f"  time at {PLAN_RATE_PER_HOUR}/h {when}")

    def _print_advice(self, say: Callable[..., None]) -> None:
        if self.uncertain:
            lines = [r.line for r in self.uncertain]
            how = (
                "the same command asks the server about each by its external_source and external_source_id: one "
                "it holds counts as stored, one it does not is sent; none is stored twice"
            )
            if self.resource == "case-lists":
                how = "case lists have no key the server keeps unique: look for them with 'kayse case-lists' first"
            elif self.journal is None:
                how = "no journal was kept, so no command can tell: look them up by their external_source_id"
            say(f"[bold yellow]Uncertain[/]: {plural(len(lines), 'record')} between lines {min(lines)} and "
                f"{max(lines)} were sent but their answer was lost; {how}.")  # fmt: skip
        if self.journal is None and self.not_done:
            say("No journal was kept: running the command again sends every record again.")
        elif self.journal and (self.not_done or self.uncertain or self.rejected):
            mend = "; mend the rejected lines first" if self.rejected else ""
            say(f"To resume, run the same command (its journal is {self.journal}{mend}; what was stored is not "
                f"sent again):\n  {self.resume}", markup=False, highlight=False)  # fmt: skip
            if "***" in (self.resume or ""):
                say("  (*** stands for your API key, which is never printed)")


def _rejection(line: int, item: BulkItem[Any], unreadable: str | None, line_of: Callable[[int], int]) -> Rejection:
    """The line's outcome from the engine's, naming file lines only (never ``clients[3]``)."""
    error, field = item.error, None
    if unreadable is not None:  # the file check refused it; the engine only kept its place
        reason = unreadable
    elif isinstance(error, errors.BatchRefusedError):
        reason = f"not sent: batch refused because of line {line_of(error.culprit)}"
    elif isinstance(error, errors.ValidationError):
        field, reason = _ITEM.sub("", error.field) or None, error.reason
    elif isinstance(error, errors.APIError):
        named = error.body.get("field") if isinstance(error.body, dict) else None
        field = (_ITEM.sub("", named) or None) if isinstance(named, str) else None
        message = _ITEM.sub("", " ".join(error.message.split()))
        reason = f"{error.status}: {message.removeprefix(f'{field}: ') if field else message}"
    else:
        reason = _ITEM.sub("", " ".join(str(error or "no reason given").split()))
    if item.status == "uncertain":
        return Rejection(line, f"sent, but no answer came back: it may be stored ({reason})", field, "uncertain")
    if item.status == "not_attempted":
        return Rejection(line, f"not sent: {reason}", field, "not_attempted")
    return Rejection(line, reason, field)


def plan_records(summary: Summary, records: Iterator[Record]) -> None:
    """Check every record as the bulk call would (the resource's public ``check()``), and count the requests."""
    check, started = api(summary.resource).check, time.perf_counter()
    for record in records:
        summary.records += 1
        try:
            if record.fields is None:
                raise errors.ValidationError("", record.error or "unreadable")
            check(record.fields)
        except errors.ValidationError as exc:
            summary.rejected.append(Rejection(record.line, exc.reason, exc.field or None))
            continue
        if record.fields.get("id") is None:
            summary.created += 1
        else:
            summary.updated += 1
    summary.requests = math.ceil((summary.created + summary.updated) / summary.chunk_size)
    summary.seconds = time.perf_counter() - started


def run_import(summary: Summary, records: Iterator[Record], meter: Meter, bisect_budget: int) -> None:
    """Send ``records`` through the bulk engine and fill ``summary`` with what happened.

    Every record goes to the engine, an unreadable one too (as a placeholder the engine refuses):
    its place in the engine's input is its place in the file, so the journal stays valid when a
    refused line is mended. ``lines`` maps those places back to file lines.
    """
    pending: collections.deque[tuple[int, bool, str | None]] = collections.deque()
    lines, started = array.array("L"), time.perf_counter()

    def items() -> Iterator[dict[str, Any] | None]:
        # Runs where the bulk engine reads its input: it must only read, never print.
        for record in records:
            if meter.stop.requested:
                return  # the engine finishes what it holds, and sends nothing more
            summary.records += 1
            lines.append(record.line)
            pending.append((record.line, bool(record.fields and record.fields.get("id") is not None), record.error))
            yield record.fields

    options = {"chunk_size": summary.chunk_size, "concurrency": summary.concurrency, "bisect_budget": bisect_budget,
               "journal": summary.journal, "progress": meter.on_progress}  # fmt: skip
    try:
        with contextlib.closing(_outcomes(meter.kayse, summary.resource, items(), options)) as stream:
            for item in stream:
                if isinstance(item.error, errors.AuthenticationError):
                    raise item.error  # a refused key refuses every record: a configuration error
                if item.status == "not_attempted":
                    # No server, a wrong URL, no budget: every record after it would say the same.
                    summary.error = translate(item.error or errors.KayseError("the job stopped")).format_message()
                    break
                line, has_id, unreadable = pending.popleft()
                if item.status != "succeeded":
                    found = _rejection(line, item, unreadable, lines.__getitem__)
                    (summary.uncertain if item.status == "uncertain" else summary.rejected).append(found)
                elif (action := getattr(item.value, "action", None)) == "created" or (action is None and not has_id):
                    summary.created += 1
                else:
                    summary.updated += 1
                summary.resolved_stored_before += item.resolved == "stored_before"
                summary.resolved_stored_now += item.resolved == "stored_now"
                meter.done = summary.records - len(pending)
    except InputError as exc:  # the file changed since it was read up front
        summary.error = str(exc)
    except errors.ConfigurationError as exc:  # the journal is another job's, damaged, or in use
        raise UsageProblem(f"{exc}; the journal is {summary.journal}") from None
    finally:
        summary.pending, summary.requests = len(pending), meter.requests
        summary.seconds = time.perf_counter() - started
        summary.quota = meter.quota(fresh=True)


def _outcomes(kayse: Kayse, resource: Resource, items: Iterator[Any], options: Any) -> Generator[BulkItem[Any]]:
    """One ``BulkItem`` per record, in input order."""
    if resource != "case-lists":
        yield from (kayse.clients if resource == "clients" else kayse.cases).bulk_upsert_iter(items, **options)
        return
    # Case lists have no streamed variant: they are few, and their bulk call returns id and action.
    batch = list(items)
    try:
        stored = kayse.case_lists.bulk_upsert(batch, **options) if batch else []
    except errors.BulkError as exc:
        yield from exc.result.items
        return
    yield from (BulkItem(index=index, status="succeeded", value=value) for index, value in enumerate(stored))


@click.command("import")
@click.argument("resource", type=click.Choice(["clients", "cases", "case-lists"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "json"]), help="Default: from the extension.")
@click.option("--encoding", default=ENCODING, show_default=True, metavar="NAME",
              help="The file's encoding (latin-1, cp1252, ...).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Check every record and print the request plan; send nothing.")
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path), help="Where to record finished "
              "chunks (default: FILE.kayse-journal); the same command resumes from it.")  # fmt: skip
@click.option("--no-journal", is_flag=True, help="Keep no journal: an interrupted import cannot be resumed.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=CHUNK_SIZE, show_default=True,
              help="Records per request.")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(1, 64), default=CONCURRENCY, show_default=True,
              help="Requests at once.")  # fmt: skip
@click.option("--bisect-budget", type=click.IntRange(min=0), default=BISECT_BUDGET, show_default=True,
              metavar="REQUESTS", help="Requests to spend narrowing a refused batch down to its bad record, so that "
              "the others are stored; 0: a refused batch is reported whole.")  # fmt: skip
@progress_options
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout, and nothing else.")
@click.pass_context
def import_command(
    ctx: click.Context,
    resource: Resource,
    file: Path,
    fmt: Format | None,
    encoding: str,
    dry_run: bool,
    journal: Path | None,
    no_journal: bool,
    chunk_size: int,
    concurrency: int,
    bisect_budget: int,
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
        if journal is not None and no_journal:
            raise InputError("--journal and --no-journal: choose one")
        total, records = open_file(file, fmt, resource, encoding)
    except InputError as exc:
        raise UsageProblem(str(exc)) from None
    summary = Summary(resource=resource, file=str(file), total=total, dry_run=dry_run, chunk_size=chunk_size,
                      concurrency=concurrency)  # fmt: skip
    if dry_run:
        plan_records(summary, records)
        summary.finish(as_json)
        return
    # The sandbox's server starts empty at every command: a journal of it would claim what is not there.
    keep = journal is not None or not (no_journal or config.sandbox)
    summary.journal = str(journal or default_journal(file)) if keep else None
    summary.resume = command_line(ctx)
    with running(config, resource, total, per_request=chunk_size, progress=progress, interval=progress_interval,
                 quiet=as_json) as meter:  # fmt: skip
        run_import(summary, records, meter, bisect_budget)
    summary.signal = meter.stop.name
    if journal is None and summary.journal and summary.exit_code == 0:
        Path(summary.journal).unlink(missing_ok=True)  # every record stored: nothing left to resume
    summary.finish(as_json)
