"""``Kayse``: the blocking twin of ``AsyncKayse``.

Three parts, none with logic of its own beyond running the async client:

- ``_sync_portal``: one event-loop thread per client, the hand-off of calls to
  it, Ctrl-C, fork and finalization;
- ``_sync_base``: ``close``, the context manager and ``quota``;
- ``_sync_api``: the typed wrappers, generated from the async classes by
  ``python -m kayse_async._sync.gen`` (a test fails while it is stale).
"""

from __future__ import annotations

from .api import Calls, Campaigns, CaseLists, Cases, Clients, Kayse, Metadata

__all__ = ["Calls", "Campaigns", "CaseLists", "Cases", "Clients", "Kayse", "Metadata"]
