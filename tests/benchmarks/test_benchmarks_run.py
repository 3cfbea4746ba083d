"""The benchmarks run end to end at a tiny size and print their tables (no timing is asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_benchmark(name: str, *args: str) -> str:
    """Run ``benchmarks/NAME.py`` with ``args`` in a fresh interpreter; its stdout."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def table_rows(output: str) -> dict[str, list[str]]:
    """The body rows of the Markdown table in ``output``, keyed by their first cell."""
    rows: dict[str, list[str]] = {}
    lines = [line for line in output.splitlines() if line.startswith("|")]
    assert len(lines) >= 3, f"no table in:\n{output}"
    assert set(lines[1]) <= set("|-: "), f"second table line is not a rule: {lines[1]!r}"
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


NUMBER = re.compile(r"^\d[\d,]*(\.\d+)?$")
RATIO = re.compile(r"^\d+\.\d\dx$")


def test_overhead_prints_one_row_per_client_with_ratios_against_raw_aiohttp() -> None:
    """overhead.py runs against its own server process and reports all three clients, the floor at 1.00x."""
    out = run_benchmark(
        "overhead", "--requests", "60", "--httpx-requests", "20", "--concurrency", "5", "--rounds", "2", "--warmup", "0"
    )
    rows = table_rows(out)
    assert list(rows) == ["raw aiohttp", "kayse_async", "httpx.AsyncClient"]
    for name, (cpu, cpu_ratio, wall, wall_ratio, rate) in rows.items():
        for value in (cpu, wall, rate):
            assert NUMBER.match(value), (name, rows[name])
        for value in (cpu_ratio, wall_ratio):
            assert RATIO.match(value), (name, rows[name])
    assert rows["raw aiohttp"][1::2] == ["1.00x", "1.00x"]
    assert re.search(
        r"kayse_async CPU per request, paired with raw aiohttp round by round: median \d+\.\d\dx "
        r"\(rounds from \d+\.\d\dx to \d+\.\d\dx; target <= 1\.50x\): (met|MISSED)",
        out,
    )
    assert re.search(r"kayse_async CPU per request: \d+\.\d\dx httpx \(target < 1\.00x\): (met|MISSED)", out)
    assert "60 GETs per run (20 for httpx) at concurrency 5, median of 2 rounds" in out


def test_overhead_runs_against_the_emulator_too() -> None:
    """--server emulator seeds clients on the emulator and GETs them (a 404 would fail the run)."""
    out = run_benchmark(
        "overhead", "--server", "emulator", "--requests", "30", "--concurrency", "3", "--rounds", "1", "--warmup", "0"
    )
    assert list(table_rows(out)) == ["raw aiohttp", "kayse_async", "httpx.AsyncClient"]
    assert "the kayse_async emulator" in out


@pytest.mark.parametrize("collector", ["on", "off"])
def test_serialization_prints_one_row_per_library_with_ratios_against_pydantic(collector: str) -> None:
    """serialization.py checks every round trip, then reports all three libraries, pydantic at 1.00x."""
    out = run_benchmark("serialization", "--records", "300", "--rounds", "2", "--gc", collector)
    assert f"garbage collector {collector} during the passes" in out
    rows = table_rows(out)
    assert list(rows) == ["pydantic v2", "kayse_async (cattrs)", "msgspec"]
    for name, cells in rows.items():
        assert len(cells) == 6, (name, cells)
        for value, versus in zip(cells[::2], cells[1::2], strict=True):
            assert NUMBER.match(value), (name, cells)
            assert RATIO.match(versus), (name, cells)
    assert rows["pydantic v2"][1::2] == ["1.00x", "1.00x", "1.00x"]
    verdict = re.search(
        r"structure \+ unstructure: (\d+\.\d\d)x pydantic v2 \(rounds (\d+\.\d\d)x to (\d+\.\d\d)x; "
        r"target <= 1\.00x\): (met|MISSED)",
        out,
    )
    assert verdict is not None, out
    # Two rounds: the ratio of the medians (means of two) lies between the two rounds' ratios.
    median, low, high = (float(verdict[i]) for i in (1, 2, 3))
    assert low - 0.01 <= median <= high + 0.01


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("overhead", ["--requests", "0"]),
        ("overhead", ["--httpx-requests", "0"]),
        ("overhead", ["--rounds", "0"]),
        ("overhead", ["--instructions", "--server", "emulator"]),
        ("overhead", ["--instructions", "--bytecodes"]),
        ("serialization", ["--records", "0"]),
        ("quota", ["--modes", "fixed,hourly"]),
    ],
)
def test_sizes_below_one_are_refused(name: str, args: list[str]) -> None:
    """A size of 0 is a usage error naming the option, not an empty table or a division by zero."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert args[0] in proc.stderr


def test_the_round_trip_check_catches_a_codec_that_loses_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """serialization.py refuses to time a codec whose round trip does not give the records back."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import serialization

    records = serialization.make_records(5)
    serialization.check_round_trips(records)
    ours_structure, ours_unstructure = serialization.CODECS[serialization.OURS]

    def lossy(objects: list[object]) -> list[dict[str, object]]:
        return [{**data, "meta": None} for data in ours_unstructure(objects)]

    monkeypatch.setitem(serialization.CODECS, serialization.OURS, (ours_structure, lossy))
    with pytest.raises(AssertionError, match=r"kayse_async \(cattrs\): round trip changed record 0"):
        serialization.check_round_trips(records)


# A stand-in for valgrind: runs the program it is given for real, then reports a count of
# "instructions" that is exact arithmetic on the requests made (1,000 + a per-request cost).
_FAKE_VALGRIND = """#!{python}
import subprocess, sys
argv = [a for a in sys.argv[1:] if not a.startswith("--tool=") and not a.startswith("--callgrind-out-file=")]
code = subprocess.run(argv).returncode
requests = int(argv[argv.index("--requests") + 1])
per = {{"raw aiohttp": 7, "kayse_async": 9}}[argv[argv.index("--child") + 1]]
print(f"==1== Collected : {{1000 + per * requests}}", file=sys.stderr)
sys.exit(code)
"""


def test_instructions_runs_each_contender_twice_and_divides_out_start_up(tmp_path: Path) -> None:
    """--instructions: two real child runs per contender under "valgrind"; per request = difference / difference."""
    fake = tmp_path / "valgrind"
    fake.write_text(_FAKE_VALGRIND.format(python=sys.executable))
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overhead.py"), "--instructions", "--concurrency", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert rows["raw aiohttp"] == ["7", "1.00x"]
    assert rows["kayse_async"] == ["9", "1.29x"]


def test_instructions_without_valgrind_says_so(tmp_path: Path) -> None:
    """No valgrind on the PATH: a one-line reason, not a traceback."""
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overhead.py"), "--instructions"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 1
    assert "needs valgrind" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bytecodes_of_counts_every_bytecode_run_in_this_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The count grows by the same amount for each same step: exact, and nothing of the loop is missed."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import overhead

    def steps(n: int) -> None:
        total = 0
        for i in range(n):
            total += i

    counts = {n: sum(overhead.bytecodes_of(lambda n=n: steps(n)).values()) for n in (10, 20, 30)}
    assert counts[20] > counts[10] > 0
    assert counts[30] - counts[10] == 2 * (counts[20] - counts[10])


def test_bytecodes_compares_both_clients_and_names_kayse_async_modules() -> None:
    """--bytecodes: a table with the floor at 1.00x, kayse_async above it, and its own modules listed."""
    # In a child process (each contender runs its own event loops), at a tiny size.
    script = (
        f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import overhead; "
        "overhead.BYTECODE_RUNS = (10, 30); sys.exit(overhead.main(['--bytecodes', '--concurrency', '3']))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = table_rows(proc.stdout)
    assert list(rows) == ["raw aiohttp", "kayse_async"]
    assert rows["raw aiohttp"][1] == "1.00x"
    ours, floor = (float(rows[name][0].replace(",", "")) for name in ("kayse_async", "raw aiohttp"))
    assert ours > floor > 1000
    modules = re.findall(r"^  (\S.*?)\s+[\d,]+$", proc.stdout.split("by module")[1], re.MULTILINE)
    assert "_transport.py" in modules
    assert "<cattrs generated structure kayse_async.models._clients.Client>" in modules
