"""Output of the ``kayse`` command: consoles, JSON, tables, numbers and times for people.

Data goes to stdout; progress, notes and errors go to stderr, so that
``--json`` output can be piped whole into another program.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Column, Table


def out_console() -> Console:
    """A console on the current stdout (made per call: click's test runner swaps the streams)."""
    return Console(file=sys.stdout, soft_wrap=True)


def err_console() -> Console:
    """A console on the current stderr."""
    return Console(file=sys.stderr, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout, and nothing else."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def as_json_ready(value: Any) -> Any:
    """A model (or a list of them) as JSON-ready data, every field included."""
    if isinstance(value, list):
        return [as_json_ready(item) for item in value]
    return None if value is None else value.to_dict()


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Print a table on stdout; returns the number of rows."""
    table = Table(*(Column(name, overflow="fold") for name in columns), title=title, title_justify="left")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    out_console().print(table)
    return table.row_count


def short(value: Any, width: int = 60) -> str:
    """``value`` as text, cut to ``width`` characters."""
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``"1 record"``, ``"2 records"``."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def clock(seconds: float) -> str:
    """A duration as ``M:SS`` or ``H:MM:SS``."""
    seconds = max(0, math.ceil(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def local_time(moment: dt.datetime | None = None, *, relative: bool = False) -> str:
    """``2026-12-02 06:48:17`` in the machine's time zone, with ``(in 42 min)`` if ``relative``."""
    now = dt.datetime.now(dt.UTC)
    moment = moment or now
    text = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if not relative:
        return text
    seconds = round((moment - now).total_seconds())
    size = abs(seconds)  # minutes up to 100 (an hour's window reads "in 60 min"), then hours
    span = (
        f"{size} s" if size < 60 else f"{size // 60} min" if size < 6000 else f"{size // 3600} h {size // 60 % 60} min"
    )
    return f"{text} ({'in ' + span if seconds >= 0 else span + ' ago'})"
