"""``Kayse``: the blocking twin of ``AsyncKayse``.

- ``portal``: anyio's blocking portal in a thread of its own, with the guards
  around it (a call from its own loop, Ctrl-C, fork, finalization);
- ``base``: ``close``, the context manager, ``quota`` and the session factory;
- ``api``: the typed twins, generated from the async classes by
  ``tests/sync/generate_twins.py`` (``nox -s twins``; a test fails while it is stale).
"""

from __future__ import annotations

from .api import Calls, Campaigns, CaseLists, Cases, Clients, Kayse, Metadata

__all__ = ["Calls", "Campaigns", "CaseLists", "Cases", "Clients", "Kayse", "Metadata"]
