"""The ``kayse`` commands other than ``import``: get, delete, lists, metadata, quota, sms, email, emulator."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, cast

import attrs
import click

from .._defaults import BULK_DELETE_CHUNK
from ..errors import AuthenticationError, BulkError, ConfigurationError, KayseError, NotFoundError, TransportError
from ..models import BulkProgress
from ._config import EXIT_FAILED, CommandFailed, Config, UsageProblem, describe_error, translate
from ._jobs import Stop, command_line, exit_status
from ._progress import Meter, Mode, progress_options, shown
from ._render import as_json_ready, err_console, local_time, out_console, plural, print_json, print_table, short

_ID_SEPARATORS = re.compile(r"[\s,;]+")
_F = TypeVar("_F", bound=Callable[..., Any])


def _json_option(help_text: str = "Print JSON on stdout.") -> Callable[[_F], _F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


@click.command("get")
@click.argument("kind", type=click.Choice(["client", "case"]))
@click.argument("item_id", metavar="ID", type=click.IntRange(min=1))
@click.pass_obj
def get_command(config: Config, kind: str, item_id: int) -> None:
    """Print one client or case as JSON."""
    with config.client(quiet=True) as kayse:
        try:
            item: Any = kayse.clients.get(item_id) if kind == "client" else kayse.cases.get(item_id)
        except NotFoundError as exc:
            hint = " (the sandbox starts empty at every command; see 'kayse emulator')" if config.sandbox else ""
            raise CommandFailed(f"{describe_error(exc)}{hint}") from None
    print_json(as_json_ready(item))


def parse_ids(values: Iterable[str]) -> list[int]:
    """Ids from arguments that are ids, comma-separated ids, or files of ids (``#`` starts a comment)."""
    ids: list[int] = []
    for value in values:
        path = Path(value)
        if not value.strip().lstrip("-").replace(",", "").isdigit() and path.is_file():
            try:
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageProblem(f"cannot read ids from {value}: {exc}") from None
            for number, line in enumerate(text.splitlines(), start=1):
                content = line.split("#", 1)[0]
                ids.extend(_ids_in(content, f"{value}, line {number}"))
            continue
        ids.extend(_ids_in(value, "--ids"))
    return ids


def _ids_in(text: str, where: str) -> list[int]:
    found: list[int] = []
    for token in _ID_SEPARATORS.split(text.strip()):
        if not token:
            continue
        if not token.isdigit() or int(token) <= 0:
            raise UsageProblem(f"{where}: {token[:40]!r} is not an id (a whole number above 0) nor a file")
        found.append(int(token))
    return found


@attrs.define
class Deletion:
    """What a delete command did."""

    kind: str
    ids: list[int]
    deleted: list[int] = attrs.field(factory=list)
    missing: list[int] = attrs.field(factory=list)
    """Ids the server no longer had."""
    failed: dict[int, str] = attrs.field(factory=dict)
    """Ids whose delete failed, with the reason."""
    signal: str | None = None
    error: str | None = None
    resume: str = ""

    @property
    def not_done(self) -> int:
        """Ids with no outcome: the job stopped before them."""
        return len(self.ids) - len(self.deleted) - len(self.missing) - len(self.failed)

    @property
    def exit_code(self) -> int:
        """As for an import: 0, 1 some failed, 2 stopped on an error, 128 + N stopped by signal N."""
        return exit_status(stopped_by=self.signal, error=self.error, complete=not self.failed and not self.not_done)

    def finish(self, as_json: bool) -> None:
        """Print the summary (stdout), the stopping error (stderr), and exit with the status."""
        if as_json:
            failed = [{"id": i, "reason": reason} for i, reason in self.failed.items()]
            print_json(
                {"requested": len(self.ids), "deleted_ids": self.deleted, "not_found_ids": self.missing}
                | {"failed": failed, "not_done": self.not_done, "signal": self.signal, "error": self.error}
            )
        else:
            say = out_console().print
            verb = f"Interrupted by {self.signal}: deleted" if self.signal else "Deleted"
            notes = [f"{plural(n, 'id')} {what}" for n, what in ((len(self.missing), "not found"),
                     (len(self.failed), "failed"), (self.not_done, "not done")) if n]  # fmt: skip
            say(f"{verb} {plural(len(self.deleted), self.kind)}" + (f" ({', '.join(notes)})" if notes else "") + ".")
            for item_id, reason in self.failed.items():
                say(f"  {self.kind} {item_id}: {reason}", markup=False, highlight=False)
            if self.not_done or self.failed:
                say(f"Deleting again is safe; to finish, run:\n  {self.resume}", markup=False, highlight=False)
        if self.error:
            click.echo(f"Error: {self.error}", err=True)
        if self.exit_code:
            click.get_current_context().exit(self.exit_code)


def _delete_options(kind: str) -> Callable[[_F], _F]:
    def decorate(command: _F) -> _F:
        decorated: Any = command
        for option in reversed(
            (
                click.argument("values", nargs=-1, metavar="[ID|FILE]..."),
                click.option(
                    "--ids",
                    "id_options",
                    multiple=True,
                    metavar="FILE|ID",
                    help=f"A {kind} id, ids separated by commas, or a file of ids (one or more per line); repeatable.",
                ),
                click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
                progress_options,
                _json_option("Print the outcome as JSON on stdout."),
                click.pass_context,
            )
        ):
            decorated = option(decorated)
        return cast("_F", decorated)

    return decorate


def _to_delete(
    ctx: click.Context, kind: str, values: tuple[str, ...], id_options: tuple[str, ...], yes: bool
) -> Deletion:
    ids = list(dict.fromkeys(parse_ids([*id_options, *values])))
    if not ids:
        raise UsageProblem(f"no {kind} ids: give them as arguments or with --ids FILE|ID")
    return Deletion(kind, ids, resume=command_line([*ctx.meta.get("kayse.argv", []), *([] if yes else ["--yes"])]))


@click.group("delete")
def delete_group() -> None:
    """Delete records."""


@delete_group.command("cases")
@_delete_options("case")
@click.option("--with-clients", is_flag=True, help="Also delete clients linked only to the deleted cases.")
def delete_cases_command(
    ctx: click.Context,
    values: tuple[str, ...],
    id_options: tuple[str, ...],
    yes: bool,
    progress: Mode,
    progress_interval: float,
    as_json: bool,
    with_clients: bool,
) -> None:
    """Delete cases by id, 500 per request (the API's maximum)."""
    job = _to_delete(ctx, "case", values, id_options, yes)
    what = plural(len(job.ids), "case") + (" and the clients linked only to them" if with_clients else "")
    if not yes:
        click.confirm(f"Delete {what}?", abort=True, err=True)
    config: Config = ctx.obj
    # One call for every chunk: a stop signal cancels it at once (a delete is safe to send again).
    with config.client(quiet=as_json) as kayse, Stop(grace=None) as stop:
        meter = Meter(kayse, "cases", len(job.ids), per_request=BULK_DELETE_CHUNK, period=config.period, stop=stop)

        def on_progress(done: BulkProgress) -> None:
            meter.done, meter.requests = done.items_done, done.requests
            update()

        try:
            with shown(meter, progress, progress_interval) as update:
                job.deleted = kayse.cases.bulk_delete(job.ids, with_clients=with_clients, progress=on_progress)
            job.missing = sorted(set(job.ids) - set(job.deleted))
        except BulkError as exc:
            for item in exc.result.items:
                if item.ok:
                    (job.deleted if item.value is not None else job.missing).append(job.ids[item.index])
                else:
                    job.failed[job.ids[item.index]] = describe_error(item.error or exc)
        except KeyboardInterrupt:
            stop.interrupted()
        job.signal = stop.name or None
    job.finish(as_json)


@delete_group.command("clients")
@_delete_options("client")
def delete_clients_command(
    ctx: click.Context,
    values: tuple[str, ...],
    id_options: tuple[str, ...],
    yes: bool,
    progress: Mode,
    progress_interval: float,
    as_json: bool,
) -> None:
    """Delete clients by id, one request each (the API deletes clients one at a time), through the quota."""
    job = _to_delete(ctx, "client", values, id_options, yes)
    if not yes:
        click.confirm(f"Delete {plural(len(job.ids), 'client')}?", abort=True, err=True)
    config: Config = ctx.obj
    with config.client(quiet=as_json) as kayse, Stop() as stop:
        meter = Meter(kayse, "clients", len(job.ids), per_request=1, period=config.period, stop=stop)
        try:
            with shown(meter, progress, progress_interval) as update:
                for client_id in job.ids:
                    if stop.requested:
                        break
                    try:
                        kayse.clients.delete(client_id)
                        job.deleted.append(client_id)
                    except NotFoundError:
                        job.missing.append(client_id)
                    except (AuthenticationError, ConfigurationError):
                        raise
                    except KayseError as exc:
                        if isinstance(exc, TransportError) and not exc.may_have_been_sent:
                            job.error = translate(exc).format_message()
                            break
                        job.failed[client_id] = describe_error(exc)
                    meter.done += 1
                    meter.requests += 1
                    update()
        except KeyboardInterrupt:
            stop.interrupted()
        finally:
            stop.over()
        job.signal = stop.name or None
    job.finish(as_json)


@click.command("case-lists")
@click.option("--key", help="Search the names.")
@click.option("--hide-empty", is_flag=True, help="Only lists that hold cases now.")
@_json_option()
@click.pass_obj
def case_lists_command(config: Config, key: str | None, hide_empty: bool, as_json: bool) -> None:
    """List the case lists (every page)."""
    with config.client(quiet=as_json) as kayse:
        lists = list(kayse.case_lists.list(key=key, hide_empty=True if hide_empty else None, page_size=100))
    if as_json:
        print_json(as_json_ready(lists))
        return
    rows = ((cl.id, short(cl.name, 40), short(cl.description, 40), len(cl.case_ids or [])) for cl in lists)
    count = print_table("Case lists", ["id", "name", "description", "cases"], rows)
    if not count:
        err_console().print("no case lists")


@click.command("campaigns")
@click.option("--key", help="Search the names.")
@_json_option()
@click.pass_obj
def campaigns_command(config: Config, key: str | None, as_json: bool) -> None:
    """List the AI call campaigns."""
    with config.client(quiet=as_json) as kayse:
        campaigns = kayse.campaigns.list(key=key)
    if as_json:
        print_json(as_json_ready(campaigns))
        return
    rows = ((c.id, short(c.name, 40), c.agent_id, c.case_list_id, ", ".join(c.days or [])) for c in campaigns)
    count = print_table("Campaigns", ["id", "name", "agent", "case list", "days"], rows)
    if not count:
        err_console().print("no campaigns")


@click.command("metadata")
@_json_option()
@click.pass_obj
def metadata_command(config: Config, as_json: bool) -> None:
    """Show the public objects and their fields, as the API describes them."""
    with config.client(quiet=as_json) as kayse:
        objects = kayse.metadata.objects()
    if as_json:
        print_json(as_json_ready(objects))
        return
    for schema in objects:
        rows = ((f.name, f.type, "yes" if f.required else "", short(f.description, 60)) for f in schema.fields)
        print_table(schema.name, ["field", "type", "required", "description"], rows)


@click.command("quota")
@_json_option()
@click.pass_obj
def quota_command(config: Config, as_json: bool) -> None:
    """Show the API key's rate-limit budget (spends one request to ask the server)."""
    with config.client(quiet=as_json) as kayse:
        # Nothing is known of the budget before a response: one cheap GET brings the headers.
        kayse.metadata.objects()
        snapshot = kayse.quota
    resets = snapshot.resets_at
    if as_json:
        iso = resets.isoformat() if resets else None
        print_json({"limit": snapshot.limit, "remaining": snapshot.remaining, "resets_at": iso})
        return
    out_console().print(
        f"{snapshot.remaining:,} of {snapshot.limit:,} requests left"
        + (f", window resets at {local_time(resets, relative=True)}" if resets else "")
        + " (this check spent 1)"
    )


def _confirm_send(what: str, yes: bool) -> None:
    if yes:
        return
    if not click.confirm(what, default=False, err=True):
        err_console().print("Nothing sent.")
        click.get_current_context().exit(EXIT_FAILED)


@click.command("sms")
@click.option("--case-id", type=click.IntRange(min=1), required=True)
@click.option("--client-id", type=click.IntRange(min=1), required=True)
@click.option("--message", required=True, help="The text of the SMS.")
@click.option("--yes", "-y", is_flag=True, help="Send without asking for confirmation.")
@click.pass_obj
def sms_command(config: Config, case_id: int, client_id: int, message: str, yes: bool) -> None:
    """Send an SMS to a client about a case (asks first; never retried once it may have been sent)."""
    if not message.strip():
        raise UsageProblem("--message must not be empty")
    _confirm_send(f"Send this SMS to client {client_id} (case {case_id})?\n  {message}\nSend?", yes)
    with config.client(quiet=True) as kayse:
        answer = kayse.cases.send_sms(case_id=case_id, client_id=client_id, message=message)
    out_console().print(answer or "sent")


@click.command("email")
@click.option("--case-id", type=click.IntRange(min=1), required=True)
@click.option("--client-id", type=click.IntRange(min=1), required=True)
@click.option("--subject", required=True)
@click.option("--message", required=True, help="The body of the email.")
@click.option("--yes", "-y", is_flag=True, help="Send without asking for confirmation.")
@click.pass_obj
def email_command(config: Config, case_id: int, client_id: int, subject: str, message: str, yes: bool) -> None:
    """Send an email to a client about a case (asks first; never retried once it may have been sent)."""
    for name, value in (("--subject", subject), ("--message", message)):
        if not value.strip():
            raise UsageProblem(f"{name} must not be empty")
    _confirm_send(f"Send this email to client {client_id} (case {case_id})?\n  {subject}\n  {message}\nSend?", yes)
    with config.client(quiet=True) as kayse:
        answer = kayse.cases.send_email(case_id=case_id, client_id=client_id, subject=subject, message=message)
    out_console().print(answer or "sent")


@click.command(
    "emulator",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def emulator_command(config: Config, args: tuple[str, ...]) -> None:
    """Run the local Kayse emulator until Ctrl-C (the options of python -m kayse_async.testing; --help lists them).

    Its key is the global --api-key (or KAYSE_API_KEY) unless given after the command.
    """
    from ..testing._cli import build_parser, emulator_from_args, run_served

    parser = build_parser("kayse emulator")
    # The global key first: a key given after the command comes later and wins.
    options = parser.parse_args([*(["--api-key", config.api_key] if config.api_key else []), *args])
    try:
        emulator = emulator_from_args(options)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        run_served(emulator)
    except OSError as exc:
        raise CommandFailed(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
