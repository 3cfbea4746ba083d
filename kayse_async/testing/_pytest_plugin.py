"""pytest plugin: the ``kayse_emulator`` fixture (registered through the ``pytest11`` entry point).

Settings come from the ``kayse_emulator_options`` marker, over the ``kayse_emulator_options`` fixture
(see docs/emulator.md). Importing this module starts nothing: the emulator is imported on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from ._emulator import ThreadedEmulator

DEFAULT_OPTIONS: dict[str, Any] = {"limit": 1_000_000, "period": 3600.0}
"""The fixture's settings unless told otherwise: a budget no test spends, with the headers still sent."""

TEST_KEY = "test-key"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker (the project runs pytest with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        "kayse_emulator_options(**options): settings of the kayse_emulator fixture (the Emulator's keyword arguments)",
    )


@pytest.fixture
def kayse_emulator_options() -> dict[str, Any]:
    """Settings of the ``kayse_emulator`` fixture; override this fixture to change them for many tests."""
    return {}


@pytest.fixture
def kayse_emulator(
    request: pytest.FixtureRequest, kayse_emulator_options: dict[str, Any]
) -> Iterator[ThreadedEmulator]:
    """A running Kayse emulator on a free port (API key ``"test-key"``), in a thread of its own.

    A server (and so a port and an SDK budget) of its own per test: no test spends another's budget.
    """
    from ._emulator import ThreadedEmulator

    options: dict[str, Any] = {**DEFAULT_OPTIONS, **kayse_emulator_options}
    # pytest leaves FixtureRequest.node unannotated; at function scope it is the test item.
    node = cast("pytest.Item", request.node)  # pyright: ignore[reportUnknownMemberType]
    marker = node.get_closest_marker("kayse_emulator_options")
    if marker is not None:
        options.update(marker.kwargs)
    api_key = options.pop("api_key", TEST_KEY)
    options["port"] = 0
    with ThreadedEmulator(api_key, **options) as emulator:
        yield emulator
