"""The ``kayse`` command as a real process: the README's first command, --json in the sandbox, resume after SIGKILL."""

from __future__ import annotations

import json
import runpy
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from kayse_async.testing import ThreadedEmulator

from .conftest import API_KEY, REPO, kayse_process, write

TIMEOUT = 60


def test_the_readme_first_command_imports_the_sample_in_the_sandbox() -> None:
    """`kayse --sandbox import clients docs/examples/clients.csv`: exit 0, progress lines on stderr, summary out."""
    process = kayse_process(["--sandbox", "import", "clients", "docs/examples/clients.csv"])
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    assert "created   5,000" in out
    assert "rejected  0" in out
    assert "requests  10 (quota left: 490 of 500)" in out
    assert "sandbox: a local emulator at http://127.0.0.1:" in err
    assert "clients 5,000/5,000 (100%) · " in err
    assert "· 10 req · quota 490/500 (resets " in err
    assert "Traceback" not in err


def test_sandbox_json_summary_is_all_of_stdout(tmp_path: Path) -> None:
    """In a process, --json leaves stdout to the JSON alone (the sandbox note and progress go to stderr)."""
    path = write(
        tmp_path / "c.jsonl",
        '{"external_source": "x", "external_source_id": "1", "first_name": "A", "last_name": "B"}\n'
        '{"external_source": "x", "external_source_id": "2", "first_name": "A"}\n',
    )
    process = kayse_process(["--sandbox", "import", "clients", str(path), "--json"])
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1, err
    summary = json.loads(out)
    assert (summary["created"], summary["rejected_count"]) == (1, 1)
    assert summary["rejected"][0]["line"] == 2
    assert summary["quota"]["limit"] == 500


def test_no_configuration_is_one_line_and_exit_2_in_a_process() -> None:
    """No key, no --sandbox: exit 2 and a single line on stderr, no traceback."""
    process = kayse_process(["get", "client", "1"])
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "--sandbox" in err


def _done_batches(journal: Path) -> int:
    if not journal.exists():
        return 0
    lines = journal.read_text(encoding="utf-8", errors="replace").splitlines()
    return sum(1 for line in lines if '"type":"done"' in line.replace(" ", ""))


def test_an_import_killed_mid_job_resumes_from_its_journal_without_duplicates(
    tmp_path: Path, emulator: ThreadedEmulator
) -> None:
    """SIGKILL mid-import, rerun with the same journal: every record stored exactly once."""
    total = 1_000
    path = write(
        tmp_path / "many.csv",
        "external_source,external_source_id,first_name,last_name\n"
        + "".join(f"crm,k{n:04d},First,Last{n}\n" for n in range(total)),
    )
    journal = tmp_path / "import.journal"
    args = ["--base-url", emulator.url, "--api-key", API_KEY, "import", "clients", str(path)]
    args += ["--journal", str(journal), "--chunk-size", "25", "--concurrency", "2", "--json"]
    # Paced so that the 40 requests take seconds: the kill lands mid-job.
    emulator.configure(latency_ms=150.0)
    process = kayse_process(args)
    deadline = time.monotonic() + TIMEOUT
    while _done_batches(journal) < 4 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    stored_before = len(emulator.snapshot()["clients"])
    assert 0 < stored_before < total, "the kill must land mid-job"

    emulator.configure(latency_ms=0.0)
    rerun = kayse_process(args)
    out, err = rerun.communicate(timeout=TIMEOUT)
    summary = json.loads(out)
    assert summary["rejected"] == []
    # A batch sent just before the kill, whose answer was lost, is reported as uncertain, not resent.
    assert summary["created"] + summary["uncertain_count"] == total
    assert rerun.returncode == (0 if summary["uncertain_count"] == 0 else 1), err
    assert summary["requests"] < total // 25
    ids = [client["external_source_id"] for client in emulator.snapshot()["clients"]]
    assert len(ids) == total
    assert sorted(ids) == [f"k{n:04d}" for n in range(total)]


def test_the_sample_files_are_reproducible(tmp_path: Path) -> None:
    """make_samples.py writes exactly the committed CSVs (a fixed seed), with at least 5,000 clients."""
    examples = REPO / "docs" / "examples"
    namespace = runpy.run_path(str(examples / "make_samples.py"))
    namespace["main"](tmp_path)
    for name in ("clients.csv", "cases.csv"):
        assert (tmp_path / name).read_bytes() == (examples / name).read_bytes(), name
    assert len((examples / "clients.csv").read_text(encoding="utf-8").splitlines()) - 1 >= 5_000


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["emulator", "--port", "0", "--api-key", "k"], {}),
        (["--api-key", "k", "emulator", "--port", "0"], {}),
        (["emulator", "--port", "0"], {"KAYSE_API_KEY": "k"}),
    ],
    ids=["its-own-option", "the-global-option", "the-environment"],
)
def test_kayse_emulator_serves_until_interrupted(args: list[str], env: dict[str, str]) -> None:
    """`kayse emulator --port 0`, its key from any of the three places: its address, the API, a clean SIGINT."""
    process = kayse_process(args, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line
    url = line.split()[-1]
    request = urllib.request.Request(f"{url}/v1/campaigns", headers={"X-API-KEY": "k"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == []
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0
