"""The ways to run the emulator: the command line, the thread runner, the pytest fixture."""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request

import pytest

from kayse_async.testing import ThreadedEmulator, build_parser, main
from kayse_async.testing._cli import SERVING_GC_THRESHOLDS, emulator_from_args

TIMEOUT = 15


def get(url: str, key: str | None) -> tuple[int, dict[str, str], object]:
    """A blocking GET with urllib (the runners are meant for synchronous callers too)."""
    request = urllib.request.Request(url, headers={"X-API-KEY": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.loads(error.read())


def start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "kayse_async.testing", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line
    return process, line.removeprefix("listening on ").strip()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_cleanly(signum: signal.Signals) -> None:
    """`python -m kayse_async.testing --port 0` prints its URL, serves, and exits 0 on SIGTERM/SIGINT."""
    process, url = start_cli("--port", "0", "--api-key", "demo-key", "--limit", "5", "--period", "60")
    try:
        status, headers, _ = get(url + "/v1/metadata/objects", "demo-key")
        assert (status, headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == (200, "5", "4")
        assert get(url + "/v1/metadata/objects", "other")[0] == 401
    finally:
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0
    assert stdout == ""
    assert stderr == ""


def test_cli_every_option() -> None:
    """Every documented option reaches the emulator's settings."""
    args = build_parser().parse_args(
        [
            *("--port", "0", "--api-key", "a", "--host", "127.0.0.1", "--calls-api-key", "c"),
            *("--limit", "7", "--period", "2", "--window", "token", "--reset", "epoch"),
            *("--fault-rate", "0.25", "--latency-ms", "5", "--seed", "3", "--max-batch", "9"),
            *("--clock-skew", "-60", "--fault-kinds", "503,lost"),
        ]
    )
    emulator = emulator_from_args(args)
    settings = emulator.settings
    assert (emulator.api_key, emulator.calls_api_key, emulator.host) == ("a", "c", "127.0.0.1")
    assert (settings.limit, settings.period, settings.window, settings.reset) == (7, 2.0, "token", "epoch")
    assert (settings.fault_rate, settings.fault_kinds, settings.latency_ms) == (0.25, ("503", "lost"), 5.0)
    assert (settings.seed, settings.max_batch, settings.clock_skew) == (3, 9, -60.0)
    defaults = emulator_from_args(build_parser().parse_args(["--api-key", "a"]))
    assert (defaults.port, defaults.calls_api_key, defaults.settings.limit) == (8400, "a", 500)
    assert defaults.settings.fault_kinds == ("500", "503", "drop", "latency", "lost")


@pytest.mark.parametrize(
    "args",
    [["--window", "leaky"], ["--fault-kinds", "500,boom"], ["--fault-rate", "2"], ["--max-batch", "0"], []],
)
def test_cli_bad_options_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad options (and a missing --api-key) exit with status 2 and a message, serving nothing."""
    base = [] if not args else ["--api-key", "k", "--port", "0"]
    with pytest.raises(SystemExit) as exited:
        main([*base, *args])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert "error" in captured.err
    assert captured.out == ""


def test_cli_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A port already taken is an error line and exit status 1."""
    statuses: list[int] = []
    with ThreadedEmulator("k") as taken:
        # In a thread: asyncio.run() in the test's own thread would reset its event loop policy.
        runner = threading.Thread(target=lambda: statuses.append(main(["--api-key", "k", "--port", str(taken.port)])))
        runner.start()
        runner.join(TIMEOUT)
    assert statuses == [1]
    captured = capsys.readouterr()
    assert "cannot listen" in captured.err
    assert "listening" not in captured.out


# A child that runs a command line with serve() replaced, and prints what the collector
# looked like when serving began.
_GC_PROBE = """
import asyncio, gc, sys
from kayse_async.testing import _cli

async def probe(emulator):
    print(gc.get_threshold(), gc.get_freeze_count() > 0)

_cli.serve = probe
if sys.argv[1] == "testing":
    _cli.main(["--port", "0", "--api-key", "k"])
else:
    from kayse_async.cli import main
    main(["emulator", "--port", "0", "--api-key", "k"])
print(gc.get_threshold(), gc.get_freeze_count() > 0)
"""


@pytest.mark.parametrize("runner", ["testing", "kayse"])
def test_serving_process_tunes_the_collector(runner: str) -> None:
    """While the command lines serve, the start-up heap is frozen and the thresholds larger; then undone."""
    default = subprocess.run(
        [sys.executable, "-c", "import gc; print(gc.get_threshold())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    child = subprocess.run(
        [sys.executable, "-c", _GC_PROBE, runner], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert default != str(SERVING_GC_THRESHOLDS)
    assert child.stdout.splitlines() == [f"{SERVING_GC_THRESHOLDS} True", f"{default} False"]


def test_threaded_emulator_leaves_the_collector_alone() -> None:
    """An emulator inside a test process does not touch that process's collector."""
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    with ThreadedEmulator("k") as emulator:
        assert get(emulator.url + "/v1/metadata/objects", "k")[0] == 200
        assert gc.get_threshold() == thresholds
    assert gc.get_threshold() == thresholds
    # Frozen objects may still die (the count only falls); none were frozen.
    assert gc.get_freeze_count() <= frozen


def test_threaded_emulator_for_sync_callers() -> None:
    """ThreadedEmulator serves from its own thread; stats, settings and store are usable from this one."""
    before = threading.active_count()
    with ThreadedEmulator("k", limit=0) as emu:
        assert threading.active_count() == before + 1
        assert get(emu.url + "/v1/metadata/objects", "k")[0] == 200
        assert emu.stats()["requests"] == 1
        emu.set_faults(1.0, ["500"])
        assert get(emu.url + "/v1/metadata/objects", "k")[0] == 500
        emu.set_faults(0.0)
        emu.set_rate_limit(1, 60.0)
        assert get(emu.url + "/v1/metadata/objects", "k")[0] == 200
        assert get(emu.url + "/v1/metadata/objects", "k")[0] == 429
        emu.reset_stats(store=True, limits=True)
        assert emu.stats()["requests"] == 0
        assert emu.snapshot()["clients"] == []
        assert "k" not in repr(emu)
    assert threading.active_count() == before


def test_threaded_emulator_reports_start_errors() -> None:
    """A server that cannot start raises in the caller, and leaves no thread behind."""
    before = threading.active_count()
    with ThreadedEmulator("k") as taken, pytest.raises(OSError, match="address already in use"):
        ThreadedEmulator("k", port=taken.port).start()
    assert threading.active_count() == before


PLUGIN_TESTS = """
import urllib.error
import urllib.request

import aiohttp
import pytest


def fetch(emu, key="test-key"):
    request = urllib.request.Request(emu.url + "/v1/metadata/objects", headers={"X-API-KEY": key})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers


def test_sync(kayse_emulator):
    status, headers = fetch(kayse_emulator)
    assert status == 200
    assert int(headers["X-RateLimit-Limit"]) >= 1_000_000
    assert kayse_emulator.stats()["requests"] == 1


async def test_async(kayse_emulator):
    async with aiohttp.ClientSession() as session:
        async with session.get(kayse_emulator.url + "/v1/metadata/objects", headers={"X-API-KEY": "test-key"}) as r:
            assert r.status == 200
    assert kayse_emulator.stats()["requests"] == 1


@pytest.mark.kayse_emulator_options(limit=1, period=60)
def test_marker(kayse_emulator):
    assert [fetch(kayse_emulator)[0] for _ in range(2)] == [200, 429]


def test_fresh_emulator_per_test(kayse_emulator):
    assert kayse_emulator.stats()["requests"] == 0
"""

PLUGIN_OVERRIDE = """
import pytest

@pytest.fixture
def kayse_emulator_options():
    return {"api_key": "custom-key", "max_batch": 3}
"""

PLUGIN_OVERRIDE_TEST = """
def test_override(kayse_emulator):
    assert kayse_emulator.api_key == "custom-key"
    assert kayse_emulator.settings.max_batch == 3
"""


def test_pytest_fixture(request: pytest.FixtureRequest) -> None:
    """The kayse_emulator fixture (loaded through the pytest11 entry point) works in sync and async tests."""
    request.config.pluginmanager.import_plugin("pytester")
    pytester: pytest.Pytester = request.getfixturevalue("pytester")
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_plugin_use=textwrap.dedent(PLUGIN_TESTS))
    override = pytester.mkpydir("override")
    (override / "conftest.py").write_text(PLUGIN_OVERRIDE)
    (override / "test_override.py").write_text(PLUGIN_OVERRIDE_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error", "--strict-markers")
    result.assert_outcomes(passed=5)


def test_plugin_import_starts_nothing() -> None:
    """Importing the plugin module neither imports aiohttp's server nor starts a thread."""
    code = (
        "import sys, threading; import kayse_async.testing._pytest_plugin; "
        "print('aiohttp.web' in sys.modules, threading.active_count())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True)
    assert result.stdout.split() == ["False", "1"]
