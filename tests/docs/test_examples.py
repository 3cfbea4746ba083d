"""Every ```python block of docs/ runs, against the emulator, so that no example can rot.

The convention, for whoever writes the docs:

- Each ```python block is a complete program, run on its own in a fresh namespace
  (``__name__ == "__main__"``) in a fresh temporary directory that holds copies of
  the sample files ``clients.csv`` and ``cases.csv``. Top-level ``await`` is allowed
  (the block then runs in ``asyncio.run``), as in a notebook.
- ``KAYSE_API_KEY``, ``KAYSE_BASE_URL``, ``KAYSE_CALLS_BASE_URL`` and
  ``KAYSE_PUBLIC_API_KEY`` point at an emulator whose data, stats and rate budget are
  emptied before each block: ``AsyncKayse()`` and ``Kayse()`` with no arguments reach it.
  A block may also start its own ``Emulator``.
- A block that defines test functions (``def test_...``) is a test module: it is
  written to a file and run by pytest in a subprocess (``-W error``,
  ``asyncio_mode=auto``, the ``kayse_emulator`` fixture available through the plugin),
  and must pass with at least one test run.
- A block that cannot run here (Redis across machines, a real account) says so in its
  title: ```python title="not run: <why>"```. It is reported as skipped with that
  reason; a title of "not run" without a reason fails.
- Warnings are errors, as in the rest of the suite.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import inspect
import linecache
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import click
import pytest

from kayse_async.testing import ThreadedEmulator

DOCS = Path(__file__).resolve().parents[2] / "docs"
SAMPLES = ("clients.csv", "cases.csv")
API_KEY = "docs-key"
EXAMPLE_TIMEOUT = 60.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\n`]*)$")
_TITLE = re.compile(r'title\s*=\s*"(?P<title>[^"]*)"')
_NOT_RUN = re.compile(r"^not run\b\s*:?\s*(?P<why>.*)$", re.IGNORECASE)


@attrs.frozen
class Block:
    """One ```python block of a page."""

    page: str
    line: int
    code: str
    title: str | None

    @property
    def id(self) -> str:
        """``page.md:line``, the test id."""
        return f"{self.page}:{self.line}"


def python_blocks(text: str, page: str) -> Iterator[Block]:
    """Every fenced block whose language is python, with the line of its opening fence."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"].strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(
            rf"^{re.escape(indent)}{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]
        ):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        language = info.split()[0].lower() if info else ""
        if language in ("python", "py"):
            title = _TITLE.search(info)
            yield Block(page, i + 1, "\n".join(body) + "\n", title["title"] if title else None)
        i = j + 1


def all_blocks() -> list[Block]:
    """The python blocks of every page under docs/, in page order."""
    blocks: list[Block] = []
    for path in sorted(DOCS.rglob("*.md")):
        blocks.extend(python_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(DOCS))))
    return blocks


BLOCKS = all_blocks()


@pytest.fixture(scope="module")
def _server() -> Iterator[ThreadedEmulator]:
    # A budget far above what any example spends: every block gets a fresh one anyway.
    with ThreadedEmulator(API_KEY, limit=1_000_000, period=3600.0) as emulator:
        yield emulator


@pytest.fixture
def docs_env(_server: ThreadedEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ThreadedEmulator:
    """An emptied emulator, the environment pointing at it, and a working directory with the samples."""
    _server.reset_stats(store=True, limits=True)
    for name, value in (
        ("KAYSE_API_KEY", API_KEY),
        ("KAYSE_BASE_URL", _server.url),
        ("KAYSE_CALLS_BASE_URL", _server.url),
        ("KAYSE_PUBLIC_API_KEY", API_KEY),
    ):
        monkeypatch.setenv(name, value)
    for name in SAMPLES:
        shutil.copy(DOCS / "examples" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return _server


def run_block(block: Block) -> None:
    """Run one block as a program (top-level await allowed)."""
    # Registered so that a failure's traceback shows the example's own lines.
    linecache.cache[block.id] = (len(block.code), None, block.code.splitlines(keepends=True), block.id)
    code = compile(block.code, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    namespace: dict[str, object] = {"__name__": "__main__"}
    if code.co_flags & inspect.CO_COROUTINE:
        coroutine = eval(code, namespace)
        asyncio.run(coroutine)
    else:
        exec(code, namespace)


def is_test_module(block: Block) -> bool:
    """True when the block defines pytest test functions (it is then run by pytest)."""
    tree = ast.parse(block.code, filename=block.id)
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_") for node in tree.body
    )


def run_test_module(block: Block, directory: Path) -> None:
    """Run a block that is a pytest module, as a user's project would."""
    path = directory / "test_doc_example.py"
    path.write_text(block.code, encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
    command += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function", str(path)]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT, check=False)
    assert done.returncode == 0, f"{block.id}: pytest failed\n{done.stdout}\n{done.stderr}"
    assert re.search(r"\b[1-9]\d* passed", done.stdout), done.stdout
    assert "skipped" not in done.stdout, done.stdout


def test_the_docs_have_examples() -> None:
    """The extraction finds the pages' examples (an empty list would make every other test vacuous)."""
    pages = {block.page for block in BLOCKS}
    assert {"index.md", "getting-started.md", "resources.md", "errors.md"} <= pages
    assert len(BLOCKS) >= 15


def test_extraction_handles_indented_fences_and_titles() -> None:
    """Blocks inside admonitions are dedented; titles are read; other languages are left out."""
    text = '!!! tip\n    ```python title="not run: needs Redis"\n    x = 1\n    ```\n\n```console\n$ ls\n```\n'
    assert list(python_blocks(text, "p.md")) == [Block("p.md", 2, "x = 1\n", "not run: needs Redis")]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_example_runs(block: Block, docs_env: ThreadedEmulator) -> None:
    """The example runs to its end against the emulator."""
    not_run = _NOT_RUN.match(block.title or "")
    if not_run is not None:
        why = not_run["why"].strip()
        assert why, f'{block.id}: a block that is not run must say why (title="not run: <why>")'
        pytest.skip(f"{block.id}: not run: {why}")
    assert os.environ["KAYSE_BASE_URL"] == docs_env.url
    if is_test_module(block):
        run_test_module(block, Path.cwd())
        return
    # In a thread of its own: asyncio.run there cannot disturb the event loop that pytest
    # plugins keep for the main thread, and the example starts from a thread without a loop.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="docs-example") as pool:
        pool.submit(run_block, block).result(timeout=EXAMPLE_TIMEOUT)


def _click_options(command: click.Command) -> set[str]:
    names = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--")}
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names |= _click_options(sub)
    return names


def test_every_option_the_cli_page_names_exists() -> None:
    """Each `--option` written in docs/cli.md is an option of some kayse command (or of the emulator's parser)."""
    from kayse_async.cli import cli
    from kayse_async.testing import build_parser

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))
    known = _click_options(cli) | {"--help", "--version"}
    known |= {opt for action in build_parser()._actions for opt in action.option_strings}
    assert documented, "the page names no option"
    assert documented <= known, sorted(documented - known)


def _console_blocks(text: str) -> Iterator[list[str]]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "```console":
            end = lines.index("```", i + 1)
            yield lines[i + 1 : end]


def test_the_documented_dry_run_output_is_what_the_command_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dry run transcript of docs/cli.md, run from the repository root, prints exactly the lines shown."""
    from click.testing import CliRunner

    from kayse_async.cli import cli

    transcripts = [
        block
        for block in _console_blocks((DOCS / "cli.md").read_text(encoding="utf-8"))
        if block[0].startswith("$ kayse ") and "--dry-run" in block[0]
    ]
    assert transcripts, "docs/cli.md shows no dry run"
    monkeypatch.chdir(DOCS.parent)
    for block in transcripts:
        assert len(block) > 1, f"no output shown for {block[0]}"
        result = CliRunner().invoke(cli, shlex.split(block[0].removeprefix("$ kayse ")), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == block[1:]
