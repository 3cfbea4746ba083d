"""Fixtures of the ``kayse`` command's tests: an emulator in this process, and ways to run the command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kayse_async.cli import cli
from kayse_async.testing import ThreadedEmulator

API_KEY = "cli-test-key"
REPO = Path(__file__).resolve().parents[2]
_MAIN = "import sys; from kayse_async.cli import main; sys.exit(main())"
_ENV_NAMES = ("KAYSE_API_KEY", "KAYSE_BASE_URL", "KAYSE_CALLS_BASE_URL", "KAYSE_PUBLIC_API_KEY")


@pytest.fixture(scope="module")
def _server() -> Iterator[ThreadedEmulator]:
    # A budget far above what the tests spend: rate limiting has tests of its own.
    with ThreadedEmulator(API_KEY, limit=1_000_000, period=3600.0) as emulator:
        yield emulator


@pytest.fixture
def emulator(_server: ThreadedEmulator) -> ThreadedEmulator:
    """The module's emulator, emptied: no data, no stats, a fresh budget."""
    _server.configure(latency_ms=0.0, fault_rate=0.0)
    _server.reset_stats(store=True, limits=True)
    return _server


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def invoke(args: Sequence[str], *, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run ``kayse ARGS`` in this process; stdout and stderr are kept apart."""
    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


def against(emulator: ThreadedEmulator, *args: str) -> list[str]:
    """The arguments that point the command at ``emulator``."""
    return ["--base-url", emulator.url, "--api-key", API_KEY, *args]


def kayse_process(args: Sequence[str], *, env: dict[str, str] | None = None, **options: Any) -> subprocess.Popen[str]:
    """Start ``kayse ARGS`` as a real process (the installed entry point's code, by module); ``env`` is added."""
    env = {**{k: v for k, v in os.environ.items() if k not in _ENV_NAMES}, "COLUMNS": "120", **(env or {})}
    script = Path(sys.executable).with_name("kayse")
    # The installed entry point when there is one (what users run), else the same code by module.
    command = [str(script)] if script.exists() else [sys.executable, "-c", _MAIN]
    return subprocess.Popen(
        [*command, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` and return it."""
    path.write_text(text, encoding="utf-8")
    return path
