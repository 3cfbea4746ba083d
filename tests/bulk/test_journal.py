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


async def test_a_changed_input_is_refused(emu: Emulator, make_client: MakeClient, tmp_path: Path) -> None:
    """An input whose items differ from the journaled ones is refused, naming the item, before any request."""
    journal = tmp_path / "job.journal"
    items = [client_item(i) for i in range(20)]
    async with make_client(emu) as kayse:
        await kayse.clients.bulk_upsert(items, journal=journal)
        items[3]["first_name"] = "Changed"
        before = emu.stats()["requests"]
        with pytest.raises(errors.ConfigurationError, match="input item 3 differs"):
            await kayse.clients.bulk_upsert(items, journal=journal)
    assert emu.stats()["requests"] == before


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


async def test_lost_answers_are_resolved_by_a_rerun_without_duplicates(
    emu: Emulator, make_client: MakeClient, tmp_path: Path
) -> None:
    """Batches stored but unanswered are uncertain; a rerun resends them as they were: none twice, none missing."""
    journal = tmp_path / "job.journal"
    emu.set_faults(0.4, ["lost", "drop"], seed=3)
    async with make_client(emu, max_retries=0) as kayse:
        first = await kayse.clients.bulk_upsert(client_items(400), chunk_size=20, journal=journal, raise_on_error=False)
        statuses = Counter(item.status for item in first.items)
        assert statuses["uncertain"] > 0
        assert statuses["succeeded"] > 0
        emu.set_faults(0.0)
        second = await kayse.clients.bulk_upsert(
            client_items(400), chunk_size=20, journal=journal, raise_on_error=False
        )
    assert_each_stored_once(emu, 400)
    again = Counter(item.status for item in second.items)
    assert set(again) <= {"succeeded", "uncertain"}
    # Those the first run did store come back uncertain ("most likely stored then"), the others are stored now.
    for item in second.items:
        if item.status == "uncertain":
            assert "most likely stored then" in str(item.error), item.error
            assert first.items[item.index].status == "uncertain"
    third = None
    async with make_client(emu) as kayse:
        third = await kayse.clients.bulk_upsert(client_items(400), chunk_size=20, journal=journal, raise_on_error=False)
    assert [i.index for i in third.items if i.status == "succeeded"] == [
        i.index for i in second.items if i.status == "succeeded"
    ]
    assert_each_stored_once(emu, 400)


async def test_cancelling_a_job_cancels_its_requests_and_keeps_the_journal_consistent(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """A cancelled job leaves no task behind, journals only what completed, and a rerun finishes it exactly."""
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
        emu.configure(latency_ms=0)
        result = await kayse.clients.bulk_upsert(
            client_items(500), chunk_size=100, journal=journal, raise_on_error=False
        )
        assert {item.status for item in result.items[200:]} == {"succeeded"}
        assert set(Counter(item.status for item in result.items[:200])) <= {"succeeded", "uncertain"}
        assert_each_stored_once(emu, 500)


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
        assert set(Counter(item.status for item in result.items)) <= {"succeeded", "uncertain"}
        # Everything journaled before the kill came back from the journal.
        assert result.items[0].status == "succeeded"
        assert all(item.status == "succeeded" for item in result.items[:done])


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
