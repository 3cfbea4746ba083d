"""The ``kayse`` command: import records, look them up, delete them, send messages, run the emulator.

Installed with the ``cli`` extra (``pip install 'kayse-async[cli]'``); see docs/cli.md. Exit status:
0 done, 1 something was refused or failed, 2 a usage or configuration error (or no server), 128 + N
stopped by signal N. SDK errors become one line on stderr, never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from ..errors import KayseError
from ._commands import COMMANDS
from ._config import ENV_API_KEY, ENV_BASE_URL, Config, translate
from ._import import import_command

__all__ = ["cli", "main"]


class _Group(click.Group):
    """A group that turns SDK errors into one line on stderr and an exit status, never a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["kayse.argv"] = list(args)  # kept whole: a stopped job prints the command that resumes it
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KayseError as exc:
            raise translate(exc) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--api-key", envvar=ENV_API_KEY, show_envvar=True, metavar="KEY",
              help="Your Kayse API key (company settings, API Keys). Never printed.")  # fmt: skip
@click.option("--base-url", envvar=ENV_BASE_URL, show_envvar=True, metavar="URL",
              help="The API's address (default: the Kayse API's); http:// only for localhost.")  # fmt: skip
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


for _command in (import_command, *COMMANDS):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kayse`` command with ``argv`` (default: the process's arguments); returns the exit status."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="kayse", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return 0
