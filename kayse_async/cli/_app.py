"""The ``kayse`` command group: shared options, and how every failure becomes one line and an exit status."""

from __future__ import annotations

from typing import Any

import click

from .. import _defaults
from ..errors import KayseError
from ._commands import (
    campaigns_command,
    case_lists_command,
    delete_group,
    email_command,
    emulator_command,
    get_command,
    metadata_command,
    quota_command,
    sms_command,
)
from ._config import Config, translate
from ._import import import_command


class _Group(click.Group):
    """A group that turns SDK errors into one line on stderr and an exit status, never a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept whole: a stopped job prints the command line that resumes it.
        ctx.meta["kayse.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KayseError as exc:
            raise translate(exc) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--api-key",
    envvar=_defaults.ENV_API_KEY,
    show_envvar=True,
    metavar="KEY",
    help="Your Kayse API key (company settings, API Keys). Never printed.",
)
@click.option(
    "--base-url",
    envvar=_defaults.ENV_BASE_URL,
    show_envvar=True,
    metavar="URL",
    help=f"The API's address (default {_defaults.BASE_URL}); http:// only for localhost.",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Run against a local emulator started inside this command: no account, nothing leaves the machine.",
)
@click.version_option(package_name="kayse-async", prog_name="kayse")
@click.pass_context
def cli(ctx: click.Context, api_key: str | None, base_url: str | None, sandbox: bool) -> None:
    """The Kayse Public API from the command line: import records, look them up, send messages.

    Try any command with no account: kayse --sandbox import clients docs/examples/clients.csv
    """
    ctx.obj = Config(api_key=api_key or None, base_url=base_url or None, sandbox=sandbox)


cli.add_command(import_command)
cli.add_command(delete_group)
cli.add_command(get_command)
cli.add_command(case_lists_command)
cli.add_command(campaigns_command)
cli.add_command(metadata_command)
cli.add_command(quota_command)
cli.add_command(sms_command)
cli.add_command(email_command)
cli.add_command(emulator_command)
