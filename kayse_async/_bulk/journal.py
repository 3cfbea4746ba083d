"""The journal: an append-only file of JSON lines that makes a bulk job resumable.

Each record is written and fsynced before the job moves on: a ``sent``
record before every batch that creates anything (its input indexes and item
fingerprints), a ``done`` record with the returned objects after it was
stored, a ``void`` record when the server provably stored nothing. Only an
index of the file is kept in memory (one interval per run of each record); a
record's items are read back when the input reaches them and dropped once it
has passed them, so resuming a job of any size stays within bounded memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from typing import IO, TYPE_CHECKING, Any, Literal

from ..errors import ConfigurationError, KayseError

if TYPE_CHECKING:
    from .window import Entry

VERSION = 1

Known = tuple[Literal["done", "sent"], str, str, Any]
"""What a journal knows of one input item: (kind, batch, fingerprint, returned value)."""


def fingerprint(body: Any) -> str:
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


class Journal:
    """The resume file of one bulk job, locked while the job runs."""

    def __init__(self, path: str, route: str) -> None:
        self.path = path
        self._route = route
        self._run = secrets.token_hex(4)
        self._count = 0
        # (start, end, offset, kind) sorted by start; kind is "done" or "sent" (no outcome yet).
        self._intervals: list[tuple[int, int, int, str]] = []
        self._next = 0
        self._active: list[tuple[int, int, int, str]] = []
        self._cache: dict[int, dict[int, Known]] = {}
        self._file: IO[bytes] | None = None
        self._reader: IO[bytes] | None = None
        try:
            file = open(path, "a+b")  # noqa: SIM115 - kept open for the job's life
        except OSError as exc:
            raise ConfigurationError(f"journal {path!r} cannot be opened: {exc.strerror}") from None
        try:
            _lock(file, path)
            self._index(file)
            self._reader = open(path, "rb")  # noqa: SIM115
        except BaseException:
            file.close()
            raise
        self._file = file

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
                if record.get("v") != VERSION or record.get("route") != self._route:
                    raise ConfigurationError(
                        f"journal {self.path!r} belongs to another job (route {record.get('route')!r}, "
                        f"version {record.get('v')!r}); use a new journal file for {self._route}"
                    )
            elif kind in ("done", "sent"):
                records.append((start, kind, record["b"], record["idx"]))
                resolved.update(record.get("replaces", ()))
            elif kind == "void":
                resolved.add(record["b"])
        resolved.update(batch for _, kind, batch, _ in records if kind == "done")
        for start, kind, batch, runs in records:
            if kind == "done" or batch not in resolved:
                self._intervals.extend((first, end, start, kind) for first, end in runs)
        # Done first at equal starts, so that a stored item is never taken for an unresolved one.
        self._intervals.sort(key=lambda iv: (iv[0], iv[3] != "done"))
        if not header_seen:
            if offset:
                raise ConfigurationError(f"journal {self.path!r} is not a kayse-async bulk journal")
            _write(file, {"type": "job", "v": VERSION, "route": self._route})

    def lookup(self, index: int) -> Known | None:
        """What the journal knows of input ``index``, or None. Indexes must come in increasing order."""
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
        found: Known | None = None
        for first, end, offset, kind in live:
            if first <= index < end:
                found = self._load(offset)[index]
                if kind == "done":
                    break  # a later run stored what an earlier one left without an outcome: done wins
        return found

    def _load(self, offset: int) -> dict[int, Known]:
        record = self._cache.get(offset)
        if record is None:
            assert self._reader is not None
            self._reader.seek(offset)
            data = json.loads(self._reader.readline())
            indexes = [i for start, end in data["idx"] for i in range(start, end)]
            values = data.get("values") or [None] * len(indexes)
            known = zip(indexes, data["fp"], values, strict=True)
            record = {i: (data["type"], data["b"], fp, value) for i, fp, value in known}
            self._cache[offset] = record
        return record

    def new_batch(self) -> str:
        """A batch name unique across every run of this journal."""
        self._count += 1
        return f"{self._run}-{self._count}"

    def sent(self, batch: str, entries: list[Entry], replaces: str | None) -> None:
        """Record, before sending, that ``batch`` is about to go: its outcome is unknown until ``done``."""
        record: dict[str, Any] = {"type": "sent", "b": batch, **_items(entries)}
        if replaces is not None:
            record["replaces"] = [replaces]
        self._append(record)

    def done(self, batch: str, entries: list[Entry], values: list[Any]) -> None:
        """Record that ``batch`` was stored, with what the server returned for each item (None: unknown)."""
        self._append({"type": "done", "b": batch, **_items(entries), "values": values})

    def void(self, batch: str) -> None:
        """Record that ``batch`` stored nothing (the server refused it whole), so it may be sent again."""
        self._append({"type": "void", "b": batch})

    def _append(self, record: dict[str, Any]) -> None:
        if self._file is None:
            raise KayseError(f"journal {self.path!r} is closed")
        _write(self._file, record)

    def close(self) -> None:
        """Close the file (releasing its lock)."""
        for handle in (self._reader, self._file):
            if handle is not None:
                handle.close()
        self._reader = self._file = None


def _items(entries: list[Entry]) -> dict[str, Any]:
    return {"idx": _runs([e.index for e in entries]), "fp": [e.fingerprint for e in entries]}


def _write(file: IO[bytes], record: dict[str, Any]) -> None:
    file.write(json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n")
    file.flush()
    # A record counts once it is on disk: fsync before the job moves on. Blocking, but a few
    # milliseconds per chunk against a network round trip per chunk.
    os.fsync(file.fileno())


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
