"""Sans-I/O parsing of the rate-limit headers.

``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (what the Kayse API
documents) come first; what they leave unsaid is read from the IETF httpapi
draft's headers: ``RateLimit-Policy`` (``500;w=3600``, or
``"default";q=500;w=3600`` in later drafts), the only source of a stated
window, and ``RateLimit`` (``limit=500, remaining=42, reset=30``, or
``"default";r=42;t=30``). Where several policies are listed, the one the
``RateLimit`` header names is used, else the first. ``Retry-After`` too.
"""

from __future__ import annotations

import email.utils
import functools
from collections.abc import Callable, Mapping

import attrs
from multidict import CIMultiDict, CIMultiDictProxy

MAX_HINT = 86_400.0
"""Seconds: a Reset or Retry-After further away than a day is read as a day (the API's window is an hour)."""

EPOCH_THRESHOLD = 1_000_000_000
"""An ``X-RateLimit-Reset`` of at least this many seconds is a UTC epoch; a smaller one is a delta."""


@attrs.define(kw_only=True)
class RateLimitInfo:
    """What one response said about the key's budget.

    ``reset_after`` is seconds from the moment of the response until the
    server's window resets. The reference documents ``X-RateLimit-Reset`` both
    as "time remaining" and as "UTC epoch seconds": both forms are accepted,
    and an epoch is turned into a delta against the response's own ``Date``
    header (never the local clock, which may be skewed), falling back to the
    local wall clock only when the response has no usable ``Date``.
    ``retry_after`` is the ``Retry-After`` header in seconds, when present.
    ``server_date`` is the response's ``Date``, when an epoch Reset was read
    against it (whole seconds: the delta may be up to a second long). ``window`` is the window's length in
    seconds when the server states it (``RateLimit-Policy``'s ``w``).
    Any field is None when its header was missing or unreadable.

    A plain (not frozen) record, as it is made for every response; it is
    never changed once made.
    """

    limit: int | None = None
    remaining: int | None = None
    reset_after: float | None = None
    retry_after: float | None = None
    server_date: float | None = None
    window: float | None = None

    @property
    def present(self) -> bool:
        """True when the response carried any rate-limit header."""
        return any(value is not None for value in (self.limit, self.remaining, self.reset_after, self.window))


NOTHING = RateLimitInfo()
"""What a response without any rate-limit header says."""


def _getter(headers: Mapping[str, str]) -> Callable[[str], str | None]:
    """A case-insensitive lookup by lower-case name: aiohttp's headers are one already."""
    if isinstance(headers, CIMultiDictProxy | CIMultiDict):
        return headers.get
    return {key.lower(): value for key, value in headers.items()}.get


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    if text.isdigit() and text.isascii():
        # The usual form, read without float()'s detour.
        return int(text)
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value


@functools.lru_cache(maxsize=32)
def _http_date(text: str | None) -> float | None:
    # Cached: a server sends the same Date on every response of a second.
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _members(text: str | None) -> list[tuple[str, dict[str, str]]]:
    """A structured-field list, read leniently: each member's bare item and its parameters."""
    members: list[tuple[str, dict[str, str]]] = []
    for member in (text or "").split(","):
        head, *params = member.split(";")
        pairs = (param.partition("=") for param in params)
        members.append((head.strip(), {key.strip().lower(): value.strip() for key, _, value in pairs}))
    return members


def _draft(get: Callable[[str], str | None]) -> tuple[str | None, str | None, str | None, str | None]:
    """Limit, remaining, reset and window as the IETF draft's ``RateLimit`` and ``RateLimit-Policy`` say."""
    limit = remaining = reset = name = None
    members = _members(get("ratelimit"))
    if "=" in members[0][0]:
        # limit=500, remaining=42, reset=30
        fields = {key.strip().lower(): value.strip() for key, _, value in (head.partition("=") for head, _ in members)}
        limit, remaining, reset = fields.get("limit"), fields.get("remaining"), fields.get("reset")
    elif members[0][0]:
        # "default";r=42;t=30
        name, params = members[0]
        remaining, reset = params.get("r"), params.get("t")
    policies = [m for m in _members(get("ratelimit-policy")) if m[0]]
    chosen = next((m for m in policies if m[0] == name), policies[0] if policies else None)
    window = None
    if chosen is not None:
        head, params = chosen
        # 500;w=3600, or "default";q=500;w=3600
        limit = limit or (head if head.isdigit() else params.get("q"))
        window = params.get("w")
    return limit, remaining, reset, window


def parse_rate_limit(headers: Mapping[str, str], *, local_now: float) -> RateLimitInfo:
    """Read the rate-limit headers of a response.

    ``local_now`` is the local wall clock (``time.time()``) at the response,
    used only when an epoch Reset comes without a ``Date`` header.
    """
    get = _getter(headers)
    limit_text = get("x-ratelimit-limit")
    remaining_text = get("x-ratelimit-remaining")
    reset_text = get("x-ratelimit-reset")
    retry_text = get("retry-after")
    draft = get("ratelimit") is not None or get("ratelimit-policy") is not None
    if retry_text is None and not draft:
        if limit_text is None and remaining_text is None and reset_text is None:
            return NOTHING
        if (
            limit_text is not None
            and remaining_text is not None
            and reset_text is not None
            and limit_text.isdigit()
            and remaining_text.isdigit()
            and reset_text.isdigit()
            and (limit_text + remaining_text + reset_text).isascii()
        ):
            # The form of nearly every response: three plain numbers, Reset as seconds from now.
            reset_seconds = int(reset_text)
            if reset_seconds < EPOCH_THRESHOLD:
                return RateLimitInfo(
                    limit=int(limit_text),
                    remaining=int(remaining_text),
                    reset_after=float(min(reset_seconds, MAX_HINT)),
                )
    window_text = None
    if draft:
        limit2, remaining2, reset2, window_text = _draft(get)
        limit_text, remaining_text = limit_text or limit2, remaining_text or remaining2
        reset_text = reset_text or reset2
    limit = _number(limit_text)
    remaining = _number(remaining_text)
    reset = _number(reset_text)
    retry_after = _number(retry_text)
    window = _number(window_text)
    # The Date header is read only when an epoch or an HTTP date must be turned into a delta.
    epoch = reset is not None and reset >= EPOCH_THRESHOLD
    date = _http_date(get("date")) if epoch or (retry_after is None and bool(retry_text)) else None
    # Kept only for an epoch Reset: the scheduler reads the server clock's phase from it.
    server_date = date if epoch else None
    now = date if date is not None else local_now
    reset_after: float | None = None
    if reset is not None:
        reset_after = max(0.0, reset - now) if reset >= EPOCH_THRESHOLD else max(0.0, reset)
    if retry_after is None and retry_text:
        when = _http_date(retry_text)
        if when is not None:
            retry_after = max(0.0, when - now)
    elif retry_after is not None:
        retry_after = max(0.0, retry_after)
    if reset_after is not None:
        reset_after = min(reset_after, MAX_HINT)
    if retry_after is not None:
        retry_after = min(retry_after, MAX_HINT)
    return RateLimitInfo(
        limit=int(limit) if limit is not None and limit >= 0 else None,
        remaining=int(remaining) if remaining is not None and remaining >= 0 else None,
        reset_after=reset_after,
        retry_after=retry_after,
        server_date=server_date,
        window=min(window, MAX_HINT) if window is not None and window > 0 else None,
    )
