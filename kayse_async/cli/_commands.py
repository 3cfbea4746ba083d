"""The ``kayse`` commands other than ``import``: get, delete, case-lists, campaigns, metadata, quota, sms, email."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import NotFoundError
from ..models import BulkProgress
from ._config import EXIT_FAILED, CommandFailed, Config, UsageProblem, as_json_ready, describe_error, plural
from ._render import err_console, out_console, print_json, print_table, short

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
            raise UsageProblem(f"{where}: {token[:40]!r} is not a case id (a whole number above 0) nor a file")
        found.append(int(token))
    return found


@click.group("delete")
def delete_group() -> None:
    """Delete records."""


@delete_group.command("cases")
@click.argument("values", nargs=-1, metavar="[ID|FILE]...")
@click.option(
    "--ids",
    "id_options",
    multiple=True,
    metavar="FILE|ID",
    help="A case id, ids separated by commas, or a file of ids (one or more per line); repeatable.",
)
@click.option("--with-clients", is_flag=True, help="Also delete clients linked only to the deleted cases.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_json_option("Print the deleted ids as JSON on stdout.")
@click.pass_obj
def delete_cases_command(
    config: Config, values: tuple[str, ...], id_options: tuple[str, ...], with_clients: bool, yes: bool, as_json: bool
) -> None:
    """Delete cases by id, 500 per request (the API's maximum)."""
    ids = list(dict.fromkeys(parse_ids([*id_options, *values])))
    if not ids:
        raise UsageProblem("no case ids: give them as arguments or with --ids FILE|ID")
    what = plural(len(ids), "case") + (" and the clients linked only to them" if with_clients else "")
    if not yes:
        click.confirm(f"Delete {what}?", abort=True, err=True)
    console = err_console()

    def on_progress(progress: BulkProgress) -> None:
        if not as_json:
            console.print(f"  {progress.items_done:,} of {len(ids):,} ids done, {plural(progress.requests, 'request')}")

    with config.client(quiet=as_json) as kayse:
        deleted = kayse.cases.bulk_delete(ids, with_clients=with_clients, progress=on_progress)
    if as_json:
        print_json({"requested": len(ids), "deleted_ids": deleted})
        return
    missing = len(ids) - len(deleted)
    note = f" ({plural(missing, 'id')} not found)" if missing else ""
    out_console().print(f"Deleted {plural(len(deleted), 'case')}{note}.")


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
    resets = snapshot.resets_at.isoformat() if snapshot.resets_at is not None else None
    if as_json:
        print_json({"limit": snapshot.limit, "remaining": snapshot.remaining, "resets_at": resets})
        return
    out_console().print(
        f"{'?' if snapshot.remaining is None else format(snapshot.remaining, ',')} of {snapshot.limit:,} requests left"
        + (f", window resets at {resets}" if resets else "")
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
def emulator_command(args: tuple[str, ...]) -> None:
    """Run the local Kayse emulator until Ctrl-C (the options of python -m kayse_async.testing; --help lists them)."""
    from ..testing._cli import build_parser, emulator_from_args, run_served

    parser = build_parser("kayse emulator")
    options = parser.parse_args(list(args))
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
