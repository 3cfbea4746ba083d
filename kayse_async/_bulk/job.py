"""The engine of one bulk job, for upsert and delete alike: check, chunk, send, and act on each answer.

A :class:`Route` talks to one bulk route; a :class:`Job` checks each item, looks it up in the journal,
sends chunks through the window, and acts on each failure as :func:`.policy.judge` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import attrs

from .._defaults import CHUNK_SIZE, CONCURRENCY
from .._wire.protocol import Request, excerpt
from ..errors import APIError, BatchRefusedError, ConfigurationError, KayseError, ValidationError
from ..models import BulkItem, Resolution
from .journal import Journal, fingerprint
from .policy import Batch, Op, Verdict, annotated, for_input, judge, learn_size, named_position, resume
from .progress import Progress, ProgressCallback
from .source import Source
from .window import Chunk, Entry, window

if TYPE_CHECKING:
    from .._resources._base import BulkEndpoint
    from .._transport import Transport

T = TypeVar("T")

NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "clients": ("external_source", "external_source_id"),
    "cases": ("external_source", "external_source_id"),
}
"""Per bulk route, the fields the server keeps unique: a create carrying them cannot be stored twice."""


def _whole(name: str, least: int) -> Any:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigurationError(f"{name} must be a whole number >= {least}, got {value!r}")

    return check


def _callable_or_none(_instance: Any, _attribute: Any, value: Any) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError("progress must be a callable taking a BulkProgress, or None")


@attrs.frozen(kw_only=True)
class BulkOptions:
    """The options of one bulk job, checked once when made (``ConfigurationError``); see ``docs/bulk.md``."""

    chunk_size: int = attrs.field(default=CHUNK_SIZE, validator=_whole("chunk_size", 1))
    concurrency: int = attrs.field(default=CONCURRENCY, validator=_whole("concurrency", 1))
    bisect_budget: int = attrs.field(default=0, validator=_whole("bisect_budget", 0))
    journal: str | None = attrs.field(default=None, converter=attrs.converters.optional(os.fspath))
    progress: ProgressCallback | None = attrs.field(default=None, validator=_callable_or_none)
    max_wait: float | None = None


class Route(Protocol[T]):
    """How a job talks to one bulk route: ``key`` is the request's list (it names items in errors:
    ``clients[12]``), ``expected`` what a usable answer holds (for the error about one that does not)."""

    op: Op
    path: str
    key: str
    expected: str
    natural_key: tuple[str, ...]

    def prepare(self, item: Any, index: int) -> tuple[Any, bool]:
        """One input item's request body and whether it creates anything; raises ``ValidationError``."""
        ...

    def body(self, entries: list[Entry]) -> dict[str, Any]:
        """The request's JSON body for a batch."""
        ...

    def values(self, data: Any, entries: list[Entry]) -> list[Any] | str:
        """One value per entry from a 2xx answer, or what the answer held instead."""
        ...

    def outcomes(
        self, entries: list[Entry], values: list[Any], after_lost: bool, resolved: Resolution | None
    ) -> list[BulkItem[T]]:
        """The outcomes of a stored batch; ``after_lost``: the answer is a retry's, after one was lost."""
        ...

    def structure(self, value: Any) -> T:
        """A returned object, from its JSON (as the journal keeps it)."""
        ...


class UpsertRoute(Generic[T]):
    """``POST /v1/{clients,cases,case_lists}/bulk``: items without an id are created, with one updated."""

    op: Op = "upsert"

    def __init__(self, endpoint: BulkEndpoint[T]) -> None:
        self.path = endpoint.path
        self.key = endpoint.key
        self.expected = f"{{{endpoint.key!r}: [...]}} with one object per item"
        self.natural_key = NATURAL_KEYS.get(endpoint.key, ())
        self._endpoint = endpoint

    def prepare(self, item: Any, index: int) -> tuple[Any, bool]:
        prepare = self._endpoint.prepare
        try:
            body = prepare(item, "")
        except ValidationError:
            # Checked again to name the item in the error (``clients[12].email``): the path costs a
            # string per item, which only a bad item needs.
            body = prepare(item, f"{self.key}[{index}].")
        return body, body.get("id") is None

    def body(self, entries: list[Entry]) -> dict[str, Any]:
        return {self.key: [e.body for e in entries]}

    def values(self, data: Any, entries: list[Entry]) -> list[Any] | str:
        values = data.get(self.key) if isinstance(data, dict) else None
        if isinstance(values, list) and len(values) == len(entries):
            return values
        return f"{len(values)} items" if isinstance(values, list) else excerpt(json.dumps(data, default=str))

    def structure(self, value: Any) -> T:
        return self._endpoint.structure(value)

    def outcomes(
        self, entries: list[Entry], values: list[Any], after_lost: bool, resolved: Resolution | None
    ) -> list[BulkItem[T]]:
        structure = self._endpoint.structure
        items: list[BulkItem[T]] = []
        for entry, value in zip(entries, values, strict=True):
            try:
                items.append(BulkItem(index=entry.index, status="succeeded", value=structure(value), resolved=resolved))
            except KayseError as exc:
                error = annotated(exc, "stored, but the answer is unreadable")
                items.append(BulkItem(index=entry.index, status="uncertain", error=error))
        return items


class DeleteRoute:
    """``POST /v1/cases/bulk_delete``: the items are case ids, checked beforehand; safe to repeat."""

    op: Op = "delete"
    path = "/v1/cases/bulk_delete"
    key = "ids"
    expected = "{'deleted_ids': [...]} (integers)"
    natural_key: tuple[str, ...] = ()

    def __init__(self, with_clients: bool) -> None:
        self._with_clients = with_clients
        self.gone: set[int] = set()
        """Ids absent from an answer that followed a lost one: deleted by the lost attempt, or never there."""

    def prepare(self, item: Any, index: int) -> tuple[Any, bool]:
        return item, False

    def structure(self, value: Any) -> int:
        return int(value)

    def body(self, entries: list[Entry]) -> dict[str, Any]:
        return {"ids": [e.body for e in entries], "with_clients": self._with_clients}

    def values(self, data: Any, entries: list[Entry]) -> list[Any] | str:
        got = data.get("deleted_ids") if isinstance(data, dict) else None
        if not isinstance(got, list) or not all(type(i) is int for i in got):
            return excerpt(json.dumps(data, default=str))
        deleted = set(got)
        return [e.body if e.body in deleted else None for e in entries]

    def outcomes(
        self, entries: list[Entry], values: list[Any], after_lost: bool, resolved: Resolution | None
    ) -> list[BulkItem[int]]:
        if after_lost:
            self.gone.update(e.body for e, value in zip(entries, values, strict=True) if value is None)
        return [BulkItem(index=e.index, status="succeeded", value=v) for e, v in zip(entries, values, strict=True)]


class Job(Generic[T]):
    """The state one bulk job shares between its chunks."""

    def __init__(self, transport: Transport, route: Route[T], items: Any, options: BulkOptions) -> None:
        self.transport = transport
        self.route = route
        self.options = options
        self.source = Source(items)
        self.budget = options.bisect_budget
        self.max_batch: int | None = None
        self.stop: KayseError | None = None
        self.sem = asyncio.Semaphore(options.concurrency)
        self.journal: Journal | None = None
        self.carry: Entry | tuple[Entry, str] | BulkItem[T] | None = None

    async def run(self) -> AsyncGenerator[BulkItem[T], None]:
        """Yield one outcome per input item, in input order."""
        try:
            if self.options.journal is not None:
                self.journal = Journal(self.options.journal, self.route.path)
            progress = Progress(self.transport, self.options.progress, self.source.total)
            chunks = window(self.next_chunk, self.send_chunk, self.options.concurrency)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    outcomes = chunk.outcomes()
                    progress.account(outcomes)
                    for item in outcomes:
                        yield item
        finally:
            with contextlib.suppress(Exception):
                await self.source.aclose()
            if self.journal is not None:
                self.journal.close()

    def classify(self, index: int, item: Any) -> Entry | tuple[Entry, str] | BulkItem[T]:
        """An entry to send, (an entry, the earlier batch) to recover, or an outcome known already."""
        route = self.route
        journal = self.journal
        try:
            body, creates = route.prepare(item, index)
        except ValidationError as exc:
            entry: Entry | ValidationError = exc
        else:
            if journal is None:
                return Entry(index, body, "", creates)
            entry = Entry(index, body, fingerprint(body), creates)
        known = journal.lookup(index) if journal is not None else None
        if known is None:
            return entry if isinstance(entry, Entry) else BulkItem(index=index, status="rejected", error=entry)
        kind, batch, journaled, value = known
        fresh = entry if isinstance(entry, Entry) else None  # None: invalid now, so changed
        keys = route.natural_key
        decision = resume(
            kind,
            fresh is None or fresh.fingerprint != journaled,
            creates=fresh is None or fresh.creates,
            keyed=bool(keys) and fresh is not None and all(fresh.body.get(k) is not None for k in keys),
        )
        where = f"{route.key}[{index}]"
        if decision == "reuse":
            try:
                return BulkItem(
                    index=index, status="succeeded", value=None if value is None else route.structure(value)
                )
            except KayseError as exc:
                return BulkItem(index=index, status="uncertain", error=exc)
        if decision == "refuse":
            then = "stored it" if kind == "done" else "sent it without learning whether it was stored"
            why = (
                f"changed since an earlier run of this job {then} (journal {self.options.journal!r}); it was not "
                "sent, so that it is not stored twice. Restore it, or send the change in a new job"
            )
            return BulkItem(index=index, status="rejected", error=ValidationError(where, why))
        assert fresh is not None
        if decision == "uncertain":
            why = (
                f"{where}: a previous run sent this item and never learned whether it was stored; it is not "
                "sent again, because a resend could create a duplicate. Check the server"
            )
            return BulkItem(index=index, status="uncertain", error=KayseError(why))
        return (fresh, batch) if decision == "recover" else fresh

    async def next_chunk(self) -> Chunk[T] | None:
        """The next run of input items: at most ``chunk_size`` to send, and 2 x ``chunk_size`` in all."""
        size = self.options.chunk_size
        next_now = self.source.next_now if self.source.is_sync else None
        chunk: Chunk[T] | None = None
        while True:
            if self.carry is not None:
                got, self.carry = self.carry, None
            else:
                read = next_now() if next_now is not None else await self.source.next()
                if read is None:
                    break
                got = self.classify(*read)
            if isinstance(got, BulkItem):
                chunk = chunk or Chunk(got.index)
                chunk.slots.append(got)
            else:
                entry, recovers = (got, None) if isinstance(got, Entry) else got
                chunk = chunk or Chunk(entry.index)
                # A recovered batch travels alone: the server stores a batch whole or not at all, so its
                # answer then tells about that batch only.
                if chunk.entries and chunk.recovers != recovers:
                    self.carry = got
                    break
                chunk.recovers = recovers
                chunk.slots.append(None)
                chunk.entries.append(entry)
            if len(chunk.entries) >= size or len(chunk.slots) >= 2 * size:
                break
        return chunk

    async def send_chunk(self, chunk: Chunk[T]) -> None:
        await self.send(chunk, chunk.entries, chunk.recovers)

    async def send(self, chunk: Chunk[T], entries: list[Entry], recovers: str | None) -> None:
        """Send ``entries`` (in parts of the size learned), and record every entry's outcome in ``chunk``."""
        limit = self.max_batch
        if limit is not None and len(entries) > limit and self.stop is None:
            await self._send_all(chunk, [entries[i : i + limit] for i in range(0, len(entries), limit)], recovers)
            return
        async with self.sem:
            if self.stop is not None:
                stopped = KayseError(f"not sent: the job stopped after an earlier error: {self.stop}")
                self.settle(chunk, entries, judge(stopped, self._batch(entries, recovers)), stopped)
                return
            if self.max_batch is not None and len(entries) > self.max_batch:
                answer: tuple[str | None, Any, bool] | None = None  # learned while waiting: split below
            else:
                answer = await self._request(entries, recovers)
        if answer is None:
            await self.send(chunk, entries, recovers)
            return
        batch, data, after_lost = answer
        if isinstance(data, KayseError):
            await self.failed(chunk, entries, recovers, batch, data)
            return
        values = self.route.values(data, entries)
        if isinstance(values, str):
            error = APIError(
                f"unexpected response to a batch of {len(entries)}: expected {self.route.expected}, got {values}",
                status=200,
                body=data,
                method="POST",
                url=self.route.path,
            )
            self.settle(chunk, entries, judge(error, self._batch(entries, recovers)), error)
            return
        if self.journal is not None and batch is not None:
            self.journal.done(batch, entries, values)
        slots, start = chunk.slots, chunk.start
        for item in self.route.outcomes(entries, values, after_lost, None if recovers is None else "stored_now"):
            slots[item.index - start] = item

    async def _send_all(self, chunk: Chunk[T], parts: list[list[Entry]], recovers: str | None) -> None:
        async with asyncio.TaskGroup() as group:
            for part in parts:
                group.create_task(self.send(chunk, part, recovers))

    async def _request(self, entries: list[Entry], recovers: str | None) -> tuple[str | None, Any, bool]:
        """(the journal's batch name, the answer's data or the error, whether an earlier answer was lost)."""
        creates = any(e.creates for e in entries)
        batch: str | None = None
        if self.journal is not None:
            batch = self.journal.new_batch()
            if creates:
                self.journal.sent(batch, entries, recovers)
        request = Request(method="POST", path=self.route.path, json=self.route.body(entries), idempotent=not creates)
        try:
            response = await self.transport.request(request, max_wait=self.options.max_wait)
        except KayseError as exc:
            return batch, exc, False
        return batch, response.data, response.after_lost_answer

    def _batch(self, entries: list[Entry], recovers: str | None) -> Batch:
        return Batch(
            self.route.op,
            len(entries),
            creates=any(e.creates for e in entries),
            recovering=recovers is not None,
            natural_key=self.route.natural_key,
        )

    async def failed(
        self, chunk: Chunk[T], entries: list[Entry], recovers: str | None, batch: str | None, exc: KayseError
    ) -> None:
        verdict = judge(exc, self._batch(entries, recovers))
        if verdict.void and batch is not None and self.journal is not None and any(e.creates for e in entries):
            self.journal.void(batch)
        if verdict.action == "split":
            assert isinstance(exc, APIError)
            self.max_batch = learn_size(exc, len(entries), self.max_batch)
            await self.send(chunk, entries, recovers)
        elif verdict.action == "bisect":
            await self._bisect(chunk, entries, exc)
        else:
            if verdict.status == "succeeded" and self.journal is not None and batch is not None:
                self.journal.done(batch, entries, [None] * len(entries))
            self.settle(chunk, entries, verdict, exc)

    def settle(self, chunk: Chunk[T], entries: list[Entry], verdict: Verdict, exc: KayseError) -> None:
        """Give every entry the verdict's status (and the error, named by input index, with its note)."""
        if verdict.stop and self.stop is None:
            self.stop = exc
        if verdict.status == "succeeded":
            for e in entries:
                chunk.set(BulkItem(index=e.index, status="succeeded", resolved=verdict.resolved))
            return
        error = annotated(for_input(exc, [e.index for e in entries]), verdict.note)
        for e in entries:
            chunk.set(BulkItem(index=e.index, status=verdict.status, error=error))

    async def _bisect(self, chunk: Chunk[T], entries: list[Entry], exc: KayseError) -> None:
        """Narrow a refused batch down to the item at fault, within the budget, and send the others again.

        An item the server names (``clients[7].case_ids``) is rejected alone and the rest go again
        (or, budget spent, are rejected with a ``BatchRefusedError``); else the batch is halved.
        """
        named = named_position(exc, len(entries))
        if named is not None:
            culprit = entries[named]
            chunk.set(
                BulkItem(index=culprit.index, status="rejected", error=for_input(exc, [e.index for e in entries]))
            )
            parts = [entries[:named] + entries[named + 1 :]]
            verdict = Verdict("rejected")
            blame: KayseError = BatchRefusedError(culprit.index, key=self.route.key)
        else:
            half = len(entries) // 2
            parts = [entries[:half], entries[half:]]
            verdict = Verdict("rejected", note="the bisection budget is spent" if self.options.bisect_budget else "")
            blame = exc
        granted: list[list[Entry]] = []
        for part in parts:
            if self.budget > 0:
                self.budget -= 1
                granted.append(part)
            else:
                self.settle(chunk, part, verdict, blame)
        await self._send_all(chunk, granted, None)
