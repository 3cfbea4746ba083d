"""``kayse import`` via click's runner against an in-process emulator: summaries, line numbers, dry run, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from kayse_async.testing import ThreadedEmulator

from .conftest import API_KEY, REPO, against, invoke, write

CLIENTS_CSV = "external_source,external_source_id,first_name,last_name,date_of_birth,case_ids\n"


def test_bad_lines_are_reported_by_line_number_and_the_good_ones_stored(
    tmp_path: Path, emulator: ThreadedEmulator
) -> None:
    """Unreadable cells, locally invalid records and server refusals each name their line; the rest is stored."""
    path = write(
        tmp_path / "people.csv",
        CLIENTS_CSV
        + "crm,a1,Ann,Lee,1990-01-15,\n"  # line 2: good
        + "crm,a2,Bo,,1990-01-15,\n"  # line 3: no last_name (checked locally)
        + "crm,a3,Cy,Kim,15/01/1990,\n"  # line 4: not a YYYY-MM-DD date (checked locally)
        + "crm,a4,Di,Ng,1991-02-03,x\n"  # line 5: not an id (the cell cannot be read)
        + "crm,a5,Ed,Oh,,\n"  # line 6: good
        + "crm,a6,Fe,Wu,,999\n",  # line 7: case 999 does not exist (refused by the server)
    )
    result = invoke(against(emulator, "import", "clients", str(path), "--chunk-size", "1"))
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "created   2" in out
    assert "rejected  4" in out
    assert "line 3: last_name: is required" in out
    assert "line 4: date_of_birth: expected a date as YYYY-MM-DD" in out
    assert "line 5: case_ids[0]: expected a whole number, got 'x'" in out
    assert "line 7: case_ids" in out
    assert "400" in out.split("line 7:")[1]
    stored = {c["external_source_id"] for c in emulator.snapshot()["clients"]}
    assert stored == {"a1", "a5"}


def test_json_summary_is_the_whole_of_stdout_and_updates_are_counted_apart(
    tmp_path: Path, emulator: ThreadedEmulator
) -> None:
    """--json: stdout parses as one JSON document; records with an id count as updated, without as created."""
    first = write(
        tmp_path / "a.jsonl",
        "\n".join(
            json.dumps(
                {"external_source": "crm", "external_source_id": f"j{n}", "first_name": "F", "last_name": str(n)}
            )
            for n in range(3)
        ),
    )
    assert invoke(against(emulator, "import", "clients", str(first), "--json")).exit_code == 0
    second = write(
        tmp_path / "b.jsonl",
        '{"id": 1, "first_name": "Changed", "last_name": "0"}\n'
        '{"id": 2, "first_name": "Also", "last_name": "1", "city": "Boston"}\n'
        '{"external_source": "crm", "external_source_id": "j9", "first_name": "New", "last_name": "9"}\n',
    )
    result = invoke(against(emulator, "import", "clients", str(second), "--json"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["created"] == 1
    assert summary["updated"] == 2
    assert summary["rejected"] == []
    assert summary["records"] == 3
    assert summary["requests"] == 1
    assert summary["exit_code"] == 0
    clients = {c["id"]: c for c in emulator.snapshot()["clients"]}
    assert len(clients) == 4
    assert clients[1]["first_name"] == "Changed"
    assert clients[2]["city"] == "Boston"


def test_json_summary_lists_every_rejection_with_its_line(tmp_path: Path, emulator: ThreadedEmulator) -> None:
    """--json with bad records: exit 1, and each rejection has line, field and reason."""
    path = write(
        tmp_path / "lists.json",
        '[\n  {"name": "All", "filter": {}},\n  {"name": "  "},\n  {"name": "B", "include_ids": [1]}\n]\n',
    )
    result = invoke(against(emulator, "import", "case-lists", str(path), "--json"))
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["created"] == 1
    assert [(r["line"], r["field"]) for r in summary["rejected"]] == [(3, "name"), (4, "include_ids")]
    assert [cl["name"] for cl in emulator.snapshot()["case_lists"]] == ["All"]


def test_dry_run_checks_every_line_and_sends_nothing(tmp_path: Path, emulator: ThreadedEmulator) -> None:
    """--dry-run: the plan (requests, chunks) and the rejections, with zero requests reaching the server."""
    rows = "".join(f"crm,d{n},First,Last,,\n" for n in range(1_200)) + "crm,bad,First,,,\n"
    path = write(tmp_path / "many.csv", CLIENTS_CSV + rows)
    result = invoke(against(emulator, "import", "clients", str(path), "--dry-run", "--json"))
    assert result.exit_code == 1, result.output
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True
    assert (plan["created"], plan["requests"], plan["chunks"]) == (1_200, 3, 3)
    assert [(r["line"], r["field"]) for r in plan["rejected"]] == [(1_202, "last_name")]
    assert plan["plan"]["hourly_windows"] == 1
    human = invoke(against(emulator, "import", "clients", str(path), "--dry-run", "--chunk-size", "2"))
    assert "requests      600 (600 chunks of up to 2" in human.stdout
    assert "2 hourly windows" in human.stdout
    assert emulator.stats()["requests"] == 0
    assert emulator.snapshot()["clients"] == []


def test_dry_run_needs_no_key(tmp_path: Path) -> None:
    """A dry run sends nothing, so it runs without any configuration."""
    path = write(tmp_path / "c.csv", CLIENTS_CSV + "crm,x,A,B,,\n")
    result = invoke(["import", "clients", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would create  1" in result.stdout


def test_no_key_and_no_sandbox_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Without configuration: one line on stderr saying how to get a key or use --sandbox; no traceback."""
    path = write(tmp_path / "c.csv", CLIENTS_CSV + "crm,x,A,B,,\n")
    result = invoke(["import", "clients", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "KAYSE_API_KEY" in lines[0]
    assert "--sandbox" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_refused_key_is_exit_2_and_never_printed(tmp_path: Path, emulator: ThreadedEmulator) -> None:
    """A wrong key: exit 2 with a hint; the key appears in no output."""
    secret = "s3cret-wrong-key-0042"
    path = write(tmp_path / "c.csv", CLIENTS_CSV + "crm,x,A,B,,\n")
    result = invoke(["--base-url", emulator.url, "--api-key", secret, "import", "clients", str(path)])
    assert result.exit_code == 2
    assert "401" in result.stderr
    assert secret not in result.output
    assert secret not in result.stdout + result.stderr


def test_an_unknown_column_stops_before_sending(tmp_path: Path, emulator: ThreadedEmulator) -> None:
    """A header that is not a field name is a usage error (exit 2), found before any request."""
    path = write(tmp_path / "c.csv", "external_source,external_source_id,first_name,lastname\ncrm,x,A,B\n")
    result = invoke(against(emulator, "import", "clients", str(path)))
    assert result.exit_code == 2
    assert "'lastname'" in result.stderr
    assert emulator.stats()["requests"] == 0


def test_usage_errors_exit_2(tmp_path: Path, emulator: ThreadedEmulator) -> None:
    """A missing file, an unknown extension and a bad option are usage errors."""
    assert invoke(against(emulator, "import", "clients", str(tmp_path / "none.csv"))).exit_code == 2
    other = write(tmp_path / "c.txt", "x")
    result = invoke(against(emulator, "import", "clients", str(other)))
    assert result.exit_code == 2
    assert "--format" in result.stderr
    assert invoke(against(emulator, "import", "clients", str(other), "--chunk-size", "0")).exit_code == 2
    assert emulator.stats()["requests"] == 0


def test_the_sample_cases_link_to_the_sample_clients(emulator: ThreadedEmulator) -> None:
    """docs/examples: every client and case is stored, and each case's client_ids are the CSV's."""
    examples = REPO / "docs" / "examples"
    clients = invoke(against(emulator, "import", "clients", str(examples / "clients.csv"), "--json", "--no-journal"))
    assert clients.exit_code == 0, clients.output
    assert json.loads(clients.stdout)["created"] == 5_000
    cases = invoke(against(emulator, "import", "cases", str(examples / "cases.csv"), "--json", "--no-journal"))
    assert cases.exit_code == 0, cases.output
    summary = json.loads(cases.stdout)
    assert (summary["created"], summary["requests"]) == (2_500, 5)
    with (examples / "cases.csv").open(encoding="utf-8") as handle:
        expected = {
            row["case_number"]: [int(i) for i in row["client_ids"].split(";")] for row in csv.DictReader(handle)
        }
    stored = emulator.snapshot()["cases"]
    assert {case["case_number"]: sorted(case["client_ids"]) for case in stored} == expected
    assert len(emulator.snapshot()["clients"]) == 5_000


def test_api_key_comes_from_the_environment(tmp_path: Path, emulator: ThreadedEmulator) -> None:
    """KAYSE_API_KEY and KAYSE_BASE_URL configure the command like the options do."""
    path = write(tmp_path / "c.csv", CLIENTS_CSV + "crm,env,A,B,,\n")
    result = invoke(["import", "clients", str(path)], env={"KAYSE_API_KEY": API_KEY, "KAYSE_BASE_URL": emulator.url})
    assert result.exit_code == 0, result.output
    assert len(emulator.snapshot()["clients"]) == 1
