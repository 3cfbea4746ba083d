"""Sizes of the fault soak, from the environment.

``KAYSE_SOAK_CLIENTS`` and ``KAYSE_SOAK_CASES`` (default 2,000 and 500: the
bounded run of the test suite; ``nox -s soak`` runs 20,000 and 5,000).
``KAYSE_SOAK_SEED`` picks the fault sequence (default 8).
"""

from __future__ import annotations

import os

import attrs
import pytest


@attrs.frozen
class SoakSize:
    """How much the soak imports, and with which fault seed."""

    clients: int
    cases: int
    seed: int


def _int(name: str, default: int, least: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    value = int(text.replace(",", "").replace("_", ""))
    if value < least:
        raise pytest.UsageError(f"{name} must be at least {least}, got {value}")
    return value


def _size() -> SoakSize:
    return SoakSize(
        clients=_int("KAYSE_SOAK_CLIENTS", 2000, 20),
        cases=_int("KAYSE_SOAK_CASES", 500, 10),
        seed=_int("KAYSE_SOAK_SEED", 8, 0),
    )


@pytest.fixture(scope="session")
def soak_size() -> SoakSize:
    """The soak's sizes (see the module docstring)."""
    return _size()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give a larger soak a time-out to match: the suite's 120 s fits the bounded run only."""
    size = _size()
    scale = max(size.clients / 2000, size.cases / 500, 1.0)
    for item in items:
        if item.name == "test_fault_soak":
            item.add_marker(pytest.mark.timeout(int(120 * scale)))
