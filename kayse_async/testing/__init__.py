"""A local server that behaves like the Kayse Public API, for tests: :class:`Emulator` (in the current
event loop), :class:`ThreadedEmulator` (in a thread, for synchronous code), ``python -m kayse_async.testing``
and the ``kayse_emulator`` pytest fixture. See docs/emulator.md for every option and behaviour.
"""

from __future__ import annotations

import importlib
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cli import build_parser, main
    from ._emulator import Emulator, ThreadedEmulator
    from ._faults import FAULT_KINDS
    from ._store import Store

__all__ = ["FAULT_KINDS", "Emulator", "Store", "ThreadedEmulator", "build_parser", "main", "openapi_document"]

# Imported on first use: pytest loads this package for its plugin in every test session, and the
# plugin must not pull the aiohttp server into sessions that never use the emulator.
_HOMES = {
    "FAULT_KINDS": "._faults",
    "Emulator": "._emulator",
    "Store": "._store",
    "ThreadedEmulator": "._emulator",
    "build_parser": "._cli",
    "main": "._cli",
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API the emulator serves (the packaged ``openapi.json``)."""
    document: dict[str, Any] = json.loads(resources.files(__name__).joinpath("openapi.json").read_text("utf-8"))
    return document


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
