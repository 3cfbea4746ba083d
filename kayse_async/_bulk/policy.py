"""What becomes of a batch, by the server's answer: pure tables for upsert and delete.

:func:`judge` maps a failed request and its batch to a :class:`Verdict`; :func:`resume` says what a
rerun does with an item its journal knows. ``tests/bulk/test_policy.py`` reads them as tables.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import attrs

from ..errors import (
    APIError,
    KayseError,
    QuotaExhaustedError,
    RateLimitError,
    TransportError,
)
from ..models import BulkStatus, Resolution

Op = Literal["upsert", "delete"]
Action = Literal["settle", "split", "bisect"]
Resume = Literal["reuse", "refuse", "send", "recover", "uncertain"]

STOPS = frozenset({401, 403, 404, 405, 429})
"""Statuses that stop the job: every later batch would meet them too."""

NOT_RESENT = (
    "the batch may have been stored; it was not sent again, because the API has no idempotency key "
    "and a resend could create duplicates (a rerun with the same journal resolves it safely)"
)
_MAYBE_APPLIED = {
    ("upsert", False): "the updates may have been applied; sending them again is safe",
    ("upsert", True): NOT_RESENT,
    ("delete", False): "some of these cases may have been deleted; deleting again is safe",
}
_EARLIER = "a previous run had sent this batch without learning its outcome; "

_TOO_LARGE = re.compile(r"too (large|big|long|many)|at most \d+ (items|records|entries)|batch size", re.IGNORECASE)
_AT_MOST = re.compile(r"at most (\d+)", re.IGNORECASE)
_INDEXED_FIELD = re.compile(r"^[A-Za-z_]+\[(\d+)\](.*)$")


@attrs.frozen
class Batch:
    """What the engine knows of a batch whose request failed."""

    op: Op
    size: int
    creates: bool = False
    """Some item has no id: the batch must never be sent twice."""
    recovering: bool = False
    """A resend, by this run, of a batch an earlier run sent without learning its outcome."""
    natural_key: tuple[str, ...] = ()
    """The fields the server keeps unique for a create of this route."""


@attrs.frozen
class Verdict:
    """What becomes of a batch's items (``action`` ``settle``), or what to do first."""

    status: BulkStatus
    action: Action = "settle"
    stop: bool = False
    """The job stops: every later batch is ``not_attempted``."""
    void: bool = False
    """The server provably stored nothing: a journal may send these items again."""
    note: str = ""
    """Appended to the error, to say why this status."""
    resolved: Resolution | None = None


def judge(exc: KayseError, batch: Batch) -> Verdict:
    """The verdict on ``batch`` whose request ended in ``exc`` (after the transport's own retries)."""
    verdict = _judge(exc, batch)
    if batch.recovering and verdict.status in ("rejected", "not_attempted") and verdict.action == "settle":
        # The earlier attempt may have stored these: never call them refused or unsent.
        why = "it was not sent again now" if verdict.status == "not_attempted" else "the server refused it now"
        return Verdict(
            "uncertain", stop=verdict.stop, note=f"{_EARLIER}{why}; whether the earlier attempt stored it is unknown"
        )
    return verdict


def _judge(exc: KayseError, batch: Batch) -> Verdict:
    if isinstance(exc, QuotaExhaustedError):
        return Verdict("not_attempted", stop=True, void=True)
    if isinstance(exc, TransportError) and not exc.may_have_been_sent:
        return Verdict("not_attempted", void=True)
    if not isinstance(exc, TransportError | APIError):
        return Verdict("not_attempted", stop=True, void=True)  # refused before sending (a closed client)
    if isinstance(exc, APIError) and exc.status == 503:
        # Unavailable through every retry: the server did nothing.
        return Verdict("rejected", void=not batch.recovering)
    if isinstance(exc, TransportError) or not 400 <= exc.status < 500:
        # Sent, and no usable answer: it may have been applied.
        return Verdict("uncertain", note=_MAYBE_APPLIED[batch.op, batch.creates])
    # A 4xx: the server refused the batch whole and stored nothing.
    void = not batch.recovering
    if too_large(exc):
        return Verdict("rejected", action="split" if batch.size > 1 else "settle", void=void)
    if exc.status in STOPS or isinstance(exc, RateLimitError):
        return Verdict("rejected", stop=True, void=void)
    if batch.recovering and duplicate(exc, batch.natural_key):
        if named_position(exc, batch.size) in (None, 0):
            # Its first item's key is held already, so the earlier attempt stored the batch (batches are atomic).
            return Verdict("succeeded", resolved="stored_before")
        # Items before the named one were accepted: the earlier attempt stored nothing of this batch.
        return Verdict("rejected", action="bisect" if batch.size > 1 else "settle", void=True)
    if exc.status == 400 and batch.size > 1 and not batch.recovering:
        return Verdict("rejected", action="bisect", void=void)
    return Verdict("rejected", void=void)


def resume(kind: Literal["done", "sent"], changed: bool, *, creates: bool, keyed: bool) -> Resume:
    """What a rerun does with an input item its journal knows (``done``: stored; ``sent``: outcome unknown).

    ``changed``: it differs from the journaled one; ``creates``: it has no id; ``keyed``: it carries its natural key.
    """
    if kind == "done":
        return "refuse" if changed else "reuse"
    if not creates:
        return "send"  # an update: applying it again is harmless
    if changed:
        return "refuse"  # it may be stored: sending a changed create could store it twice
    return "recover" if keyed else "uncertain"


def error_field(exc: KayseError) -> str | None:
    """The ``field`` of the server's error body, when it has one."""
    body: Any = exc.body if isinstance(exc, APIError) else None
    field = body.get("field") if isinstance(body, dict) else None
    return field if isinstance(field, str) else None


def named_position(exc: KayseError, size: int) -> int | None:
    """The position within the batch of the item the server's error names (``clients[3].x``), if any."""
    found = _INDEXED_FIELD.match(error_field(exc) or "")
    position = int(found.group(1)) if found else None
    return position if position is not None and position < size else None


def too_large(exc: APIError) -> bool:
    """A 413, or a 400 about the batch as a whole (its field names no item) saying it is too large."""
    if exc.status == 413:
        return True
    field = error_field(exc)
    return exc.status == 400 and "[" not in (field or "") and bool(_TOO_LARGE.search(exc.message))


def duplicate(exc: KayseError, natural_key: tuple[str, ...]) -> bool:
    """A refusal because a natural key (``external_source_id``) is held by a stored record."""
    field = error_field(exc)
    return field is not None and any(field.endswith(key) for key in natural_key)


def learn_size(exc: APIError, size: int, known: int | None) -> int:
    """The batch size to use from now on, after ``exc`` refused ``size`` items as too many."""
    stated = _AT_MOST.search(exc.message)
    learned = int(stated.group(1)) if stated else -(-size // 2)
    learned = max(1, min(learned, size - 1))
    return learned if known is None else min(known, learned)


def annotated(exc: KayseError, note: str) -> KayseError:
    """A copy of ``exc`` (same class and attributes) whose message ends with ``note``."""
    if not note:
        return exc
    if isinstance(exc, APIError):
        return _copy_api_error(exc, f"{exc.message}; {note}")
    if isinstance(exc, TransportError):
        return type(exc)(f"{exc}; {note}", method=exc.method, url=exc.url, may_have_been_sent=exc.may_have_been_sent)
    return KayseError(f"{exc}; {note}")


def for_input(exc: KayseError, indexes: list[int]) -> KayseError:
    """The server's error with the item it names renamed from its batch position to its input index.

    The server says ``clients[3].first_name`` of the batch it was sent; the
    caller knows the item as ``clients[1503].first_name`` of its input.
    """
    field = error_field(exc)
    position = named_position(exc, len(indexes))
    if field is None or position is None or not isinstance(exc, APIError):
        return exc
    found = _INDEXED_FIELD.match(field)
    assert found is not None
    renamed = f"{field.split('[', 1)[0]}[{indexes[position]}]{found.group(2)}"
    copy = _copy_api_error(exc, exc.message.replace(field, renamed))
    copy.body = {**exc.body, "field": renamed}
    return copy


def _copy_api_error(exc: APIError, message: str) -> APIError:
    kwargs: dict[str, Any] = {
        "status": exc.status,
        "body": exc.body,
        "method": exc.method,
        "url": exc.url,
        "retry_after": exc.retry_after,
    }
    if isinstance(exc, RateLimitError):
        kwargs["resets_at"] = exc.resets_at
    try:
        return type(exc)(message, **kwargs)
    except TypeError:  # pragma: no cover - a subclass with another signature
        return APIError(message, **kwargs)
