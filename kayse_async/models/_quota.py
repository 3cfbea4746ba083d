"""The quota snapshot model."""

from __future__ import annotations

import datetime as dt

import attrs

from ._base import Model


@attrs.frozen(kw_only=True)
class QuotaSnapshot(Model):
    """What the SDK knows of a key's budget now, without a request.

    ``remaining`` is the number of requests that may still be sent in the
    current window (the local estimate, reconciled with the server's headers);
    ``resets_at`` is when the server's window resets (UTC), or None while
    unknown.
    """

    limit: int
    remaining: int
    resets_at: dt.datetime | None = None
