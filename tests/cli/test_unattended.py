"""The ``kayse`` command as a real process for jobs nobody watches: pipes, signals, resume, up-front checks."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kayse_async import Kayse
from kayse_async.testing import ThreadedEmulator

from .conftest import API_KEY, kayse_process, write

TIMEOUT = 60
HEADER = "external_source,external_source_id,first_name,last_name\n"
PROGRESS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d clients [\d,]+/[\d,]+ \(\d+%\) · .* req · quota [\d?]+/\d+")


@pytest.fixture
def small_budget() -> Iterator[ThreadedEmulator]:
    """An emulator allowing 10 requests per 3 s: a job spans several rate-limit windows in seconds."""
    with ThreadedEmulator(API_KEY, limit=10, period=3.0) as emulator:
        yield emulator


def clients_csv(path: Path, count: int, prefix: str = "r") -> Path:
    """A CSV of ``count`` valid new clients with external ids ``{prefix}0000``..."""
    return write(path, HEADER + "".join(f"crm,{prefix}{n:04d},First,Last{n}\n" for n in range(count)))


def stored_ids(emulator: ThreadedEmulator) -> list[str]:
    """The external ids of every client the emulator holds, sorted (a duplicate shows twice)."""
    return sorted(client["external_source_id"] for client in emulator.snapshot()["clients"])


def done_batches(journal: Path) -> int:
    """Batches the journal records as stored."""
    if not journal.exists():
        return 0
    return journal.read_text(encoding="utf-8", errors="replace").count('"type":"done"')


def started(args: list[str], journal: Path, batches: int) -> subprocess.Popen[str]:
    """``kayse ARGS`` started, once its journal records ``batches`` batches stored (or it ended)."""
    process = kayse_process(args)
    deadline = time.monotonic() + TIMEOUT
    while done_batches(journal) < batches and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return process


def import_args(emulator: ThreadedEmulator, path: Path, *extra: str) -> list[str]:
    """``kayse import clients PATH`` pointed at ``emulator``."""
    return ["--base-url", emulator.url, "--api-key", API_KEY, "import", "clients", str(path), *extra]


def progress_while_running(args: list[str]) -> tuple[list[str], str]:
    """Run ``kayse ARGS`` to success; the progress lines read from its stderr before it ended, and all stderr."""
    process = kayse_process(args)
    assert process.stderr is not None
    early: list[str] = []
    for line in process.stderr:
        if process.poll() is not None:
            break
        early.append(line.rstrip("\n"))
    out, rest = process.communicate(timeout=TIMEOUT)
    everything = "\n".join(early) + rest
    assert process.returncode == 0, out + everything
    return [line for line in early if PROGRESS.match(line)], everything


def test_progress_lines_reach_a_pipe_while_the_job_runs(tmp_path: Path, small_budget: ThreadedEmulator) -> None:
    """Stderr to a pipe: plain whole lines at the interval while the job runs, not only at the end."""
    path = clients_csv(tmp_path / "c.csv", 150)
    progress, stderr = progress_while_running(
        import_args(small_budget, path, "--chunk-size", "10", "--progress-interval", "0.2")
    )
    assert len(progress) >= 5, stderr  # 15 requests at 10 per 3 s: seconds of lines, one per 0.2 s
    assert "\x1b[" not in stderr  # no terminal codes in a log file
    assert any(line.startswith("clients 0/150 (0%)", 20) for line in progress)
    assert len(stored_ids(small_budget)) == 150


def test_a_new_rate_limit_window_writes_a_line(tmp_path: Path, small_budget: ThreadedEmulator) -> None:
    """With a long interval, a line still comes when the quota's window renews, while the job waits on it."""
    path = clients_csv(tmp_path / "c.csv", 240)
    progress, stderr = progress_while_running(
        import_args(small_budget, path, "--chunk-size", "10", "--progress-interval", "600")
    )
    # Besides the start and the end: a line per new window (24 requests at 10 per window: two renewals).
    assert [line for line in progress if not re.search(r" (0|240)/240 ", line)], stderr


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_stop_signal_finishes_what_is_in_flight_and_the_same_command_resumes(
    tmp_path: Path, emulator: ThreadedEmulator, signum: signal.Signals, status: int
) -> None:
    """SIGTERM, SIGHUP or SIGINT: summary, 128+N, the exact command printed; rerunning it stores every row once."""
    total = 400
    path = clients_csv(tmp_path / "big.csv", total)
    args = import_args(emulator, path, "--chunk-size", "20", "--concurrency", "2")
    emulator.configure(latency_ms=150.0)
    journal = tmp_path / "big.csv.kayse-journal"
    process = started(args, journal, 3)
    process.send_signal(signum)
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == status, err
    assert f"Interrupted by {signum.name}:" in out
    # The requests in flight were let finish: the summary counts every row the server stored.
    stored = len(stored_ids(emulator))
    assert 0 < stored < total
    assert f"created   {stored:,}" in out
    assert f"not done  {total - stored:,}" in out
    resume = out.split("To resume, run the same command", 1)[1].splitlines()[1].strip()
    assert resume == f"kayse --base-url {emulator.url} --api-key *** import clients {path} " + " ".join(args[-4:])
    assert API_KEY not in out + err
    assert "Traceback" not in err

    emulator.configure(latency_ms=0.0)
    before = emulator.stats()["requests"]
    rerun = kayse_process([arg if arg != "***" else API_KEY for arg in resume.split()[1:]])
    out, err = rerun.communicate(timeout=TIMEOUT)
    assert rerun.returncode == 0, out + err
    assert f"created   {total:,}" in out  # the journal's rows count, without a request
    assert emulator.stats()["requests"] - before <= (total - stored) // 20 + 1
    assert stored_ids(emulator) == [f"r{n:04d}" for n in range(total)]
    assert not journal.exists()  # every row stored: the default journal is removed


def test_a_second_signal_stops_at_once_and_the_rerun_resolves_the_batches_cut_off(
    tmp_path: Path, emulator: ThreadedEmulator
) -> None:
    """Two SIGTERMs: the requests in flight are cancelled; the rerun stores each remaining row once, none twice."""
    total = 300
    path = clients_csv(tmp_path / "c.csv", total, prefix="s")
    args = import_args(emulator, path, "--chunk-size", "25", "--concurrency", "2", "--json")
    emulator.configure(latency_ms=1500.0)
    process = started(args, tmp_path / "c.csv.kayse-journal", 1)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 143, err
    partial = json.loads(out)
    assert (partial["signal"], partial["interrupted"]) == ("SIGTERM", True)
    assert partial["not_done"] >= partial["pending"] > 0  # cut off in flight, not let finish

    emulator.configure(latency_ms=0.0)
    rerun = kayse_process(args)
    out, err = rerun.communicate(timeout=TIMEOUT)
    summary = json.loads(out)
    assert summary["rejected"] == [], err
    assert summary["created"] + summary["uncertain_count"] == total
    assert stored_ids(emulator) == [f"s{n:04d}" for n in range(total)]


def test_without_a_journal_an_interrupted_import_does_not_advise_one(
    tmp_path: Path, emulator: ThreadedEmulator
) -> None:
    """--no-journal and Ctrl-C: exit 130, no journal written, and no advice to rerun with a journal."""
    path = clients_csv(tmp_path / "c.csv", 300)
    emulator.configure(latency_ms=150.0)
    process = kayse_process(import_args(emulator, path, "--chunk-size", "20", "--concurrency", "1", "--no-journal"))
    deadline = time.monotonic() + TIMEOUT
    while len(emulator.snapshot()["clients"]) < 40 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, err
    assert "No journal was kept: running the command again sends every record again." in out
    assert "--journal" not in out.replace("--no-journal", "")
    assert "To resume" not in out
    assert list(tmp_path.iterdir()) == [path]


def test_an_unreachable_server_stops_the_job_with_one_error_and_exit_2(tmp_path: Path) -> None:
    """No server: after the retries, one error line and exit 2, not a rejection per row; the journal is kept."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = clients_csv(tmp_path / "c.csv", 2_000)
    process = kayse_process(
        ["--base-url", f"http://127.0.0.1:{port}", "--api-key", API_KEY, "import", "clients", str(path)]
    )
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2, out + err
    errors = [line for line in err.splitlines() if not PROGRESS.match(line)]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"Error: could not connect for POST http://127.0.0.1:{port}/v1/clients/bulk")
    assert errors[0].endswith("check --base-url and your connection")
    assert "not done  2,000" in out
    assert "line " not in out
    assert "To resume, run the same command" in out
    assert (tmp_path / "c.csv.kayse-journal").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("external_source,first_name\n" + "crm,A\n" * 50, "the columns 'external_source_id', 'last_name' are required"),
        (HEADER.replace("last_name", "lastname") + "crm,1,A,B\n", "unknown column(s) 'lastname'"),
        (HEADER, "c.csv holds no records: nothing to import"),
        ("", "c.csv holds no records: nothing to import"),
        (HEADER + "crm,1,A,B\n" * 5_000 + "crm,2,Ren\xe9,B\n", "c.csv, line 5002: byte 0xe9 is not utf-8 text"),
    ],
    ids=["missing-columns", "unknown-column", "header-only", "empty", "latin-1-byte"],
)
def test_up_front_checks_stop_with_one_message_before_sending(
    tmp_path: Path, emulator: ThreadedEmulator, content: str, message: str
) -> None:
    """Faults that would fail every row: exit 2, one line naming them, nothing sent."""
    path = tmp_path / "c.csv"
    path.write_bytes(content.encode("latin-1"))
    process = kayse_process(import_args(emulator, path))
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2, out + err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert emulator.stats()["requests"] == 0


def test_encoding_option_reads_a_latin_1_file(tmp_path: Path, emulator: ThreadedEmulator) -> None:
    """--encoding latin-1: the byte that stopped a UTF-8 read becomes its letter in the stored record."""
    path = tmp_path / "c.csv"
    path.write_bytes((HEADER + "crm,1,René,Lee\n").encode("latin-1"))
    process = kayse_process(import_args(emulator, path, "--encoding", "latin-1"))
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, out + err
    assert [c["first_name"] for c in emulator.snapshot()["clients"]] == ["René"]


def test_a_refused_line_mended_is_sent_by_the_same_command(tmp_path: Path, emulator: ThreadedEmulator) -> None:
    """A line the file check refuses keeps its place in the journal: mended, the rerun sends it alone."""
    rows = [f'crm,m{n:04d},First,Last{n},"{{""n"": {n}}}"\n' for n in range(1_000)]
    rows[700] = 'crm,m0700,First,Last700,"{bad json"\n'  # line 702
    path = write(tmp_path / "c.csv", HEADER.rstrip("\n") + ",meta\n" + "".join(rows))
    args = import_args(emulator, path, "--json")
    first = kayse_process(args)
    out, err = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 1, err
    summary = json.loads(out)
    assert [(r["line"], r["field"]) for r in summary["rejected"]] == [(702, None)]
    assert "meta: not valid JSON" in summary["rejected"][0]["reason"]
    write(path, path.read_text(encoding="utf-8").replace("{bad json", '{""n"": 700}'))
    second = kayse_process(args)
    out, err = second.communicate(timeout=TIMEOUT)
    assert second.returncode == 0, err
    summary = json.loads(out)
    assert (summary["created"], summary["requests"], summary["rejected"]) == (1_000, 1, [])
    assert stored_ids(emulator) == [f"m{n:04d}" for n in range(1_000)]


def test_delete_clients_goes_id_by_id_through_the_quota(small_budget: ThreadedEmulator) -> None:
    """`kayse delete clients`: one delete per id, waiting for the next window past 10; a summary; unknown ids."""
    with Kayse(API_KEY, base_url=small_budget.url) as kayse:
        made = kayse.clients.bulk_upsert(
            [{"external_source": "t", "external_source_id": f"d{n}", "first_name": "A", "last_name": "B"}
             for n in range(14)]
        )  # fmt: skip
    ids = [client.id for client in made.succeeded if client.id is not None]
    keep, gone = ids[:2], ids[2:]
    args = ["--base-url", small_budget.url, "--api-key", API_KEY, "delete", "clients", *map(str, gone), "99999"]
    process = kayse_process([*args, "--yes"])
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    assert out.strip() == "Deleted 12 clients (1 id not found)."
    assert sorted(c["id"] for c in small_budget.snapshot()["clients"]) == keep
    assert small_budget.stats()["requests"] >= 14  # 1 create + 13 deletes, past a window of 10


def test_quota_prints_local_time_and_json_keeps_iso_8601(emulator: ThreadedEmulator) -> None:
    """`kayse quota`: the reset in the machine's time zone with how long until it; --json: ISO 8601 with offset."""
    env = {"TZ": "XXX-3"}  # three hours east of UTC
    base = ["--base-url", emulator.url, "--api-key", API_KEY, "quota"]
    human = kayse_process(base, env=env).communicate(timeout=TIMEOUT)[0]
    found = re.search(r"window resets at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \(in (\d+) (s|min)\)", human)
    assert found, human
    data = json.loads(kayse_process([*base, "--json"], env=env).communicate(timeout=TIMEOUT)[0])
    resets = data["resets_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", resets), resets
    utc_hour = int(resets[11:13])
    assert int(found.group(1)[11:13]) == (utc_hour + 3) % 24


def test_one_bad_row_among_100_is_narrowed_down_and_the_99_others_are_stored(
    tmp_path: Path, emulator: ThreadedEmulator
) -> None:
    """Bisection is on by default: the server's refusal is pinned on line 43; its batch mates are stored."""
    rows = [f"crm,b{n:03d},F,L{n},{'99999' if n == 41 else ''}\n" for n in range(100)]
    path = write(tmp_path / "c.csv", HEADER.rstrip("\n") + ",case_ids\n" + "".join(rows))
    process = kayse_process(import_args(emulator, path, "--chunk-size", "10", "--progress", "none"))
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1, out + err
    assert "created   99" in out
    assert "line 43: case_ids[0]: 400: case 99999 not found" in out
    assert "clients[" not in out
    assert sorted(stored_ids(emulator)) == [f"b{n:03d}" for n in range(100) if n != 41]

    emulator.reset_stats(store=True)
    (tmp_path / "c.csv.kayse-journal").unlink()
    process = kayse_process(import_args(emulator, path, "--chunk-size", "10", "--bisect-budget", "0", "--json"))
    summary = json.loads(process.communicate(timeout=TIMEOUT)[0])
    rejected = {r["line"]: r for r in summary["rejected"]}
    assert sorted(rejected) == list(range(42, 52))  # the batch of lines 42 to 51, refused whole
    mates = [r for line, r in rejected.items() if line != 43]
    assert {(r["reason"], r["field"]) for r in mates} == {("not sent: batch refused because of line 43", None)}
    assert rejected[43]["field"] == "case_ids[0]"
    assert "clients[" not in json.dumps(summary)


def test_mended_rows_are_sent_and_a_stored_row_changed_is_refused_by_its_line(
    tmp_path: Path, emulator: ThreadedEmulator
) -> None:
    """Fix and rerun: rows not stored may change (the CLI's check, the server's refusal); a stored row may not."""
    rows = [f'crm,f{n:03d},First,Last{n},"{{""n"": {n}}}",\n' for n in range(60)]
    rows[10] = 'crm,f010,First,Last10,"{bad json",\n'  # line 12: refused by the file check
    rows[30] = "crm,f030,First,Last30,,99999\n"  # line 32: refused by the server
    path = write(tmp_path / "c.csv", HEADER.rstrip("\n") + ",meta,case_ids\n" + "".join(rows))
    args = import_args(emulator, path, "--chunk-size", "20", "--json")
    first = json.loads(kayse_process(args).communicate(timeout=TIMEOUT)[0])
    assert [r["line"] for r in first["rejected"]] == [12, 32]
    assert first["created"] == 58

    text = path.read_text(encoding="utf-8").replace("{bad json", '{""n"": 10}').replace(",99999\n", ",\n")
    write(path, text.replace("crm,f050,First,Last50", "crm,f050,First,Changed50"))  # line 52: stored, now changed
    process = kayse_process(args)
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1, err
    second = json.loads(out)
    assert second["created"] == 60 - 1  # 57 from the journal, the 2 mended lines sent now
    assert [(r["line"], r["field"]) for r in second["rejected"]] == [(52, None)]
    assert "changed since an earlier run of this job stored it" in second["rejected"][0]["reason"]
    assert stored_ids(emulator) == [f"f{n:03d}" for n in range(60)]
    assert {c["last_name"] for c in emulator.snapshot()["clients"]} >= {"Last10", "Last30", "Last50"}


def test_rows_left_uncertain_by_faults_resolve_themselves_on_the_rerun(
    tmp_path: Path, emulator: ThreadedEmulator
) -> None:
    """Answers lost (stored) and connections dropped (not stored): the rerun stores each row once, and says how."""
    path = clients_csv(tmp_path / "c.csv", 200, prefix="u")
    args = import_args(emulator, path, "--chunk-size", "10", "--progress", "none")
    emulator.configure(fault_rate=0.3, fault_kinds=["lost", "drop"], seed=3)
    first = kayse_process(args)
    out, err = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 1, out + err
    faults = emulator.stats()["faults"]
    assert faults["lost"] > 0
    assert faults["drop"] > 0
    uncertain = int(re.search(r"uncertain (\d+)", out).group(1))  # type: ignore[union-attr]
    assert "asks the server about each by its external_source and external_source_id" in out
    assert "Check them" not in out

    emulator.configure(fault_rate=0.0)
    second = kayse_process(args)
    out, err = second.communicate(timeout=TIMEOUT)
    assert second.returncode == 0, out + err
    resolved = re.search(r"resolved  (\d+) left uncertain by an earlier run: (\d+) stored by it, (\d+) stored now", out)
    assert resolved, out
    assert int(resolved.group(1)) == uncertain == int(resolved.group(2)) + int(resolved.group(3))
    assert int(resolved.group(2)) > 0  # stored by the first run (answers lost)
    assert int(resolved.group(3)) > 0  # not stored then (connections dropped), stored now
    assert stored_ids(emulator) == [f"u{n:04d}" for n in range(200)]  # none lost, none twice


def test_delete_cases_tells_confirmed_ids_from_ids_gone_after_a_lost_answer(emulator: ThreadedEmulator) -> None:
    """An answer lost after the delete was applied: the retry's answer cannot confirm them; the summary says so."""
    with Kayse(API_KEY, base_url=emulator.url) as kayse:
        made = kayse.cases.bulk_upsert(
            [{"case_number": f"D-{n}", "external_source": "t", "external_source_id": f"d{n}", "status": "a",
              "type": "b"} for n in range(501)]
        )  # fmt: skip
    ids = sorted(case.id for case in made.succeeded if case.id is not None)
    # Two chunks (500 and 1): the first request's answer is lost, the others come back.
    emulator.configure(fault_rate=0.5, fault_kinds=["lost"], seed=13)
    base = ["--base-url", emulator.url, "--api-key", API_KEY, "delete", "cases", *map(str, ids), "--yes"]
    process = kayse_process([*base, "--progress", "none"])
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, out + err
    assert emulator.stats()["faults"]["lost"] == 1
    assert emulator.snapshot()["cases"] == []
    found = re.match(r"Deleted (\d+) cases? confirmed \((\d+) ids? gone after a lost answer\)\.\n", out)
    assert found, out
    assert sorted(int(found.group(n)) for n in (1, 2)) == [1, 500]
    gone_line = out.splitlines()[1]
    assert gone_line.startswith("  gone after a lost answer (deleted by it, or never there): ")
