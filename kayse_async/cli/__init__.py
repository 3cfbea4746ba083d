"""The ``kayse`` command: import records, look them up, delete them, send messages, run the emulator.

Installed with the ``cli`` extra (``pip install 'kayse-async[cli]'``). Every
command takes ``--api-key`` (or ``KAYSE_API_KEY``), ``--base-url`` (or
``KAYSE_BASE_URL``) or ``--sandbox``, which runs it against an emulator
started inside the process. Exit status: 0 done, 1 something was refused or
failed, 2 a usage or configuration error.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._app import cli

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kayse`` command with ``argv`` (default: the process's arguments); returns the exit status."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="kayse", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    return 0
