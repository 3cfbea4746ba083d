"""What long jobs share, without a server: the journal's place, the resume line, readable times."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from kayse_async.cli._jobs import command_line, default_journal
from kayse_async.cli._render import local_time

from .conftest import invoke, write


def test_the_journal_goes_beside_the_input_or_into_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writable folder holds FILE.kayse-journal; else $XDG_STATE_HOME/kayse/, one name per input path."""
    path = write(tmp_path / "clients.csv", "first_name\nA\n")
    assert default_journal(path) == tmp_path / "clients.csv.kayse-journal"
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    elsewhere = default_journal(path)
    assert elsewhere.parent == tmp_path / "state" / "kayse"
    assert elsewhere.parent.is_dir()
    assert elsewhere.name.startswith("clients.csv.")
    assert elsewhere.name.endswith(".kayse-journal")
    assert default_journal(path) == elsewhere
    (tmp_path / "other").mkdir()
    assert default_journal(write(tmp_path / "other" / "clients.csv", "")) != elsewhere


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--api-key", "s3cret", "import", "clients", "a b.csv"], "kayse --api-key *** import clients 'a b.csv'"),
        (["--api-key=s3cret", "delete", "clients", "7"], "kayse --api-key=*** delete clients 7"),
    ],
)
def test_the_resume_line_is_the_command_as_typed_without_the_key(argv: list[str], shown: str) -> None:
    """The command printed to resume is the one typed, quoted for a shell, with the key's value as ***."""
    context = click.Context(click.Command("kayse"))
    context.meta["kayse.argv"] = argv
    assert command_line(context) == shown


@pytest.fixture
def three_hours_east(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's time zone set to UTC+3 for the test."""
    monkeypatch.setenv("TZ", "XXX-3")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("three_hours_east")
def test_times_are_local_and_say_how_far() -> None:
    """A UTC instant prints in the local zone, with "in 42 min" / "5 s ago" when asked."""
    moment = dt.datetime(2026, 12, 2, 5, 48, 17, 148717, tzinfo=dt.UTC)
    assert local_time(moment) == "2026-12-02 08:48:17"
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=42, seconds=20)
    assert local_time(soon, relative=True).endswith(" (in 42 min)")
    assert local_time(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5), relative=True).endswith(" (5 s ago)")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3, minutes=5, seconds=20)
    assert local_time(later, relative=True).endswith(" (in 3 h 5 min)")


def test_journal_and_no_journal_together_are_refused(tmp_path: Path) -> None:
    """--journal and --no-journal contradict each other: exit 2 before anything else."""
    path = write(tmp_path / "c.csv", "first_name,last_name\nA,B\n")
    result = invoke(["--sandbox", "import", "clients", str(path), "--journal", "j", "--no-journal"])
    assert result.exit_code == 2
    assert "--journal and --no-journal" in result.stderr
