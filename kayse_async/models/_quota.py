"""The quota snapshot model."""

from __future__ import annotations

import datetime as dt

import attrs

from ._base import Model


@attrs.frozen(kw_only=True)
class QuotaSnapshot(Model):
    """What the SDK knows of a budget (one server and key) now, without a request.

    ``limit`` is the server's ``X-RateLimit-Limit`` once seen, else the
    configured one. ``remaining`` is the number of requests that may still be
    sent before the server's next Reset, or None while unknown (before the
    first answer). ``resets_at`` is when the server's window next resets
    (UTC), or None while unknown. ``window`` is the length of the server's
    window in seconds: stated by the server (``RateLimit-Policy``), or learned
    from its Reset values once the whole budget was seen coming back at one
    Reset, or the configured period for a server that sends no rate-limit
    headers; None while unknown (a token bucket that announces only its next
    token never shows one). From the window on, ``limit`` requests come back
    each ``window`` seconds.
    """

    limit: int
    remaining: int | None
    resets_at: dt.datetime | None = None
    window: float | None = None
