"""The fault soak: nothing lost, nothing twice, under 10% faults and a tight rate limit.

An emulator injects faults into 10% of the requests (500, 503, dropped
connections, latency spikes, and "applied but the response was lost") and
allows 100 requests per second (the API's 500 an hour, scaled), while cases and clients are imported in
bulk, linked, updated (bulk with ids, single PUT, patch), sent SMS, and
partly deleted (bulk_delete and single deletes), half through ``AsyncKayse``
and half through the blocking ``Kayse`` from worker threads, at once, both
sharing one quota scheduler.

Every call's outcome as the SDK reported it is kept in a ledger; at the end
the emulator's store and outbox are compared with it:

- nothing stored twice (by external_source + external_source_id), no SMS
  sent twice;
- every item reported ``succeeded`` is stored (or deleted by a later
  reported delete), with a value the ledger allows;
- every item reported ``rejected`` or ``not_attempted`` is not stored: only
  an item reported ``uncertain`` may go either way;
- the server never answered 400: no create was sent twice, nothing invalid
  was sent.

The counts are printed as a table (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import attrs

from kayse_async import AsyncKayse, Kayse, errors
from kayse_async.models import BulkResult
from kayse_async.quota import MemoryQuota
from kayse_async.testing import ThreadedEmulator

from .conftest import SoakSize

KEY = "k-soak"
SOURCE = "soak"
LIMIT = 100
PERIOD = 1.0
FAULT_RATE = 0.10
CHUNK = 10
"""Items per bulk request: small, so that the bulk routes see many faults too."""
SINGLE_SHARE = 0.10
"""Share of the items also updated one by one (PUT), and again patched; and sent an SMS."""
DELETE_SHARE = 0.05
"""Share of the clients deleted one by one, and of the cases deleted one by one."""
BULK_DELETE_SHARE = 0.20
"""Share of the cases deleted through bulk_delete."""
IN_FLIGHT = 12
"""Single calls in flight at once per side."""

Outcome = Literal["succeeded", "rejected", "not_attempted", "uncertain"]
OUTCOMES: tuple[Outcome, ...] = ("succeeded", "rejected", "not_attempted", "uncertain")


def classify(exc: BaseException, *, repeatable: bool) -> Outcome:
    """What a failed call means for its effect, from the error alone (as a caller would decide).

    A call the SDK may repeat (GET, PUT, DELETE, bulk updates) may have been
    applied by any attempt, so every failure but a 4xx is uncertain. A
    create or an SMS is never repeated once it may have reached the server:
    a final 429 or 503, or a connection never made, means nothing was applied.
    """
    if isinstance(exc, errors.QuotaExhaustedError):
        return "not_attempted"
    if isinstance(exc, errors.ValidationError):
        return "rejected"
    if isinstance(exc, errors.TransportError):
        return "uncertain" if exc.may_have_been_sent or repeatable else "not_attempted"
    if isinstance(exc, errors.APIError):
        if exc.status in (429, 503):
            return "uncertain" if repeatable else "not_attempted"
        if 400 <= exc.status < 500:
            return "rejected"
        return "uncertain"
    raise exc


@attrs.define
class Item:
    """One input record and what the SDK said of every call made on it."""

    index: int
    ext_id: str
    side: str
    id: int | None = None
    create: Outcome | None = None
    allowed: set[str] = attrs.field(factory=set)
    """Values the tracked field (a client's city, a case's description) may hold at the end."""
    delete: Outcome | None = None
    delete_not_found: bool = False
    """The delete was answered 404 (see test_hidden_retries.py)."""
    case: Item | None = None

    def wrote(self, outcome: Outcome, value: str) -> None:
        """Record a write of ``value`` to the tracked field, by its reported outcome."""
        if outcome == "succeeded":
            self.allowed = {value}
        elif outcome == "uncertain":
            self.allowed.add(value)


@attrs.define
class Row:
    """Counts of one kind of call."""

    calls: int = 0
    outcomes: collections.Counter[str] = attrs.field(factory=collections.Counter[str])
    uncertain_applied: int = 0
    uncertain_not_applied: int = 0
    violations: list[str] = attrs.field(factory=list)
    hidden_resends: int = 0
    """Deletes reported 404 although this very call deleted the item (aiohttp's own resend)."""

    def add(self, outcome: Outcome) -> None:
        self.calls += 1
        self.outcomes[outcome] += 1


class Ledger:
    """Every call's reported outcome, by kind of call."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = collections.defaultdict(Row)
        self.sms: dict[str, tuple[Outcome, str]] = {}

    def add(self, kind: str, outcome: Outcome) -> None:
        self.rows[kind].add(outcome)


class Side:
    """One client (async, or blocking driven from worker threads) behind one awaitable face."""

    def __init__(self, name: str, target: AsyncKayse | Kayse) -> None:
        self.name = name
        self.target = target
        self.gate = asyncio.Semaphore(IN_FLIGHT)

    async def call(self, path: str, *args: Any, **kwargs: Any) -> Any:
        function: Any = self.target
        for part in path.split("."):
            function = getattr(function, part)
        if isinstance(self.target, Kayse):
            return await asyncio.to_thread(function, *args, **kwargs)
        return await function(*args, **kwargs)

    async def single(self, path: str, *args: Any, repeatable: bool, **kwargs: Any) -> tuple[Outcome, Any]:
        async with self.gate:
            try:
                return "succeeded", await self.call(path, *args, **kwargs)
            except errors.KayseError as exc:
                return classify(exc, repeatable=repeatable), exc


def case_body(item: Item, description: str) -> dict[str, Any]:
    return {
        "case_number": f"SOAK-{item.ext_id}",
        "external_source": SOURCE,
        "external_source_id": item.ext_id,
        "status": "active",
        "type": "civil",
        "name": f"Soak case {item.index}",
        "description": description,
    }


def client_body(item: Item, city: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_source": SOURCE,
        "external_source_id": item.ext_id,
        "first_name": f"Zoë-{item.index}",
        "last_name": "Soak",
        "email": f"c{item.index}@example.test",
        "date_of_birth": "1980-02-29",
        "city": city,
    }
    if item.case is not None and item.case.id is not None:
        body["case_ids"] = [item.case.id]
    return body


def _record_bulk(ledger: Ledger, kind: str, items: list[Item], result: BulkResult[Any]) -> list[Outcome]:
    assert len(result.items) == len(items), f"{kind}: {len(result.items)} outcomes for {len(items)} items"
    outcomes: list[Outcome] = [outcome.status for outcome in result.items]
    for outcome in outcomes:
        ledger.add(kind, outcome)
    return outcomes


async def _each(items: list[Item], work: Callable[[Item], Awaitable[None]]) -> None:
    await asyncio.gather(*(work(item) for item in items))


def _every(items: list[Item], share: float, offset: int = 0) -> list[Item]:
    step = max(1, round(1 / share))
    return [item for item in items if (item.index + offset) % step == 0]


async def run_side(side: Side, cases: list[Item], clients: list[Item], ledger: Ledger) -> None:
    """The whole workload of one side, phase by phase."""
    # Import cases, then clients linked to them.
    result = await side.call(
        "cases.bulk_upsert", [case_body(c, f"c{c.index}") for c in cases], chunk_size=CHUNK, raise_on_error=False
    )
    created = _record_bulk(ledger, "cases: bulk create", cases, result)
    for case, outcome, got in zip(cases, created, result.items, strict=True):
        case.create = outcome
        case.allowed = {f"c{case.index}"}
        if outcome == "succeeded":
            case.id = got.value.id
    for client in clients:
        client.case = cases[client.index % len(cases)]
    result = await side.call(
        "clients.bulk_upsert",
        [client_body(c, f"c{c.index}") for c in clients],
        chunk_size=CHUNK,
        raise_on_error=False,
    )
    created = _record_bulk(ledger, "clients: bulk create", clients, result)
    for client, outcome, got in zip(clients, created, result.items, strict=True):
        client.create = outcome
        client.allowed = {f"c{client.index}"}
        if outcome == "succeeded":
            client.id = got.value.id
    stored_clients = [c for c in clients if c.id is not None]
    stored_cases = [c for c in cases if c.id is not None]

    # SMS, each with a text of its own, to clients linked to a stored case.
    async def sms(client: Item) -> None:
        assert client.case is not None
        text = f"soak-sms-{side.name}-{client.index}"
        outcome, _ = await side.single(
            "cases.send_sms", case_id=client.case.id, client_id=client.id, message=text, repeatable=False
        )
        ledger.add("sms", outcome)
        ledger.sms[text] = (outcome, side.name)

    await _each([c for c in _every(stored_clients, SINGLE_SHARE) if c.case and c.case.id], sms)

    # Bulk updates carrying ids (full replacements that keep the links).
    updates = [{"id": c.id, **client_body(c, f"b{c.index}")} for c in stored_clients]
    result = await side.call("clients.bulk_upsert", updates, chunk_size=CHUNK, raise_on_error=False)
    for client, outcome in zip(
        stored_clients, _record_bulk(ledger, "clients: bulk update", stored_clients, result), strict=True
    ):
        client.wrote(outcome, f"b{client.index}")
    updates = [{"id": c.id, **case_body(c, f"b{c.index}")} for c in stored_cases]
    result = await side.call("cases.bulk_upsert", updates, chunk_size=CHUNK, raise_on_error=False)
    for case, outcome in zip(
        stored_cases, _record_bulk(ledger, "cases: bulk update", stored_cases, result), strict=True
    ):
        case.wrote(outcome, f"b{case.index}")

    # Single PUTs, then patches (GET + PUT).
    async def put_client(client: Item) -> None:
        outcome, _ = await side.single(
            "clients.update", client.id, repeatable=True, **client_body(client, f"u{client.index}")
        )
        ledger.add("clients: update (PUT)", outcome)
        client.wrote(outcome, f"u{client.index}")

    async def patch_client(client: Item) -> None:
        outcome, _ = await side.single("clients.patch", client.id, repeatable=True, city=f"p{client.index}")
        ledger.add("clients: patch", outcome)
        client.wrote(outcome, f"p{client.index}")

    async def put_case(case: Item) -> None:
        outcome, _ = await side.single("cases.update", case.id, repeatable=True, **case_body(case, f"u{case.index}"))
        ledger.add("cases: update (PUT)", outcome)
        case.wrote(outcome, f"u{case.index}")

    async def patch_case(case: Item) -> None:
        outcome, _ = await side.single("cases.patch", case.id, repeatable=True, description=f"p{case.index}")
        ledger.add("cases: patch", outcome)
        case.wrote(outcome, f"p{case.index}")

    await _each(_every(stored_clients, SINGLE_SHARE, 1), put_client)
    await _each(_every(stored_clients, SINGLE_SHARE, 2), patch_client)
    await _each(_every(stored_cases, SINGLE_SHARE, 1), put_case)
    await _each(_every(stored_cases, SINGLE_SHARE, 2), patch_case)

    # Deletes: a share of the cases in bulk, others and some clients one by one.
    doomed = _every(stored_cases, BULK_DELETE_SHARE, 3)
    if doomed:
        try:
            await side.call("cases.bulk_delete", [c.id for c in doomed])
        except errors.BulkError as exc:
            # One outcome per unique id, in the order given: the ids are unique, so index maps back.
            for got in exc.result.items:
                item = doomed[got.index]
                item.delete = got.status
                ledger.add("cases: bulk_delete", got.status)
        else:
            for case in doomed:
                case.delete = "succeeded"
                ledger.add("cases: bulk_delete", "succeeded")

    async def delete(kind: str, path: str, item: Item) -> None:
        outcome, error = await side.single(path, item.id, repeatable=True)
        item.delete_not_found = isinstance(error, errors.NotFoundError)
        ledger.add(kind, outcome)
        item.delete = outcome

    spared_cases = [c for c in stored_cases if c.delete is None]
    await _each(_every(spared_cases, DELETE_SHARE, 4), lambda c: delete("cases: delete", "cases.delete", c))
    await _each(_every(stored_clients, DELETE_SHARE, 4), lambda c: delete("clients: delete", "clients.delete", c))


def verify(kind: str, items: list[Item], stored: list[dict[str, Any]], field: str, ledger: Ledger) -> None:
    """Compare one resource's store with the ledger; record counts and violations in the ledger's rows."""
    ours = [r for r in stored if r["external_source"] == SOURCE]
    keys = collections.Counter(r["external_source_id"] for r in ours)
    row = ledger.rows[f"{kind}: bulk create"]
    for key, count in keys.items():
        if count > 1:
            row.violations.append(f"duplicate {key} x{count}")
    by_key = {r["external_source_id"]: r for r in ours}
    known = {item.ext_id for item in items}
    row.violations += [f"stored but never given: {key}" for key in keys if key not in known]
    values = ledger.rows[f"{kind}: values checked"]
    deletes = ledger.rows[f"{kind}: deletes checked"]
    for item in items:
        record = by_key.get(item.ext_id)
        if item.create in ("rejected", "not_attempted") and record is not None:
            row.violations.append(f"{item.ext_id}: reported {item.create}, but stored")
        if item.create == "uncertain":
            if record is None:
                row.uncertain_not_applied += 1
            else:
                row.uncertain_applied += 1
        if item.create != "succeeded":
            continue
        if item.delete is not None:
            deletes.add(item.delete)
            if item.delete == "succeeded" and record is not None:
                deletes.violations.append(f"{item.ext_id}: reported deleted, still stored")
            if item.delete in ("rejected", "not_attempted") and record is None:
                if item.delete_not_found:
                    # Known, pinned by the strict xfails of test_hidden_retries.py: once the transport
                    # turns aiohttp's resend off, this count stays 0 (the 404 becomes a success).
                    deletes.hidden_resends += 1
                else:
                    deletes.violations.append(f"{item.ext_id}: delete reported {item.delete}, but gone")
            if item.delete == "uncertain":
                if record is None:
                    deletes.uncertain_applied += 1
                else:
                    deletes.uncertain_not_applied += 1
            continue
        if record is None:
            row.violations.append(f"{item.ext_id}: reported stored, missing (silent loss)")
            continue
        if record["id"] != item.id:
            row.violations.append(f"{item.ext_id}: stored under id {record['id']}, reported {item.id}")
        values.add("succeeded")
        if record[field] not in item.allowed:
            values.violations.append(f"{item.ext_id}: {field}={record[field]!r}, allowed {sorted(item.allowed)}")


def verify_sms(ledger: Ledger, outbox: list[dict[str, Any]]) -> None:
    """Every SMS at most once; a reported success is in the outbox, a reported failure is not."""
    row = ledger.rows["sms"]
    texts = collections.Counter(entry["message"] for entry in outbox if entry["kind"] == "sms")
    row.violations += [f"SMS {text!r} sent {n} times" for text, n in texts.items() if n > 1]
    row.violations += [f"SMS {text!r} never asked for" for text in texts if text not in ledger.sms]
    for text, (outcome, _) in ledger.sms.items():
        sent = texts.get(text, 0)
        if outcome == "succeeded" and sent != 1:
            row.violations.append(f"{text}: reported sent, in the outbox {sent} times")
        if outcome in ("rejected", "not_attempted") and sent:
            row.violations.append(f"{text}: reported {outcome}, but sent")
        if outcome == "uncertain":
            if sent:
                row.uncertain_applied += 1
            else:
                row.uncertain_not_applied += 1


def table(ledger: Ledger) -> str:
    """The counts as a fixed-width table."""
    head = ("calls / items", "total", *OUTCOMES, "unc.: applied", "unc.: not", "violations", "404 after hidden resend")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sorted(ledger.rows):
        row = ledger.rows[name]
        cells = [name, f"{row.calls:,}", *(f"{row.outcomes[o]:,}" for o in OUTCOMES)]
        cells += [f"{row.uncertain_applied:,}", f"{row.uncertain_not_applied:,}", str(len(row.violations))]
        cells.append(str(row.hidden_resends))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def test_fault_soak(soak_size: SoakSize) -> None:
    """N clients and M cases through 10% faults and 100 req/s, async and sync at once: nothing lost, nothing twice."""
    started = time.monotonic()
    waits: list[float] = []
    quota = MemoryQuota(limit=LIMIT, period=PERIOD, on_wait=lambda wait: waits.append(wait.seconds or 0.0))
    cases = [Item(i, f"case-{i}", "async" if i % 2 == 0 else "sync") for i in range(soak_size.cases)]
    clients = [Item(i, f"client-{i}", "async" if i % 2 == 0 else "sync") for i in range(soak_size.clients)]
    ledger = Ledger()
    with ThreadedEmulator(
        KEY,
        limit=LIMIT,
        period=PERIOD,
        window="fixed",
        fault_rate=FAULT_RATE,
        fault_kinds=("500", "503", "drop", "latency", "lost"),
        latency_ms=20,
        seed=soak_size.seed,
    ) as emu:
        options: dict[str, Any] = {"base_url": emu.url, "calls_base_url": emu.url, "quota": quota, "timeout": 10.0}

        async def main() -> None:
            async with AsyncKayse(KEY, **options) as async_kayse:
                with Kayse(KEY, **options) as sync_kayse:
                    sides = {"async": Side("async", async_kayse), "sync": Side("sync", sync_kayse)}
                    await asyncio.gather(
                        *(
                            run_side(
                                side,
                                [c for c in cases if c.side == name],
                                [c for c in clients if c.side == name],
                                ledger,
                            )
                            for name, side in sides.items()
                        )
                    )

        await main()
        data = emu.snapshot()
        stats = emu.stats()
    elapsed = time.monotonic() - started

    verify("cases", cases, data["cases"], "description", ledger)
    verify("clients", clients, data["clients"], "city", ledger)
    verify_sms(ledger, data["outbox"])
    print(
        f"\nfault soak: {soak_size.clients:,} clients, {soak_size.cases:,} cases, seed {soak_size.seed}, "
        f"{elapsed:.1f} s; server: {stats['requests']:,} requests, faults {stats['faults']}, "
        f"429s {stats['rate_limited']:,}, statuses {stats['by_status']}; quota: {len(waits):,} waits, "
        f"{sum(waits):.1f} s in all\n{table(ledger)}"
    )
    problems = [f"{name}: {v}" for name, row in sorted(ledger.rows.items()) for v in row.violations]
    assert problems == [], f"{len(problems)} violations, first: {problems[:10]}"
    assert stats["by_status"].get("400", 0) == 0, "the server refused a request: a create sent twice, or bad input"
    assert sum(stats["faults"].values()) > 0, "no fault was injected: the soak proved nothing"
    for name in ("clients: bulk create", "cases: bulk create"):
        assert ledger.rows[name].calls == (soak_size.clients if name.startswith("clients") else soak_size.cases)
    assert ledger.rows["sms"].calls > 0
    assert waits, "the quota scheduler never had to wait: the rate limit was not tight"
