"""The ``kayse`` commands other than ``import``: get, delete, lists, metadata, quota, sms, email, emulator."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from .. import errors
from ..models import BulkProgress
from ._config import EXIT_FAILED, CommandFailed, Config, UsageProblem, describe_error, translate
from ._jobs import GRACE, Meter, Mode, Report, command_line, progress_options, running
from ._render import as_json_ready, err_console, local_time, out_console, plural, print_json, print_table, short

if TYPE_CHECKING:
    from rich.console import Console

_ID_SEPARATORS = re.compile(r"[\s,;]+")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")


@click.command("get")
@click.argument("kind", type=click.Choice(["client", "case"]))
@click.argument("item_id", metavar="ID", type=click.IntRange(min=1))
@click.pass_obj
def get_command(config: Config, kind: str, item_id: int) -> None:
    """Print one client or case as JSON."""
    with config.client(quiet=True) as kayse:
        try:
            item: Any = kayse.clients.get(item_id) if kind == "client" else kayse.cases.get(item_id)
        except errors.NotFoundError as exc:
            hint = " (the sandbox starts empty at every command; see 'kayse emulator')" if config.sandbox else ""
            raise CommandFailed(f"{describe_error(exc)}{hint}") from None
    print_json(as_json_ready(item))


def parse_ids(values: Iterable[str]) -> list[int]:
    """Ids from arguments that are ids, comma-separated ids, or files of ids (``#`` starts a comment)."""
    ids: list[int] = []
    for value in values:
        lines = [(value, "--ids")]
        if not value.strip().lstrip("-").replace(",", "").isdigit() and Path(value).is_file():
            try:
                text = Path(value).read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageProblem(f"cannot read ids from {value}: {exc}") from None
            lines = [(line.split("#", 1)[0], f"{value}, line {n}") for n, line in enumerate(text.splitlines(), 1)]
        for content, where in lines:
            for token in filter(None, _ID_SEPARATORS.split(content.strip())):
                if not token.isdigit() or int(token) <= 0:
                    raise UsageProblem(f"{where}: {token[:40]!r} is not an id (a whole number above 0) nor a file")
                ids.append(int(token))
    return ids


@attrs.define(kw_only=True)
class Deletion(Report):
    """What a delete command did."""

    kind: str
    ids: list[int]
    deleted: list[int] = attrs.field(factory=list)  # confirmed by an answer
    gone: list[int] = attrs.field(
        factory=list
    )  # absent from a retry's answer: deleted by the lost attempt, or never there
    missing: list[int] = attrs.field(factory=list)  # the server did not have them
    failed: dict[int, str] = attrs.field(factory=dict)  # with the reason

    @property
    def not_done(self) -> int:
        """Ids with no outcome: the job stopped before them."""
        return len(self.ids) - len(self.deleted) - len(self.gone) - len(self.missing) - len(self.failed)

    @property
    def complete(self) -> bool:
        """Every id deleted, or found gone."""
        return not self.failed and not self.not_done

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` summary."""
        failed = [{"id": i, "reason": reason} for i, reason in self.failed.items()]
        ids = {"deleted_ids": self.deleted, "gone_ids": self.gone, "not_found_ids": self.missing}
        return super().as_dict() | {"requested": len(self.ids), **ids, "failed": failed, "not_done": self.not_done}

    def print(self, console: Console) -> None:
        """``Deleted 3 clients (1 id not found).``, the ids gone after a lost answer, the failures, how to finish."""
        counts = [(self.gone, "gone after a lost answer"), (self.missing, "not found"), (self.failed, "failed")]
        notes = ", ".join(f"{plural(len(ids), 'id')} {what}" for ids, what in counts if ids)
        notes += f"{', ' if notes else ''}{plural(self.not_done, 'id')} not done" if self.not_done else ""
        say = functools.partial(console.print, markup=False, highlight=False)
        notes = f"{' confirmed' if self.gone else ''}{f' ({notes})' if notes else ''}"
        say(f"{self.verb('Deleted')} {plural(len(self.deleted), self.kind)}{notes}.")
        if self.gone:
            say(f"  gone after a lost answer (deleted by it, or never there): {_ids(self.gone)}")
        for item_id, reason in self.failed.items():
            say(f"  {self.kind} {item_id}: {reason}")
        if not self.complete:
            say(f"Deleting again is safe; to finish, run:\n  {self.resume}")


def _ids(ids: list[int]) -> str:
    more = f" and {len(ids) - 20:,} more (--json lists every one)" if len(ids) > 20 else ""
    return ", ".join(map(str, ids[:20])) + more


def _delete_command(
    kind: str, per_request: int, grace: float | None = GRACE, *extra: Callable[[Any], Any]
) -> Callable[[Callable[..., None]], click.Command]:
    """A ``kayse delete`` command: ids, confirmation, progress, summary; ``body(meter, job, **extra)`` deletes."""

    def decorate(body: Callable[..., None]) -> click.Command:
        @click.argument("values", nargs=-1, metavar="[ID|FILE]...")
        @click.option("--ids", "id_options", multiple=True, metavar="FILE|ID", help=f"A {kind} id, ids separated "
                      "by commas, or a file of ids (one or more per line); repeatable.")  # fmt: skip
        @click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
        @progress_options
        @click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON on stdout.")
        @click.pass_context
        def command(ctx: click.Context, /, values: Sequence[str], id_options: Sequence[str], yes: bool, progress: Mode,
                    progress_interval: float, as_json: bool, **options: Any) -> None:  # fmt: skip
            ids = list(dict.fromkeys(parse_ids([*id_options, *values])))
            if not ids:
                raise UsageProblem(f"no {kind} ids: give them as arguments or with --ids FILE|ID")
            also = " and the clients linked only to them" if options.get("with_clients") else ""
            if not yes:
                click.confirm(f"Delete {plural(len(ids), kind)}{also}?", abort=True, err=True)
            job = Deletion(kind=kind, ids=ids, resume=command_line(ctx, *([] if yes else ["--yes"])))
            with running(ctx.obj, f"{kind}s", len(ids), per_request=per_request, progress=progress,
                         interval=progress_interval, quiet=as_json, grace=grace) as meter:  # fmt: skip
                body(meter, job, **options)
            job.signal = meter.stop.name
            job.finish(as_json)

        command.__doc__ = body.__doc__
        for option in extra:
            command = option(command)
        return delete_group.command(f"{kind}s")(command)

    return decorate


@click.group("delete")
def delete_group() -> None:
    """Delete records."""


# One call for every chunk, stopped at once by a signal (deleting again is safe).
@_delete_command("case", 500, None, click.option("--with-clients", is_flag=True,
                 help="Also delete clients linked only to them."))  # fmt: skip
def delete_cases(meter: Meter, job: Deletion, *, with_clients: bool) -> None:
    """Delete cases by id, 500 per request (the API's maximum)."""

    def on_progress(done: BulkProgress) -> None:
        meter.done, meter.requests = done.items_done, done.requests

    result = meter.kayse.cases.bulk_delete(
        job.ids, with_clients=with_clients, progress=on_progress, raise_on_error=False
    )
    job.deleted, job.gone, job.missing = result.confirmed, result.gone, result.not_found
    job.failed = {job.ids[i.index]: describe_error(i.error or errors.KayseError("failed")) for i in result.failed}


@_delete_command("client", 1)
def delete_clients(meter: Meter, job: Deletion) -> None:
    """Delete clients by id, one request each (the API has no bulk delete for clients), through the quota."""
    for client_id in job.ids:
        if meter.stop.requested:
            break
        try:
            meter.kayse.clients.delete(client_id)
            job.deleted.append(client_id)
        except errors.NotFoundError:
            job.missing.append(client_id)
        except (errors.AuthenticationError, errors.ConfigurationError):
            raise
        except errors.KayseError as exc:
            if isinstance(exc, errors.TransportError) and not exc.may_have_been_sent:
                job.error = translate(exc).format_message()  # no server: every id after it would fail too
                break
            job.failed[client_id] = describe_error(exc)
        meter.done = meter.requests = meter.done + 1


def _listing(name: str, title: str, columns: list[str], row: Callable[[Any], tuple[Any, ...]],
             fetch: Callable[..., list[Any]], *filters: Callable[[Any], Any]) -> click.Command:  # fmt: skip
    """A command that prints ``fetch(kayse, **filters)`` as a table of ``columns``, or as JSON."""

    @_json_option
    @click.pass_obj
    def command(config: Config, /, as_json: bool, **options: Any) -> None:
        with config.client(quiet=as_json) as kayse:
            items = fetch(kayse, **options)
        if as_json:
            print_json(as_json_ready(items))
        elif not print_table(title, columns, map(row, items)):
            err_console().print(f"no {title.lower()}")

    for option in (*reversed(filters), click.option("--key", help="Search the names.")):
        command = option(command)
    return click.command(name, help=f"List the {title.lower()}.")(command)


case_lists_command = _listing(
    "case-lists", "Case lists", ["id", "name", "description", "cases"],
    lambda cl: (cl.id, short(cl.name, 40), short(cl.description, 40), len(cl.case_ids or [])),
    lambda kayse, key, hide_empty: list(kayse.case_lists.list(key=key, hide_empty=hide_empty or None, page_size=100)),
    click.option("--hide-empty", is_flag=True, help="Only lists that hold cases now."),
)  # fmt: skip
campaigns_command = _listing(
    "campaigns", "Campaigns", ["id", "name", "agent", "case list", "days"],
    lambda c: (c.id, short(c.name, 40), c.agent_id, c.case_list_id, ", ".join(c.days or [])),
    lambda kayse, key: kayse.campaigns.list(key=key),
)  # fmt: skip


@click.command("metadata")
@_json_option
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
@_json_option
@click.pass_obj
def quota_command(config: Config, as_json: bool) -> None:
    """Show the API key's rate-limit budget (spends one request to ask the server)."""
    with config.client(quiet=as_json) as kayse:
        # Nothing is known of the budget before a response: one cheap GET brings the headers.
        kayse.metadata.objects()
        snap = kayse.quota
    if as_json:
        iso = snap.resets_at.isoformat() if snap.resets_at else None
        print_json({"limit": snap.limit, "remaining": snap.remaining, "resets_at": iso})
        return
    resets = f", window resets at {local_time(snap.resets_at, relative=True)}" if snap.resets_at else ""
    left = "?" if snap.remaining is None else f"{snap.remaining:,}"
    out_console().print(f"{left} of {snap.limit:,} requests left{resets} (this check spent 1)")


def _message_command(kind: str, name: str, *texts: Callable[[Any], Any]) -> click.Command:
    """``kayse sms`` / ``kayse email``: check the texts, ask (unless ``--yes``), then send once."""

    @click.pass_obj
    def command(config: Config, /, case_id: int, client_id: int, yes: bool, **text: str) -> None:
        for option, value in text.items():
            if not value.strip():
                raise UsageProblem(f"--{option} must not be empty")
        asked = f"Send this {name} to client {client_id} (case {case_id})?\n  " + "\n  ".join(text.values())
        if not yes and not click.confirm(f"{asked}\nSend?", err=True):
            err_console().print("Nothing sent.")
            click.get_current_context().exit(EXIT_FAILED)
        with config.client(quiet=True) as kayse:
            send = kayse.cases.send_sms if kind == "sms" else kayse.cases.send_email
            out_console().print(send(case_id=case_id, client_id=client_id, **text) or "sent")

    command.__doc__ = f"Send an {name} to a client about a case (asks first; never retried once it may have been sent)."
    ids = [click.option(f"--{of}-id", type=click.IntRange(min=1), required=True) for of in ("case", "client")]
    yes = click.option("--yes", "-y", is_flag=True, help="Send without asking for confirmation.")
    for option in reversed((*ids, *texts, yes)):
        command = option(command)
    return click.command(kind)(command)


sms_command = _message_command("sms", "SMS", click.option("--message", required=True, help="The text of the SMS."))
email_command = _message_command("email", "email", click.option("--subject", required=True),
                                 click.option("--message", required=True, help="The body of the email."))  # fmt: skip


@click.command(
    "emulator",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def emulator_command(config: Config, args: tuple[str, ...]) -> None:
    """Run the local Kayse emulator until Ctrl-C (the options of python -m kayse_async.testing; --help lists them).

    Its key is the global --api-key (or KAYSE_API_KEY), unless one is given after the command.
    """
    from .. import testing

    # The global key first: a key given after the command comes later, and wins.
    argv = [*(["--api-key", config.api_key] if config.api_key else []), *args]
    testing.build_parser("kayse emulator").parse_args(argv)  # --help and usage errors, named for this command
    click.get_current_context().exit(testing.main(argv))


COMMANDS = (delete_group, get_command, case_lists_command, campaigns_command, metadata_command, quota_command,
            sms_command, email_command, emulator_command)  # fmt: skip
