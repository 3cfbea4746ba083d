"""A local server that behaves like the Kayse Public API, for tests.

- :class:`Emulator`: run it in the current event loop (``async with``).
- :class:`ThreadedEmulator`: run it in a thread of its own, for synchronous code.
- ``python -m kayse_async.testing --port 8400 --api-key demo-key``: run it as a process.
- The ``kayse_emulator`` pytest fixture (registered through the ``pytest11`` entry point).

See docs/emulator.md for every option, the introspection routes and the
choices made where the reference is silent.
"""

from ._cli import build_parser, main
from ._emulator import Emulator, ThreadedEmulator
from ._faults import FAULT_KINDS
from ._openapi import openapi_document
from ._store import Store

__all__ = ["FAULT_KINDS", "Emulator", "Store", "ThreadedEmulator", "build_parser", "main", "openapi_document"]
