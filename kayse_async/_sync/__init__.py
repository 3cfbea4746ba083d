"""``Kayse``, the blocking twin of ``AsyncKayse``: ``portal`` (anyio's), ``base`` (lifecycle), ``api`` (generated)."""

from __future__ import annotations

from .api import Calls, Campaigns, CaseLists, Cases, Clients, Kayse, Metadata

__all__ = ["Calls", "Campaigns", "CaseLists", "Cases", "Clients", "Kayse", "Metadata"]
