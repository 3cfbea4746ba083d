"""Output of the ``kayse`` command: consoles, JSON, tables.

Data goes to stdout; progress, notes and errors go to stderr, so that
``--json`` output can be piped whole into another program.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table


def out_console() -> Console:
    """A console on the current stdout (made per call: click's test runner swaps the streams)."""
    return Console(file=sys.stdout, soft_wrap=True)


def err_console() -> Console:
    """A console on the current stderr."""
    return Console(file=sys.stderr, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout, and nothing else."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Print a table on stdout; returns the number of rows."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
        count += 1
    out_console().print(table)
    return count


def short(value: Any, width: int = 60) -> str:
    """``value`` as text, cut to ``width`` characters."""
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
