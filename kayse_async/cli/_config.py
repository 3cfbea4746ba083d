"""Configuration of the ``kayse`` command: the API key, the base URL, the sandbox, and how errors end a run."""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import attrs
import click

from ..errors import AuthenticationError, ConfigurationError, KayseError, TransportError, ValidationError

if TYPE_CHECKING:
    from .. import Kayse

ENV_API_KEY = "KAYSE_API_KEY"
ENV_BASE_URL = "KAYSE_BASE_URL"

EXIT_OK = 0  # everything was done (every record stored)
EXIT_FAILED = 1  # the command ran, but something was refused or failed (rejected records, a 404, ...)
EXIT_USAGE = 2  # it could not start or go on: bad usage, a bad file, no or a wrong key, no server

SANDBOX_API_KEY = "sandbox"  # the key of the emulator ``--sandbox`` starts in the process; not a secret
# The real API's budget, in a window of a minute instead of an hour: a demo shows the quota without waiting.
SANDBOX_LIMIT, SANDBOX_PERIOD = 500, 60.0

NO_KEY_MESSAGE = (
    f"no API key: pass --api-key or set {ENV_API_KEY} (make one in Kayse under company settings, "
    "API Keys), or add --sandbox to try the command against a local emulator with no account"
)


class UsageProblem(click.ClickException):
    """A usage or configuration error: one line on stderr, exit status 2."""

    exit_code = EXIT_USAGE


class CommandFailed(click.ClickException):
    """The command ran and failed: one line on stderr, exit status 1."""

    exit_code = EXIT_FAILED


@attrs.define
class Config:
    """The options every command shares, from the command line or the environment."""

    api_key: str | None = attrs.field(default=None, repr=False)
    base_url: str | None = None
    sandbox: bool = False

    @contextlib.contextmanager
    def client(self, *, quiet: bool = False) -> Generator[Kayse]:
        """A blocking client for the command, starting the sandbox emulator first if asked."""
        from .. import Kayse
        from ..quota import MemoryQuota

        if not self.sandbox and not self.api_key:
            raise UsageProblem(NO_KEY_MESSAGE)
        with contextlib.ExitStack() as stack:
            options: dict[str, Any] = {"base_url": self.base_url}  # None: the SDK's default
            if self.sandbox:
                from ..testing import ThreadedEmulator
                from ._render import err_console

                emulator = ThreadedEmulator(api_key=SANDBOX_API_KEY, limit=SANDBOX_LIMIT, period=SANDBOX_PERIOD)
                url = stack.enter_context(emulator).url
                if not quiet:
                    budget = f"{SANDBOX_LIMIT} requests per {SANDBOX_PERIOD:g} s"
                    err_console().print(f"[dim]sandbox: a local emulator at {url}, empty at start, {budget}; nothing "
                                        "leaves this machine[/]")  # fmt: skip
                # The sandbox's server is new at every run: its budget is its own, not the process's.
                options = {"base_url": url, "calls_base_url": url, "quota": MemoryQuota(SANDBOX_LIMIT, SANDBOX_PERIOD)}
            try:
                kayse = Kayse(SANDBOX_API_KEY if self.sandbox else self.api_key, **options)
            except ConfigurationError as exc:
                raise UsageProblem(str(exc)) from None
            yield stack.enter_context(kayse)


def describe_error(exc: BaseException) -> str:
    """A one-line description of an SDK error, for the end of a failed command."""
    if isinstance(exc, ValidationError):
        return f"{exc.field}: {exc.reason} (nothing was sent)"
    return " ".join(str(exc).split())


def translate(exc: KayseError) -> click.ClickException:
    """The click exception (and so the exit status) that ends a command after ``exc``."""
    if isinstance(exc, ConfigurationError):
        return UsageProblem(describe_error(exc))
    if isinstance(exc, AuthenticationError):
        return UsageProblem(f"the API key was refused (401): check --api-key or {ENV_API_KEY}")
    if isinstance(exc, TransportError) and not exc.may_have_been_sent:
        return UsageProblem(f"{describe_error(exc)}; check --base-url and your connection")
    return CommandFailed(describe_error(exc))
