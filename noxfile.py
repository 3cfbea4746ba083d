"""Automation: `nox -s tests lint typecheck docs bench soak twins`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.default_venv_backend = "venv"

PYTHONS = ["3.11", "3.12", "3.13"]
COVERAGE_FLOOR = 90


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite with the branch-coverage gate."""
    session.install("-e", ".[dev]")
    # coverage starts before pytest, so that the modules pytest's plugin entry point imports early
    # (kayse_async.testing's fixture) are measured from their first line.
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", f"--fail-under={COVERAGE_FLOOR}")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, lint and format."""
    session.install("ruff")
    session.run("ruff", "check", "kayse_async", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "kayse_async", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict and pyright on the package and the typing tests."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "kayse_async", "tests/typing")
    session.run("pyright")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site, warnings as errors."""
    session.install("-e", ".[dev]")
    session.run("mkdocs", "build", "--strict")


@nox.session
def twins(session: nox.Session) -> None:
    """Regenerate kayse_async/_sync/api.py, the blocking twins, from the async classes (then ruff formats it)."""
    session.install("-e", ".", "ruff")
    session.run("python", "tests/sync/generate_twins.py")


@nox.session
def openapi(session: nox.Session) -> None:
    """Regenerate the emulator's OpenAPI document (kayse_async/testing/openapi.json and docs/openapi.json)."""
    session.install("-e", ".")
    session.run("python", "tests/emulator/openapi_gen.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark at its full size (long: tens of minutes); pass a name to run one."""
    session.install("-e", ".[dev]")
    names = session.posargs or ["overhead", "serialization", "quota", "bulk", "sync_overhead"]
    for name in names:
        session.run("python", f"benchmarks/{name}.py")


@nox.session
def soak(session: nox.Session) -> None:
    """The long fault soak: 20,000 clients and 5,000 cases through faults and a tight rate limit."""
    session.install("-e", ".[dev]")
    session.env.update({"KAYSE_SOAK_CLIENTS": "20000", "KAYSE_SOAK_CASES": "5000"})
    session.run("pytest", "tests/soak", "-s", *session.posargs)
