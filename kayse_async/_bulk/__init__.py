"""The bulk engine: any number of records through the bulk routes, nothing lost, nothing twice.

``upsert_iter`` reads its input lazily, checks every item, groups the good
ones into chunks and keeps at most ``concurrency`` chunks in a window: their
requests go out at once, and their outcomes come back out in input order, so
memory is bounded by ``chunk_size`` x ``concurrency`` items whatever the size
of the input. ``upsert`` collects the stream into a ``BulkResult``;
``delete`` drives ``/v1/cases/bulk_delete``.

What happens to a batch, by the server's answer:

- 2xx with one object per item: every item ``succeeded``;
- 413, or a 400 that says the batch is too large: nothing was stored, so the
  batch is split and sent again, and the size learned is kept for the rest;
- another 400: the batch is ``rejected``, or, within ``bisect_budget`` extra
  requests, its bad items are isolated and the good ones sent again;
- no answer after sending (time-out, dropped connection, 500, an unreadable
  answer): ``uncertain``. A create is never sent twice: the API has no
  idempotency key. A batch of updates only (every item has an ``id``) was
  already retried by the transport, which is safe;
- 401, 403, 404, 405, 429 after retries, or ``QuotaExhaustedError``: the job
  stops; later chunks are ``not_attempted``.

The journal (``journal=PATH``) is an append-only file of JSON lines, each
written and fsynced before the engine moves on: a ``sent`` record before every
batch that creates anything (its input indexes and item fingerprints), a
``done`` record with the returned objects after it was stored, a ``void``
record when the server provably stored nothing. A rerun with the same journal
reproduces ``done`` items without a request, refuses an input whose items
differ from the journaled ones, and resolves a ``sent`` batch without an
outcome (the crash came between sending and the answer) without ever creating
a duplicate: see :func:`upsert_iter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import math
import os
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Generic, TypeGuard, TypeVar

from .._defaults import BULK_DELETE_CHUNK
from .._wire.fields import check_bulk_delete_ids
from .._wire.protocol import Request, excerpt
from ..errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    KayseError,
    MethodNotAllowedError,
    NotFoundError,
    QuotaExhaustedError,
    RateLimitError,
    TransportError,
    ValidationError,
)
from ..models import BulkItem, BulkProgress, BulkResult, BulkStatus

if TYPE_CHECKING:
    from .._resources._base import BulkEndpoint
    from .._transport import Transport

T = TypeVar("T")

ProgressCallback = Callable[[BulkProgress], None]
"""Called after every chunk (in input order) with a :class:`~kayse_async.models.BulkProgress`."""

JOURNAL_VERSION = 1

_NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "clients": ("external_source", "external_source_id"),
    "cases": ("external_source", "external_source_id"),
}
"""Per bulk route, the fields the server keeps unique: a create carrying them cannot be stored twice."""

_TOO_LARGE = re.compile(r"too (large|big|long|many)|at most \d+ (items|records|entries)|batch size", re.IGNORECASE)
_AT_MOST = re.compile(r"at most (\d+)", re.IGNORECASE)
_INDEXED_FIELD = re.compile(r"^[A-Za-z_]+\[(\d+)\](.*)$")
_FATAL = (AuthenticationError, NotFoundError, MethodNotAllowedError, RateLimitError)

_NOT_RESENT = (
    "the batch may have been stored; it was not sent again, because the API has no idempotency key "
    "and a resend could create duplicates (a rerun with the same journal resolves it safely)"
)


def _check_options(chunk_size: Any, concurrency: Any, bisect_budget: Any, progress: Any) -> None:
    for name, value, least in (("chunk_size", chunk_size, 1), ("concurrency", concurrency, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigurationError(f"{name} must be a whole number >= {least}, got {value!r}")
    if isinstance(bisect_budget, bool) or not isinstance(bisect_budget, int) or bisect_budget < 0:
        raise ConfigurationError(f"bisect_budget must be a whole number >= 0, got {bisect_budget!r}")
    if progress is not None and not callable(progress):
        raise ConfigurationError("progress must be a callable taking a BulkProgress, or None")


def _fingerprint(body: Any) -> str:
    """A short, stable digest of one item's request body (for journal checks; not a secret)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _runs(indexes: list[int]) -> list[list[int]]:
    """Sorted indexes as ``[start, end)`` runs: a journal line stays short for a contiguous batch."""
    runs: list[list[int]] = []
    for i in indexes:
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    return runs


def _expand(runs: list[list[int]]) -> list[int]:
    return [i for start, end in runs for i in range(start, end)]


def _input_length(items: Any) -> int | None:
    try:
        return len(items)
    except TypeError:
        return None


# --------------------------------------------------------------------------- journal


class _JournalRecord:
    """One journaled batch, read back: index -> (fingerprint, returned object or None)."""

    __slots__ = ("batch", "by_index", "kind")

    def __init__(self, kind: str, batch: str, by_index: dict[int, tuple[str, Any]]) -> None:
        self.kind = kind
        self.batch = batch
        self.by_index = by_index


class _Journal:
    """The append-only resume file of one bulk job.

    Only an index of the file is kept in memory (one interval per run of
    each record); a record's items are read back when the input reaches them
    and dropped once it has passed them, so resuming a job of any size stays
    within bounded memory.
    """

    def __init__(self, path: str, route: str) -> None:
        self.path = path
        self._route = route
        self._run = secrets.token_hex(4)
        self._count = 0
        # (start, end, offset, kind) sorted by start; kind is "done" or "sent" (no outcome yet).
        self._intervals: list[tuple[int, int, int, str]] = []
        self._next = 0
        self._active: list[tuple[int, int, int, str]] = []
        self._cache: dict[int, _JournalRecord] = {}
        self._file: IO[bytes] | None = None
        self._reader: IO[bytes] | None = None
        self._open()

    def _open(self) -> None:
        try:
            file = open(self.path, "a+b")  # noqa: SIM115 - kept open for the job's life
        except OSError as exc:
            raise ConfigurationError(f"journal {self.path!r} cannot be opened: {exc.strerror}") from None
        self._file = file
        try:
            _lock(file, self.path)
            self._index(file)
            self._reader = open(self.path, "rb")  # noqa: SIM115
        except BaseException:
            self._file = None
            file.close()
            raise

    def _index(self, file: IO[bytes]) -> None:
        file.seek(0)
        offset = 0
        resolved: set[str] = set()
        records: list[tuple[int, str, str, list[list[int]]]] = []
        header_seen = False
        for line in iter(file.readline, b""):
            start, offset = offset, offset + len(line)
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("torn line")
                record = json.loads(line)
            except ValueError:
                if offset == os.fstat(file.fileno()).st_size:
                    # The last line of a run that died mid-write: it never counted.
                    file.truncate(start)
                    offset = start
                    break
                raise ConfigurationError(
                    f"journal {self.path!r} is damaged at byte {start}; it cannot be used to resume"
                ) from None
            kind = record.get("type")
            if kind == "job":
                header_seen = True
                if record.get("v") != JOURNAL_VERSION or record.get("route") != self._route:
                    raise ConfigurationError(
                        f"journal {self.path!r} belongs to another job (route {record.get('route')!r}, "
                        f"version {record.get('v')!r}); use a new journal file for {self._route}"
                    )
            elif kind in ("done", "sent"):
                records.append((start, kind, record["b"], record["idx"]))
                if kind == "sent":
                    resolved.update(record.get("replaces", ()))
            elif kind == "void":
                resolved.add(record["b"])
        done_batches = {batch for _, kind, batch, _ in records if kind == "done"}
        for start, kind, batch, runs in records:
            if kind == "sent" and (batch in resolved or batch in done_batches):
                continue
            for first, end in runs:
                self._intervals.append((first, end, start, kind))
        # Done first at equal starts, so that a stored item is never taken for an unresolved one.
        self._intervals.sort(key=lambda iv: (iv[0], iv[3] != "done"))
        if not header_seen:
            if offset:
                raise ConfigurationError(f"journal {self.path!r} is not a kayse-async bulk journal")
            self._append({"type": "job", "v": JOURNAL_VERSION, "route": self._route})

    def lookup(self, index: int) -> tuple[str, str, str, Any] | None:
        """What the journal knows of input ``index``: (kind, batch, fingerprint, value), or None.

        Indexes must be asked in increasing order (the input is read once).
        """
        while self._next < len(self._intervals) and self._intervals[self._next][0] <= index:
            self._active.append(self._intervals[self._next])
            self._next += 1
        if not self._active:
            return None
        live = [iv for iv in self._active if iv[1] > index]
        if len(live) != len(self._active):
            kept = {iv[2] for iv in live}
            for iv in self._active:
                if iv[1] <= index and iv[2] not in kept:
                    self._cache.pop(iv[2], None)
            self._active = live
        found: _JournalRecord | None = None
        for first, end, offset, kind in live:
            if first <= index < end:
                found = self._load(offset)
                if kind == "done":
                    # A later run stored what an earlier one left without an outcome: done wins.
                    break
        if found is None:
            return None
        fingerprint, value = found.by_index[index]
        return found.kind, found.batch, fingerprint, value

    def _load(self, offset: int) -> _JournalRecord:
        record = self._cache.get(offset)
        if record is None:
            assert self._reader is not None
            self._reader.seek(offset)
            data = json.loads(self._reader.readline())
            indexes = _expand(data["idx"])
            values = data.get("values") or [None] * len(indexes)
            pairs = zip(data["fp"], values, strict=True)
            record = _JournalRecord(data["type"], data["b"], dict(zip(indexes, pairs, strict=True)))
            self._cache[offset] = record
        return record

    def new_batch(self) -> str:
        """A batch name unique across every run of this journal."""
        self._count += 1
        return f"{self._run}-{self._count}"

    def sent(self, batch: str, entries: list[_Entry], replaces: list[str]) -> None:
        """Record, before sending, that ``batch`` is about to go: its outcome is unknown until ``done``."""
        record: dict[str, Any] = {
            "type": "sent",
            "b": batch,
            "idx": _runs([e.index for e in entries]),
            "fp": [e.fingerprint for e in entries],
        }
        if replaces:
            record["replaces"] = replaces
        self._append(record)

    def done(self, batch: str, entries: list[_Entry], values: list[Any]) -> None:
        """Record that ``batch`` was stored, with what the server returned for each item."""
        self._append(
            {
                "type": "done",
                "b": batch,
                "idx": _runs([e.index for e in entries]),
                "fp": [e.fingerprint for e in entries],
                "values": values,
            }
        )

    def void(self, batch: str) -> None:
        """Record that ``batch`` stored nothing (the server refused it whole), so it may be sent again."""
        self._append({"type": "void", "b": batch})

    def _append(self, record: dict[str, Any]) -> None:
        file = self._file
        if file is None:
            raise KayseError(f"journal {self.path!r} is closed")
        line = json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n"
        file.write(line)
        file.flush()
        # A record counts once it is on disk: fsync before the job moves on. Blocking, but a few
        # milliseconds per chunk against a network round trip per chunk.
        os.fsync(file.fileno())

    def close(self) -> None:
        """Close the file (releasing its lock)."""
        for handle in (self._reader, self._file):
            if handle is not None:
                handle.close()
        self._reader = self._file = None


def _lock(file: IO[bytes], path: str) -> None:
    """Refuse a journal another running job holds: two writers would interleave their records."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, documented
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ConfigurationError(f"journal {path!r} is in use by another running job") from None


# --------------------------------------------------------------------------- chunks


class _Entry:
    """One checked input item waiting to be sent."""

    __slots__ = ("body", "fingerprint", "has_id", "index")

    def __init__(self, index: int, body: dict[str, Any], fingerprint: str) -> None:
        self.index = index
        self.body = body
        self.fingerprint = fingerprint
        self.has_id = body.get("id") is not None


class _Chunk(Generic[T]):
    """A run of consecutive input items: their outcomes so far and the entries still to send."""

    __slots__ = ("entries", "recovers", "slots", "start", "task")

    def __init__(self, start: int) -> None:
        self.start = start
        self.slots: list[BulkItem[T] | None] = []
        self.entries: list[_Entry] = []
        self.recovers: str | None = None
        self.task: asyncio.Task[None] | None = None

    def set(self, index: int, item: BulkItem[T]) -> None:
        self.slots[index - self.start] = item

    def outcomes(self) -> list[BulkItem[T]]:
        out: list[BulkItem[T]] = []
        for offset, slot in enumerate(self.slots):
            if slot is None:  # pragma: no cover - every sent entry gets an outcome; a bug if not
                slot = BulkItem[T](
                    index=self.start + offset,
                    status="uncertain",
                    error=KayseError("internal error: no outcome was recorded for this item"),
                )
            out.append(slot)
        return out


class _Source:
    """The input, read one item at a time whether it is sync or async."""

    def __init__(self, items: Any) -> None:
        self._sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        if hasattr(items, "__aiter__"):
            self._async = aiter(items)
        elif _is_text_or_mapping(items) or not hasattr(items, "__iter__"):
            kind: str = type(items).__name__
            raise ValidationError("items", f"expected an iterable of models or mappings, got {kind}")
        else:
            self._sync = iter(items)
        self.index = 0

    @property
    def is_sync(self) -> bool:
        """True for a plain iterable, read with :meth:`next_now` (no coroutine per item)."""
        return self._sync is not None

    def next_now(self) -> tuple[int, Any] | None:
        """The next item of a plain iterable, or None at its end."""
        assert self._sync is not None
        try:
            item = next(self._sync)
        except StopIteration:
            return None
        index = self.index
        self.index += 1
        return index, item

    async def next(self) -> tuple[int, Any] | None:
        if self._sync is not None:
            return self.next_now()
        assert self._async is not None
        try:
            item = await anext(self._async)
        except StopAsyncIteration:
            return None
        index = self.index
        self.index += 1
        return index, item

    async def aclose(self) -> None:
        """Close a generator the job stopped reading (so its ``finally`` runs); other iterables are left alone."""
        if inspect.isasyncgen(self._async):
            await self._async.aclose()
        elif inspect.isgenerator(self._sync):
            self._sync.close()


# --------------------------------------------------------------------------- the job


class _Job(Generic[T]):
    """The state one bulk upsert shares between its chunks."""

    def __init__(
        self,
        transport: Transport,
        endpoint: BulkEndpoint[T],
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        chunk_size: int,
        concurrency: int,
        bisect_budget: int,
        journal: str | None,
        progress: ProgressCallback | None,
        max_wait: float | None,
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.source = _Source(items)
        self.total = _input_length(items)
        self.chunk_size = chunk_size
        self.concurrency = concurrency
        self.budget = bisect_budget
        self.journal_path = os.fspath(journal) if journal is not None else None
        self.journal: _Journal | None = None
        self.progress = progress
        self.max_wait = max_wait
        self.max_batch: int | None = None
        self.stop: KayseError | None = None
        self.sem = asyncio.Semaphore(concurrency)
        self.natural_key = _NATURAL_KEYS.get(endpoint.request_key, ())
        self.carry: _Entry | tuple[_Entry, str] | BulkItem[T] | None = None
        self.requests_at_start = 0
        self.wait_at_start: float | None = None
        self.request_seconds = 0.0
        self.request_count = 0
        self.fastest = math.inf
        self.done = 0
        self.succeeded = 0
        self.failed = 0

    # ---- reading

    def _prepare(self, index: int, item: Any) -> _Entry | ValidationError:
        prepare = self.endpoint.prepare
        try:
            body = prepare(item, "")
        except ValidationError:
            # Checked again to name the item in the error (``clients[12].email``): the path
            # costs a string per item, which only a bad item needs.
            try:
                body = prepare(item, f"{self.endpoint.request_key}[{index}].")
            except ValidationError as exc:
                return exc
        # Fingerprints only serve the journal: without one, they would be CPU spent for nothing.
        return _Entry(index, body, _fingerprint(body) if self.journal_path is not None else "")

    def _classify(self, index: int, item: Any) -> _Entry | tuple[_Entry, str] | BulkItem[T]:
        """A checked entry to send, a (entry, old batch) to recover, or an outcome known already."""
        entry = self._prepare(index, item)
        known = self.journal.lookup(index) if self.journal is not None else None
        if known is not None:
            kind, batch, fingerprint, value = known
            if isinstance(entry, ValidationError) or entry.fingerprint != fingerprint:
                raise ConfigurationError(
                    f"journal {self.journal_path!r}: input item {index} differs from the item journaled at that "
                    "place (the input changed since the journaled run); refusing to resume. Restore the input, "
                    "or use a new journal file for a new job"
                )
            if kind == "done":
                try:
                    return BulkItem(index=index, status="succeeded", value=self.endpoint.structure(value))
                except KayseError as exc:
                    return BulkItem(index=index, status="uncertain", error=exc)
            if entry.has_id:
                # An update: sending it again is harmless.
                return entry
            if self.natural_key and all(entry.body.get(k) is not None for k in self.natural_key):
                return entry, batch
            return BulkItem(
                index=index,
                status="uncertain",
                error=KayseError(
                    f"{self.endpoint.request_key}[{index}]: a previous run sent this item and never learned "
                    "whether it was stored; it is not sent again, because a resend could create a duplicate. "
                    "Check the server"
                ),
            )
        if isinstance(entry, ValidationError):
            return BulkItem(index=index, status="rejected", error=entry)
        return entry

    async def next_chunk(self) -> _Chunk[T] | None:
        chunk: _Chunk[T] | None = None
        while True:
            if self.carry is not None:
                got, self.carry = self.carry, None
            else:
                read = self.source.next_now() if self.source.is_sync else await self.source.next()
                if read is None:
                    break
                got = self._classify(*read)
            index = got.index if isinstance(got, BulkItem | _Entry) else got[0].index
            if chunk is None:
                chunk = _Chunk(index)
            if isinstance(got, BulkItem):
                chunk.slots.append(got)
            else:
                entry, recovers = (got, None) if isinstance(got, _Entry) else got
                # A recovered batch travels alone: the server stores a batch whole or not at all, so
                # its answer then tells about that batch only.
                if chunk.entries and chunk.recovers != recovers:
                    self.carry = got
                    break
                chunk.recovers = recovers
                chunk.slots.append(None)
                chunk.entries.append(entry)
            if len(chunk.entries) >= self.chunk_size or len(chunk.slots) >= 2 * self.chunk_size:
                break
        return chunk

    # ---- sending

    def _stopped(self) -> KayseError:
        return KayseError(f"not sent: the job stopped after an earlier error: {self.stop}")

    def _settle(self, chunk: _Chunk[T], entries: list[_Entry], status: BulkStatus, error: KayseError) -> None:
        if chunk.recovers is not None and status in ("rejected", "not_attempted"):
            # The previous run's attempt may have stored these: never call them rejected or unsent.
            field = _error_field(error) if isinstance(error, APIError) else None
            if status == "not_attempted":
                why = "it was not sent again now"
            elif field is not None and any(field.endswith(key) for key in self.natural_key):
                why = "the server now says it holds these keys already, so it was most likely stored then (ids unknown)"
            else:
                why = "the server refused it now; whether the earlier attempt stored it is unknown"
            status = "uncertain"
            error = _annotated(error, f"a previous run had sent this batch without learning its outcome; {why}")
        for entry in entries:
            chunk.set(entry.index, BulkItem(index=entry.index, status=status, error=error))

    async def send_chunk(self, chunk: _Chunk[T]) -> None:
        await self._send(chunk, chunk.entries, bisecting=False)

    async def _send(self, chunk: _Chunk[T], entries: list[_Entry], *, bisecting: bool) -> None:
        if self.stop is not None:
            self._settle(chunk, entries, "not_attempted", self._stopped())
            return
        limit = self.max_batch
        if limit is not None and len(entries) > limit:
            await self._send_parts(chunk, [entries[i : i + limit] for i in range(0, len(entries), limit)], bisecting)
            return
        async with self.sem:
            if self.stop is not None:
                self._settle(chunk, entries, "not_attempted", self._stopped())
                return
            if self.max_batch is not None and len(entries) > self.max_batch:
                outcome: Any = None  # learned while waiting: split below
            else:
                outcome = await self._request(chunk, entries)
        if outcome is None:
            await self._send(chunk, entries, bisecting=bisecting)
            return
        batch, result = outcome
        if not isinstance(result, KayseError):
            self._stored(chunk, entries, batch, result)
            return
        await self._failed(chunk, entries, batch, result, bisecting=bisecting)

    async def _send_parts(self, chunk: _Chunk[T], parts: list[list[_Entry]], bisecting: bool) -> None:
        async with asyncio.TaskGroup() as group:
            for part in parts:
                group.create_task(self._send(chunk, part, bisecting=bisecting))

    async def _request(self, chunk: _Chunk[T], entries: list[_Entry]) -> tuple[str | None, Any]:
        creates = any(not e.has_id for e in entries)
        batch: str | None = None
        if self.journal is not None:
            batch = self.journal.new_batch()
            if creates:
                self.journal.sent(batch, entries, [chunk.recovers] if chunk.recovers else [])
        request = Request(
            method="POST",
            path=self.endpoint.path,
            json={self.endpoint.request_key: [e.body for e in entries]},
            idempotent=not creates,
        )
        started = time.perf_counter()
        try:
            response = await self.transport.request(request, max_wait=self.max_wait)
        except KayseError as exc:
            return batch, exc
        finally:
            elapsed = time.perf_counter() - started
            self.request_seconds += elapsed
            self.request_count += 1
            self.fastest = min(self.fastest, elapsed)
        return batch, response.data

    def _stored(self, chunk: _Chunk[T], entries: list[_Entry], batch: str | None, data: Any) -> None:
        key = self.endpoint.response_key
        values = _member_list(data, key)
        if values is None or len(values) != len(entries):
            got = f"{len(values)} items" if values is not None else excerpt(json.dumps(data, default=str))
            error = APIError(
                f"unexpected response to a batch of {len(entries)}: expected {{{key!r}: [...]}} with one object "
                f"per item, got {got}; {_NOT_RESENT}",
                status=200,
                body=data,
                method="POST",
                url=self.endpoint.path,
            )
            # The journal keeps the batch without an outcome: a rerun resolves it without duplicates.
            self._settle(chunk, entries, "uncertain", error)
            return
        if self.journal is not None and batch is not None:
            self.journal.done(batch, entries, values)
        structure = self.endpoint.structure
        for entry, raw in zip(entries, values, strict=True):
            try:
                item: BulkItem[T] = BulkItem(index=entry.index, status="succeeded", value=structure(raw))
            except KayseError as exc:
                item = BulkItem(
                    index=entry.index, status="uncertain", error=_annotated(exc, "stored, but the answer is unreadable")
                )
            chunk.set(entry.index, item)

    def _void(self, batch: str | None, entries: list[_Entry]) -> None:
        if self.journal is not None and batch is not None and any(not e.has_id for e in entries):
            self.journal.void(batch)

    async def _failed(
        self, chunk: _Chunk[T], entries: list[_Entry], batch: str | None, exc: KayseError, *, bisecting: bool
    ) -> None:
        creates = any(not e.has_id for e in entries)
        recovering = chunk.recovers is not None
        if isinstance(exc, QuotaExhaustedError) or (isinstance(exc, TransportError) and not exc.may_have_been_sent):
            # Nothing reached the server.
            if not recovering:
                self._void(batch, entries)
            if isinstance(exc, QuotaExhaustedError):
                self.stop = self.stop or exc
            self._settle(chunk, entries, "not_attempted", exc)
            return
        if isinstance(exc, TransportError) or (isinstance(exc, APIError) and (exc.status >= 500 or exc.status < 400)):
            if isinstance(exc, APIError) and exc.status == 503:
                # The server was unavailable and did nothing (the transport retried it already).
                if not recovering:
                    self._void(batch, entries)
                self._settle(chunk, entries, "rejected", exc)
                return
            note = _NOT_RESENT if creates else "the updates may have been applied; sending them again is safe"
            self._settle(chunk, entries, "uncertain", _annotated(exc, note))
            return
        assert isinstance(exc, APIError)
        # A 4xx: the server refused the batch whole and stored nothing.
        if not recovering:
            self._void(batch, entries)
        if _too_large(exc):
            if len(entries) > 1:
                self._learn_size(exc, len(entries))
                await self._send(chunk, entries, bisecting=bisecting)
                return
            self._settle(chunk, entries, "rejected", exc)
            return
        if isinstance(exc, _FATAL) or exc.status == 403:
            self.stop = self.stop or exc
            self._settle(chunk, entries, "rejected", exc)
            return
        if isinstance(exc, BadRequestError) and len(entries) > 1 and not recovering and self.budget > 0:
            await self._isolate(chunk, entries, exc)
            return
        error: KayseError = _for_input(exc, entries)
        if bisecting and len(entries) > 1 and isinstance(exc, BadRequestError):
            error = _annotated(error, "the bisection budget is spent")
        self._settle(chunk, entries, "rejected", error)

    def _learn_size(self, exc: APIError, size: int) -> None:
        stated = _AT_MOST.search(exc.message)
        learned = int(stated.group(1)) if stated else max(1, math.ceil(size / 2))
        learned = max(1, min(learned, size - 1))
        self.max_batch = learned if self.max_batch is None else min(self.max_batch, learned)

    async def _isolate(self, chunk: _Chunk[T], entries: list[_Entry], exc: APIError) -> None:
        """Find the bad items of a refused batch within the bisection budget, and send the good ones."""
        named = _named_position(exc, len(entries))
        if named is not None:
            # The server named the item at fault: it alone is rejected, the rest go again in one request.
            bad = entries[named]
            chunk.set(bad.index, BulkItem(index=bad.index, status="rejected", error=_for_input(exc, entries)))
            parts = [entries[:named] + entries[named + 1 :]]
        else:
            half = len(entries) // 2
            parts = [entries[:half], entries[half:]]
        granted: list[list[_Entry]] = []
        for part in parts:
            if self.budget > 0:
                self.budget -= 1
                granted.append(part)
            else:
                self._settle(
                    chunk, part, "rejected", _annotated(_for_input(exc, entries), "the bisection budget is spent")
                )
        await self._send_parts(chunk, granted, True)

    # ---- accounting

    def requests(self) -> int:
        return self.transport.requests_sent - self.requests_at_start

    def quota_wait(self) -> float:
        measured = _measured_wait(self.transport)
        if measured is not None and self.wait_at_start is not None:
            return measured - self.wait_at_start
        return _wait_estimate(self.request_seconds, self.request_count, self.fastest)

    def account(self, outcomes: list[BulkItem[T]]) -> None:
        for item in outcomes:
            self.done += 1
            if item.status == "succeeded":
                self.succeeded += 1
            else:
                self.failed += 1
        if self.progress is not None:
            self.progress(
                BulkProgress(
                    items_done=self.done,
                    items_total=self.total,
                    requests=self.requests(),
                    quota_wait_seconds=self.quota_wait(),
                    succeeded=self.succeeded,
                    failed=self.failed,
                )
            )

    # ---- the window

    async def run(self) -> AsyncGenerator[BulkItem[T], None]:
        pending: deque[_Chunk[T]] = deque()
        exhausted = False
        self.requests_at_start = self.transport.requests_sent
        self.wait_at_start = _measured_wait(self.transport)
        try:
            if self.journal_path is not None:
                self.journal = _Journal(self.journal_path, self.endpoint.path)
            while True:
                while not exhausted and len(pending) < self.concurrency:
                    chunk = await self.next_chunk()
                    if chunk is None:
                        exhausted = True
                        break
                    if chunk.entries:
                        chunk.task = asyncio.ensure_future(self.send_chunk(chunk))
                    pending.append(chunk)
                if not pending:
                    return
                head = pending[0]
                if head.task is not None:
                    await head.task
                pending.popleft()
                outcomes = head.outcomes()
                head.slots = []
                self.account(outcomes)
                for item in outcomes:
                    yield item
        finally:
            tasks = [c.task for c in pending if c.task is not None and not c.task.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                # The cancelled requests give their unspent budget back (the transport's leases); the
                # journal keeps their "sent" records without an outcome, which a rerun resolves.
                await asyncio.gather(*tasks, return_exceptions=True)
            for chunk in pending:
                if chunk.task is not None and chunk.task.done() and not chunk.task.cancelled():
                    chunk.task.exception()  # retrieved: a failure already propagated elsewhere
            with contextlib.suppress(Exception):
                await self.source.aclose()
            if self.journal is not None:
                self.journal.close()


def _measured_wait(transport: Transport) -> float | None:
    """The transport's running total of seconds spent waiting for budget, when it keeps one."""
    total = getattr(transport, "quota_wait_seconds", None)
    return float(total) if isinstance(total, int | float) and not isinstance(total, bool) else None


def _wait_estimate(seconds: float, count: int, fastest: float) -> float:
    """Time the requests spent beyond the fastest one's: an estimate of the wait for budget.

    Used when the transport keeps no ``quota_wait_seconds`` total: the
    engine times each call and counts what exceeds the quickest call of the
    job (a request that met no wait) as waiting. Slower answers and requests
    queued at the server behind the job's other requests count too: an
    upper bound, close when requests rarely overlap.
    """
    if not count:
        return 0.0
    return max(0.0, seconds - count * fastest)


def _annotated(exc: KayseError, note: str) -> KayseError:
    """A copy of ``exc`` (same class and attributes) whose message ends with ``note``."""
    if isinstance(exc, APIError):
        copy = _copy_api_error(exc, f"{exc.message}; {note}")
        return copy
    if isinstance(exc, TransportError):
        return type(exc)(f"{exc}; {note}", method=exc.method, url=exc.url, may_have_been_sent=exc.may_have_been_sent)
    if isinstance(exc, ValidationError):
        return ValidationError(exc.field, f"{exc.reason}; {note}")
    return KayseError(f"{exc}; {note}")


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


def _too_large(exc: APIError) -> bool:
    """A 413, or a 400 about the batch as a whole (its field names no item) saying it is too large.

    A 400 naming one item (``clients[3].name: too long``) is about that item:
    splitting would not help, and would cost a request per split.
    """
    if exc.status == 413:
        return True
    field = _error_field(exc)
    return exc.status == 400 and (field is None or "[" not in field) and bool(_TOO_LARGE.search(exc.message))


def _member_list(data: Any, key: str) -> list[Any] | None:
    """``data[key]`` when ``data`` is a JSON object holding a list there, else None."""
    if not _is_dict(data):
        return None
    value = data.get(key)
    return value if _is_list(value) else None


def _is_text_or_mapping(value: object) -> bool:
    """A string or a mapping is iterable, but never a list of items: refuse it rather than send its letters."""
    return isinstance(value, str | bytes | Mapping)


def _is_dict(value: object) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict)


def _is_list(value: object) -> TypeGuard[list[Any]]:
    return isinstance(value, list)


def _error_field(exc: APIError) -> str | None:
    """The ``field`` of the server's error body, when it has one."""
    body: object = exc.body
    if not _is_dict(body):
        return None
    field = body.get("field")
    return field if isinstance(field, str) else None


def _named_position(exc: APIError, size: int) -> int | None:
    """The position within the batch of the item the server's error names (``clients[3].x``), if any."""
    field = _error_field(exc)
    if field is None:
        return None
    found = _INDEXED_FIELD.match(field)
    if found is None:
        return None
    position = int(found.group(1))
    return position if position < size else None


def _for_input(exc: APIError, entries: list[_Entry]) -> APIError:
    """The server's error with the item it names renamed from its batch position to its input index.

    The server says ``clients[3].first_name`` of the batch it was sent; the
    caller knows the item as ``clients[1503].first_name`` of its input.
    """
    field = _error_field(exc)
    position = _named_position(exc, len(entries))
    if field is None or position is None:
        return exc
    prefix, rest = field.split("[", 1)
    renamed = f"{prefix}[{entries[position].index}]{rest.split(']', 1)[1]}"
    body = dict(exc.body)
    body["field"] = renamed
    copy = _copy_api_error(exc, exc.message.replace(field, renamed))
    copy.body = body
    return copy


# --------------------------------------------------------------------------- entry points


def upsert_iter(
    transport: Transport,
    endpoint: BulkEndpoint[T],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    chunk_size: int,
    concurrency: int,
    bisect_budget: int,
    journal: str | os.PathLike[str] | None,
    progress: ProgressCallback | None,
    max_wait: float | None,
) -> AsyncGenerator[BulkItem[T], None]:
    """Stream ``items`` through ``endpoint``; yield one ``BulkItem`` per input item, in input order.

    Options are checked at once (``ConfigurationError``); the input is read
    as the stream is consumed, at most ``chunk_size`` x ``concurrency`` valid
    items ahead of what was yielded. Close the iterator (``aclosing``) or
    cancel its consumer to stop: requests in flight are cancelled and the
    journal stays consistent.

    With a ``journal``, a rerun of the same job reproduces journaled items as
    ``succeeded`` without a request, and resolves a batch that a previous run
    sent without learning its outcome: items with an ``id`` are sent again
    (harmless); creates of clients and cases are sent again as the same batch,
    which the server cannot store twice (``external_source`` +
    ``external_source_id`` are unique): if it refuses them, they are reported
    ``uncertain`` (most likely stored then); other creates are reported
    ``uncertain`` without a request.
    """
    _check_options(chunk_size, concurrency, bisect_budget, progress)
    job = _Job(
        transport,
        endpoint,
        items,
        chunk_size=chunk_size,
        concurrency=concurrency,
        bisect_budget=bisect_budget,
        journal=None if journal is None else os.fspath(journal),
        progress=progress,
        max_wait=max_wait,
    )
    return job.run()


async def upsert(
    transport: Transport,
    endpoint: BulkEndpoint[T],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    chunk_size: int,
    concurrency: int,
    raise_on_error: bool,
    bisect_budget: int,
    journal: str | os.PathLike[str] | None,
    progress: ProgressCallback | None,
    max_wait: float | None,
) -> BulkResult[T]:
    """Run :func:`upsert_iter` to the end and collect a ``BulkResult``.

    With ``raise_on_error``, ``errors.BulkError`` carrying the result is
    raised after every chunk that could be sent was sent, if any item failed.
    """
    requests_before = transport.requests_sent
    stream = upsert_iter(
        transport,
        endpoint,
        items,
        chunk_size=chunk_size,
        concurrency=concurrency,
        bisect_budget=bisect_budget,
        journal=journal,
        progress=progress,
        max_wait=max_wait,
    )
    collected: list[BulkItem[T]] = []
    async with contextlib.aclosing(stream):
        async for item in stream:
            collected.append(item)
    result = BulkResult(items=collected, requests=transport.requests_sent - requests_before)
    if raise_on_error:
        result.raise_for_errors()
    return result


async def delete(
    transport: Transport,
    ids: Iterable[int] | AsyncIterable[int],
    *,
    with_clients: bool,
    concurrency: int,
    max_wait: float | None,
    progress: ProgressCallback | None,
) -> list[int]:
    """Delete cases by id through ``POST /v1/cases/bulk_delete``; return the ids the server deleted.

    Every id is read and checked before the first request (a bad id names its
    place: ``ids[7]``); duplicates are dropped, first order kept. Chunks of
    at most 500 ids go ``concurrency`` at a time, each safe to retry: an id a
    retried chunk finds already gone is simply not in the answer. If any
    chunk fails, the other chunks still run, then ``errors.BulkError`` is
    raised: its result holds one item per unique id (``succeeded`` with the
    id when it was deleted, ``succeeded`` with None when the server no longer
    had it, else the chunk's failure).
    """
    if not isinstance(with_clients, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValidationError("with_clients", f"expected true or false, got {type(with_clients).__name__}")
    _check_options(BULK_DELETE_CHUNK, concurrency, 0, progress)
    if isinstance(ids, AsyncIterable):
        ids = [i async for i in ids]
    unique = check_bulk_delete_ids(ids)
    chunks = [unique[i : i + BULK_DELETE_CHUNK] for i in range(0, len(unique), BULK_DELETE_CHUNK)]
    sem = asyncio.Semaphore(concurrency)
    requests_before = transport.requests_sent
    deleted: set[int] = set()
    outcomes: dict[int, tuple[BulkStatus, KayseError | None]] = {}
    stop: list[KayseError] = []
    state = {"done": 0, "succeeded": 0, "failed": 0}
    timing = {"seconds": 0.0, "count": 0.0, "fastest": math.inf}
    wait_before = _measured_wait(transport)

    def wait_now() -> float:
        measured = _measured_wait(transport)
        if measured is not None and wait_before is not None:
            return measured - wait_before
        return _wait_estimate(timing["seconds"], int(timing["count"]), timing["fastest"])

    async def one(chunk: list[int]) -> None:
        async with sem:
            error: KayseError | None = None
            status: BulkStatus = "succeeded"
            if stop:
                status, error = (
                    "not_attempted",
                    KayseError(f"not sent: the job stopped after an earlier error: {stop[0]}"),
                )
            else:
                request = Request(
                    method="POST",
                    path="/v1/cases/bulk_delete",
                    json={"ids": chunk, "with_clients": with_clients},
                    idempotent=True,
                )
                started = time.perf_counter()
                try:
                    response = await transport.request(request, max_wait=max_wait)
                except KayseError as exc:
                    status, error = _delete_failure(exc)
                    if isinstance(exc, (QuotaExhaustedError, *_FATAL)):
                        stop.append(exc)
                else:
                    got = _member_list(response.data, "deleted_ids")
                    if got is None or not all(isinstance(i, int) and not isinstance(i, bool) for i in got):
                        status = "uncertain"
                        error = APIError(
                            "unexpected response: expected {'deleted_ids': [...]}, got "
                            f"{excerpt(json.dumps(response.data, default=str))}",
                            status=response.status,
                            body=response.data,
                            method="POST",
                            url=request.path,
                        )
                    else:
                        asked = set(chunk)
                        deleted.update(i for i in got if i in asked)
                finally:
                    elapsed = time.perf_counter() - started
                    timing["seconds"] += elapsed
                    timing["count"] += 1
                    timing["fastest"] = min(timing["fastest"], elapsed)
            for i in chunk:
                outcomes[i] = (status, error)
            state["done"] += len(chunk)
            state["succeeded" if status == "succeeded" else "failed"] += len(chunk)
            if progress is not None:
                progress(
                    BulkProgress(
                        items_done=state["done"],
                        items_total=len(unique),
                        requests=transport.requests_sent - requests_before,
                        quota_wait_seconds=wait_now(),
                        succeeded=state["succeeded"],
                        failed=state["failed"],
                    )
                )

    async with asyncio.TaskGroup() as group:
        for chunk in chunks:
            group.create_task(one(chunk))
    if any(status != "succeeded" for status, _ in outcomes.values()):
        items: list[BulkItem[int]] = []
        for index, case_id in enumerate(unique):
            status, error = outcomes[case_id]
            value = case_id if status == "succeeded" and case_id in deleted else None
            items.append(BulkItem(index=index, status=status, value=value, error=error))
        BulkResult(items=items, requests=transport.requests_sent - requests_before).raise_for_errors()
    return [i for i in unique if i in deleted]


def _delete_failure(exc: KayseError) -> tuple[BulkStatus, KayseError]:
    if isinstance(exc, QuotaExhaustedError) or (isinstance(exc, TransportError) and not exc.may_have_been_sent):
        return "not_attempted", exc
    if isinstance(exc, TransportError) or (isinstance(exc, APIError) and exc.status >= 500 and exc.status != 503):
        return "uncertain", _annotated(exc, "some of these cases may have been deleted; deleting again is safe")
    return "rejected", exc
