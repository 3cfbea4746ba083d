"""The quota snapshot model."""

from __future__ import annotations

import datetime as dt

import attrs

from ._base import Model


@attrs.frozen(kw_only=True)
class QuotaSnapshot(Model):
    """What the SDK knows of a budget (one server and key) now, without a request.

    ``limit``: the server's ``X-RateLimit-Limit`` once seen, else the configured one. ``remaining``:
    requests that may still go before the next reset, and ``resets_at`` (UTC) when that is; None
    while unknown. ``window``: the seconds in which ``limit`` requests come back, as the server states
    it (``RateLimit-Policy``), as learned from its resets, or the configured period for a server that
    sends no rate-limit headers; None while unknown.
    """

    limit: int
    remaining: int | None
    resets_at: dt.datetime | None = None
    window: float | None = None
