"""Resume with a journal: nothing done twice, nothing lost, through crashes, cancellations and lost answers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kayse_async import errors
from kayse_async.models import BulkProgress
from kayse_async.testing import Emulator

from .conftest import MakeClient, client_item, client_items, stored_external_ids

ROOT = Path(__file__).resolve().parents[2]


def records(journal: Path) -> list[dict[str, Any]]:
    """The journal's records."""
    return [json.loads(line) for line in journal.read_bytes().splitlines()]


def assert_each_stored_once(emu: Emulator, count: int) -> None:
    stored = Counter(stored_external_ids(emu))
    assert [key for key, n in stored.items() if n > 1] == []
    assert set(stored) == {f"ext-{i}" for i in range(count)}


async def test_a_rerun_reproduces_journaled_items_without_a_request(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """A finished job run again with its journal sends nothing and returns the same items and ids."""
    journal = tmp_path / "job.journal"
    async with make_client(emu) as kayse:
        first = await kayse.clients.bulk_upsert(client_items(1200), journal=str(journal))
        again = await kayse.clients.bulk_upsert(client_items(1200), journal=journal)
    assert again.requests == 0
    assert [c.id for c in again.succeeded] == [c.id for c in first.succeeded]
    assert [c.external_source_id for c in again.succeeded] == [f"ext-{i}" for i in range(1200)]
    assert len(emu.store.clients) == 1200
    kinds = Counter(r["type"] for r in records(journal))
    assert kinds == {"job": 1, "sent": 3, "done": 3}


async def test_a_longer_input_resumes_after_the_journaled_part(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """Items past the journaled ones are sent; the journaled ones are not."""
    journal = tmp_path / "job.journal"
    async with make_client(emu) as kayse:
        await kayse.clients.bulk_upsert(client_items(300), chunk_size=100, journal=journal)
        result = await kayse.clients.bulk_upsert(client_items(450), chunk_size=100, journal=journal)
    assert result.ok
    assert result.requests == 2
    assert_each_stored_once(emu, 450)


async def test_a_stored_row_that_changed_is_refused_alone(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """Rows stored by an earlier run and changed since are refused by input index; the rest resumes, no request."""
    journal = tmp_path / "job.journal"
    items = [client_item(i) for i in range(20)]
    async with make_client(emu) as kayse:
        first = await kayse.clients.bulk_upsert(items, journal=journal)
        items[3]["first_name"] = "Changed"
        items[17]["email"] = "new@example.com"
        before = emu.stats()["requests"]
        again = await kayse.clients.bulk_upsert(items, journal=journal, raise_on_error=False)
    assert emu.stats()["requests"] == before
    assert [item.index for item in again.failures] == [3, 17]
    for item in again.failures:
        assert item.status == "rejected"
        assert isinstance(item.error, errors.ValidationError)
        assert item.error.field == f"clients[{item.index}]"
        assert "changed since an earlier run of this job stored it" in str(item.error)
    assert [c.id for c in again.succeeded] == [c.id for i, c in enumerate(first.succeeded) if i not in (3, 17)]
    assert len(emu.store.clients) == 20


async def test_a_row_refused_locally_then_fixed_is_sent_on_the_rerun(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """Fix and rerun: a row refused by the local checks, fixed, is sent; the journaled rows cost nothing."""
    journal = tmp_path / "job.journal"
    items = [client_item(i) for i in range(30)]
    items[7]["date_of_birth"] = "1990-02-31"
    async with make_client(emu) as kayse:
        first = await kayse.clients.bulk_upsert(items, chunk_size=10, journal=journal, raise_on_error=False)
        assert [item.index for item in first.failures] == [7]
        items[7]["date_of_birth"] = "1990-02-28"
        again = await kayse.clients.bulk_upsert(items, chunk_size=10, journal=journal)
    assert again.ok
    assert again.requests == 1
    assert again.items[7].value is not None
    assert again.items[7].value.date_of_birth is not None
    assert_each_stored_once(emu, 30)


async def test_rows_refused_by_the_server_then_fixed_are_sent_on_the_rerun(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """The culprit of a refused batch and its unsent mates are not journaled as stored: the fixed rerun sends them."""
    journal = tmp_path / "job.journal"
    items = [client_item(i) for i in range(30)]
    items[12]["case_ids"] = [99_999]
    async with make_client(emu) as kayse:
        first = await kayse.clients.bulk_upsert(items, chunk_size=10, journal=journal, raise_on_error=False)
        assert [item.index for item in first.failures] == list(range(10, 20))
        del items[12]["case_ids"]
        again = await kayse.clients.bulk_upsert(items, chunk_size=10, journal=journal)
    assert again.ok
    assert again.requests == 1
    assert_each_stored_once(emu, 30)


async def test_a_journal_of_another_route_is_refused(emu: Emulator, make_client: MakeClient, tmp_path: Path) -> None:
    """A clients journal cannot drive a cases job."""
    journal = tmp_path / "job.journal"
    async with make_client(emu) as kayse:
        await kayse.clients.bulk_upsert(client_items(2), journal=journal)
        with pytest.raises(errors.ConfigurationError, match="another job"):
            await kayse.cases.bulk_upsert([], journal=journal)


async def test_a_torn_last_line_is_dropped(emu: Emulator, make_client: MakeClient, tmp_path: Path) -> None:
    """A record half written when the process died never counted: it is cut off and the job resumes."""
    journal = tmp_path / "job.journal"
    async with make_client(emu) as kayse:
        await kayse.clients.bulk_upsert(client_items(100), chunk_size=50, journal=journal)
        with journal.open("ab") as f:
            f.write(b'{"type":"done","b":"x-1","idx":[[100,1')
        result = await kayse.clients.bulk_upsert(client_items(150), chunk_size=50, journal=journal)
    assert result.ok
    assert result.requests == 1
    assert all(line.endswith(b"}") for line in journal.read_bytes().splitlines())
    assert_each_stored_once(emu, 150)


async def test_a_damaged_journal_is_refused(emu: Emulator, make_client: MakeClient, tmp_path: Path) -> None:
    """A bad line in the middle of the journal is not guessed around."""
    journal = tmp_path / "job.journal"
    async with make_client(emu) as kayse:
        await kayse.clients.bulk_upsert(client_items(100), chunk_size=50, journal=journal)
        lines = journal.read_bytes().splitlines(keepends=True)
        journal.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]))
        with pytest.raises(errors.ConfigurationError, match="damaged"):
            await kayse.clients.bulk_upsert(client_items(100), chunk_size=50, journal=journal)


async def test_a_journal_in_use_is_refused(emu: Emulator, make_client: MakeClient, tmp_path: Path) -> None:
    """Two jobs cannot write one journal at once."""
    journal = tmp_path / "job.journal"
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[dict[str, Any]]:
        yield client_item(0)
        await gate.wait()

    async with make_client(emu) as kayse:
        first = asyncio.create_task(kayse.clients.bulk_upsert(slow(), journal=journal))
        await asyncio.sleep(0.05)
        with pytest.raises(errors.ConfigurationError, match="in use"):
            await kayse.clients.bulk_upsert(client_items(1), journal=journal)
        gate.set()
        result = await first
    assert result.ok


async def test_uncertain_rows_resolve_themselves_on_a_rerun(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """Lost answers (stored) and dropped requests (not stored): the rerun resolves every one, none stored twice."""
    journal = tmp_path / "job.journal"
    emu.set_faults(0.4, ["lost", "drop"], seed=3)
    async with make_client(emu, max_retries=0) as kayse:
        first = await kayse.clients.bulk_upsert(client_items(400), chunk_size=20, journal=journal, raise_on_error=False)
    faults = emu.stats()["faults"]
    assert faults["lost"] > 0
    assert faults["drop"] > 0
    uncertain = [item.index for item in first.items if item.status == "uncertain"]
    assert {item.status for item in first.items} == {"succeeded", "uncertain"}
    assert len(uncertain) == 20 * (faults["lost"] + faults["drop"])
    stored_by_first = {ext for ext in stored_external_ids(emu)}
    emu.set_faults(0.0)
    seen: list[BulkProgress] = []
    async with make_client(emu) as kayse:
        second = await kayse.clients.bulk_upsert(
            client_items(400), chunk_size=20, journal=journal, progress=seen.append
        )
    assert second.ok
    assert_each_stored_once(emu, 400)
    before = [item.index for item in second.items if item.resolved == "stored_before"]
    now = [item.index for item in second.items if item.resolved == "stored_now"]
    assert sorted(before + now) == uncertain
    assert len(before) == 20 * faults["lost"]
    assert len(now) == 20 * faults["drop"]
    assert {f"ext-{i}" for i in before} <= stored_by_first
    assert not {f"ext-{i}" for i in now} & stored_by_first
    assert all(second.items[i].value is None for i in before)
    assert all(second.items[i].value is not None for i in now)
    assert (second.resolved_stored_before, second.resolved_stored_now) == (len(before), len(now))
    assert (seen[-1].resolved_stored_before, seen[-1].resolved_stored_now) == (len(before), len(now))
    # One request per batch resolved; the rest came from the journal.
    assert second.requests == faults["lost"] + faults["drop"]
    async with make_client(emu) as kayse:
        third = await kayse.clients.bulk_upsert(client_items(400), chunk_size=20, journal=journal)
    assert third.requests == 0
    assert (third.resolved_stored_before, third.resolved_stored_now) == (0, 0)
    assert third.ok


async def test_a_cancelled_job_resumes_with_nothing_lost_or_stored_twice(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """A job cancelled mid-flight leaves no task behind; the rerun stores every row once and resolves all."""
    journal = tmp_path / "job.journal"
    reached = asyncio.Event()

    async def source() -> AsyncIterator[dict[str, Any]]:
        for item in client_items(500):
            if item["external_source_id"] == "ext-260":
                reached.set()
            yield item

    async with Emulator(api_key="k", limit=0, latency_ms=300) as emu, make_client(emu) as kayse:
        job = asyncio.create_task(kayse.clients.bulk_upsert(source(), chunk_size=100, concurrency=4, journal=journal))
        await reached.wait()
        await asyncio.sleep(0.05)  # the first chunks' requests are on the wire (300 ms each)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        leftover = [t for t in asyncio.all_tasks() if "send_chunk" in repr(t.get_coro())]
        assert leftover == []
        written = records(journal)
        # Every batch was cut off in flight: each is "sent" without an outcome, none claims "done".
        kinds = [r["type"] for r in written if r["type"] != "job"]
        assert kinds
        assert set(kinds) == {"sent"}
        await asyncio.sleep(0.5)  # let the server finish what it was doing
        stored_at_cancel = len(emu.store.clients)
        emu.configure(latency_ms=0)
        result = await kayse.clients.bulk_upsert(client_items(500), chunk_size=100, journal=journal)
        assert result.ok
        assert_each_stored_once(emu, 500)
        sent = sum(end - start for r in written if r["type"] == "sent" for start, end in r["idx"])
        assert result.resolved_stored_before == stored_at_cancel
        assert result.resolved_stored_before + result.resolved_stored_now == sent


async def test_a_killed_job_resumed_with_its_journal_stores_each_item_once(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """SIGKILL a job mid-import in a child process, rerun it with the journal: no duplicates, none missing."""
    journal = tmp_path / "job.journal"
    count = 3000
    async with Emulator(api_key="k", limit=0, latency_ms=20) as emu:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.bulk._crash_job",
            emu.url,
            str(journal),
            str(count),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
        assert child.stdout is not None
        done = 0
        while done < 1000:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line, "the child ended before it was killed"
            done = int(line)
        child.send_signal(signal.SIGKILL)
        await child.wait()
        assert child.returncode == -signal.SIGKILL
        stored_at_kill = len(emu.store.clients)
        assert 1000 <= stored_at_kill < count
        emu.configure(latency_ms=0)
        async with make_client(emu) as kayse:
            result = await kayse.clients.bulk_upsert(
                client_items(count), chunk_size=50, journal=journal, raise_on_error=False
            )
        assert_each_stored_once(emu, count)
        assert result.ok
        # Everything journaled before the kill came back from the journal, with its object.
        assert all(item.value is not None for item in result.items[:done])


async def test_case_list_creates_without_an_outcome_are_never_sent_again(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """Case lists have no unique key: a rerun reports unanswered creates uncertain and sends nothing for them."""
    journal = tmp_path / "lists.journal"
    emu.set_faults(1.0, ["lost"])
    async with make_client(emu) as kayse:
        with pytest.raises(errors.BulkError) as first:
            await kayse.case_lists.bulk_upsert([{"name": f"L{i}"} for i in range(4)], chunk_size=2, journal=journal)
        assert {item.status for item in first.value.result.items} == {"uncertain"}
        emu.set_faults(0.0)
        before = emu.stats()["requests"]
        with pytest.raises(errors.BulkError) as second:
            await kayse.case_lists.bulk_upsert([{"name": f"L{i}"} for i in range(4)], chunk_size=2, journal=journal)
    assert emu.stats()["requests"] == before
    assert {item.status for item in second.value.result.items} == {"uncertain"}
    assert "not sent again" in str(second.value.result.items[0].error)
    assert len(emu.store.case_lists) == 4


async def test_updates_without_an_outcome_are_simply_sent_again(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """Items with an id in a batch left without an outcome are resent on the rerun: updates are harmless to repeat."""
    journal = tmp_path / "mixed.journal"
    async with make_client(emu) as kayse:
        existing = (await kayse.clients.bulk_upsert(client_items(2))).succeeded
        mixed: list[dict[str, Any]] = [
            {"id": existing[0].id, "external_source": "crm", "external_source_id": "ext-0", "first_name": "New"},
            client_item(5),
        ]
        emu.set_faults(1.0, ["drop"])
        async with make_client(emu, max_retries=0) as failing:
            first = await failing.clients.bulk_upsert(mixed, journal=journal, raise_on_error=False)
        assert [item.status for item in first.items] == ["uncertain", "uncertain"]
        emu.set_faults(0.0)
        second = await kayse.clients.bulk_upsert(mixed, journal=journal, raise_on_error=False)
    assert [item.status for item in second.items] == ["succeeded", "succeeded"]
    assert emu.store.clients[existing[0].id]["first_name"] == "New"
    assert sorted(stored_external_ids(emu)) == ["ext-0", "ext-1", "ext-5"]


async def test_an_update_stored_on_a_rerun_is_then_read_from_the_journal(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """An update resent after a lost answer is journaled done; the next rerun takes it from there, no request."""
    journal = tmp_path / "lists.journal"
    async with make_client(emu) as kayse:
        (existing,) = await kayse.case_lists.bulk_upsert([{"name": "old"}])
        batch = [{"id": existing.id, "name": "renamed"}, {"name": "new"}]
        emu.set_faults(1.0, ["lost"])
        with pytest.raises(errors.BulkError):
            await kayse.case_lists.bulk_upsert(batch, journal=journal)
        emu.set_faults(0.0)
        runs = []
        for _ in range(2):
            before = emu.stats()["requests"]
            with pytest.raises(errors.BulkError) as caught:
                await kayse.case_lists.bulk_upsert(batch, journal=journal)
            runs.append((emu.stats()["requests"] - before, [item.status for item in caught.value.result.items]))
    assert runs == [(1, ["succeeded", "uncertain"]), (0, ["succeeded", "uncertain"])]
    assert len(emu.store.case_lists) == 2
