"""Bulk upserts end to end through the emulator: outcomes per item, order, splitting, bisection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kayse_async import errors
from kayse_async.models import BulkItem, BulkProgress, Client
from kayse_async.testing import Emulator

from .conftest import MakeClient, client_item, client_items, stored_external_ids


async def test_ten_thousand_from_a_generator_are_stored_once_in_order(emu: Emulator, make_client: MakeClient) -> None:
    """10,000 clients from a generator: one outcome each, in input order, each stored exactly once."""
    async with make_client(emu) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(10_000))
    assert result.ok
    assert [item.index for item in result.items] == list(range(10_000))
    assert [c.external_source_id for c in result.succeeded] == [f"ext-{i}" for i in range(10_000)]
    assert len({c.id for c in result.succeeded}) == 10_000
    assert result.requests == 20
    stored = stored_external_ids(emu)
    assert len(stored) == 10_000
    assert set(stored) == {f"ext-{i}" for i in range(10_000)}


async def test_ten_thousand_from_an_async_generator_stream_in_order(emu: Emulator, make_client: MakeClient) -> None:
    """bulk_upsert_iter over an async generator yields every item in input order as chunks complete."""

    async def source() -> AsyncIterator[dict[str, Any]]:
        for item in client_items(10_000):
            yield item

    async with make_client(emu) as kayse:
        seen = [item async for item in kayse.clients.bulk_upsert_iter(source(), chunk_size=250, concurrency=8)]
    assert [item.index for item in seen] == list(range(10_000))
    assert all(item.status == "succeeded" for item in seen)
    values = [item.value for item in seen]
    assert [v.external_source_id for v in values if v is not None] == [f"ext-{i}" for i in range(10_000)]
    assert sorted(stored_external_ids(emu)) == sorted(f"ext-{i}" for i in range(10_000))


async def test_invalid_items_are_rejected_locally_and_the_rest_go(emu: Emulator, make_client: MakeClient) -> None:
    """Items that fail local checks are rejected naming their input index; no request is spent on them."""
    items = [client_item(i) for i in range(1000)]
    items[3] = {"external_source": "crm", "external_source_id": "x3", "last_name": "No first name"}
    items[777] = client_item(777, date_of_birth="1990-02-31")
    async with make_client(emu) as kayse:
        result = await kayse.clients.bulk_upsert(items, raise_on_error=False)
    assert not result.ok
    failures = {item.index: item for item in result.failures}
    assert set(failures) == {3, 777}
    assert all(item.status == "rejected" for item in failures.values())
    assert isinstance(failures[3].error, errors.ValidationError)
    assert failures[3].error.field == "clients[3].first_name"
    assert isinstance(failures[777].error, errors.ValidationError)
    assert failures[777].error.field == "clients[777].date_of_birth"
    # 998 valid items fill two chunks of 500: the bad ones cost nothing.
    assert result.requests == 2
    assert len(emu.store.clients) == 998
    assert "x3" not in stored_external_ids(emu)


async def test_a_server_rejection_blames_the_named_item_and_spares_its_mates(
    emu: Emulator, make_client: MakeClient
) -> None:
    """Without bisection the culprit is rejected by input index; its mates say they were not stored because of it."""
    async with make_client(emu) as kayse:
        await kayse.clients.create(**client_item(15))
        with pytest.raises(errors.BulkError) as caught:
            await kayse.clients.bulk_upsert(client_items(30), chunk_size=10, concurrency=1)
    result = caught.value.result
    assert [item.index for item in result.failures] == list(range(10, 20))
    culprit = result.items[15]
    assert culprit.status == "rejected"
    assert isinstance(culprit.error, errors.BadRequestError)
    assert isinstance(culprit.error.body, dict)
    assert culprit.error.body["field"] == "clients[15].external_source_id"
    assert "clients[15].external_source_id" in str(culprit.error)
    for mate in result.items[10:15] + result.items[16:20]:
        assert mate.status == "rejected"
        assert isinstance(mate.error, errors.BatchRefusedError)
        assert mate.error.culprit == 15
        assert not hasattr(mate.error, "field")
        assert "external_source_id" not in str(mate.error)
        assert "because of item 15" in str(mate.error)
    assert [item.status for item in result.items[:10] + result.items[20:]] == ["succeeded"] * 20
    assert result.requests == 3
    assert len(emu.store.clients) == 21


async def test_a_bad_row_among_100_is_blamed_and_the_good_rows_stored(emu: Emulator, make_client: MakeClient) -> None:
    """A row linking a missing case: with a budget its 99 mates are stored, and its error names its input index."""
    items = [client_item(i) for i in range(100)]
    items[42]["case_ids"] = [99_999]
    async with make_client(emu) as kayse:
        result = await kayse.clients.bulk_upsert(items, chunk_size=50, raise_on_error=False, bisect_budget=4)
    assert [item.index for item in result.failures] == [42]
    error = result.items[42].error
    assert isinstance(error, errors.BadRequestError)
    assert isinstance(error.body, dict)
    assert error.body["field"] == "clients[42].case_ids[0]"
    assert "clients[42].case_ids[0]" in str(error)
    assert result.requests == 3
    assert len(emu.store.clients) == 99


async def test_a_bad_row_in_a_later_chunk_is_named_by_its_input_index(emu: Emulator, make_client: MakeClient) -> None:
    """The server names position 7 of the second chunk; the item is reported as clients[57], its mates blame 57."""
    items = [client_item(i) for i in range(100)]
    items[57]["case_ids"] = [99_999]
    async with make_client(emu) as kayse:
        result = await kayse.clients.bulk_upsert(items, chunk_size=50, raise_on_error=False)
    error = result.items[57].error
    assert isinstance(error, errors.BadRequestError)
    assert isinstance(error.body, dict)
    assert error.body["field"] == "clients[57].case_ids[0]"
    assert "clients[7]" not in str(error)
    mates = [item for item in result.failures if item.index != 57]
    assert [item.index for item in mates] == [i for i in range(50, 100) if i != 57]
    assert {type(item.error) for item in mates} == {errors.BatchRefusedError}
    assert {item.error.culprit for item in mates if isinstance(item.error, errors.BatchRefusedError)} == {57}
    assert len(emu.store.clients) == 50


async def test_bisection_isolates_the_bad_items_and_stores_the_rest(emu: Emulator, make_client: MakeClient) -> None:
    """With a bisection budget, two server-side bad items among 100 are the only ones rejected."""
    items = [client_item(i) for i in range(100)]
    items[13]["case_ids"] = [987_654]
    items[77]["case_ids"] = [987_655]
    async with make_client(emu) as kayse:
        result = await kayse.clients.bulk_upsert(items, raise_on_error=False, bisect_budget=10)
    assert [item.index for item in result.failures] == [13, 77]
    assert all(isinstance(item.error, errors.BadRequestError) for item in result.failures)
    assert "clients[13].case_ids" in str(result.failures[0].error)
    assert "clients[77].case_ids" in str(result.failures[1].error)
    assert len(emu.store.clients) == 98
    assert 1 < result.requests <= 1 + 10


async def test_a_spent_bisection_budget_leaves_the_mates_blaming_the_culprit(
    emu: Emulator, make_client: MakeClient
) -> None:
    """A budget of one request sends the mates of the first culprit again; the second culprit's mates blame it."""
    items = [client_item(i) for i in range(20)]
    items[2]["case_ids"] = [987_654]
    items[9]["case_ids"] = [987_655]
    async with make_client(emu) as kayse:
        result = await kayse.clients.bulk_upsert(items, raise_on_error=False, bisect_budget=1)
    assert result.requests == 2
    assert len(result.failures) == 20
    assert "clients[2].case_ids" in str(result.items[2].error)
    assert "clients[9].case_ids" in str(result.items[9].error)
    mates = [item for item in result.items if item.index not in (2, 9)]
    assert {item.status for item in mates} == {"rejected"}
    assert {item.error.culprit for item in mates if isinstance(item.error, errors.BatchRefusedError)} == {9}
    assert len(emu.store.clients) == 0


async def test_a_batch_too_large_is_split_and_the_size_learned(make_client: MakeClient) -> None:
    """A 413 splits the chunk (nothing was stored) and later chunks go at the learned size at once."""
    async with Emulator(api_key="k", limit=0, max_batch=120) as emu, make_client(emu) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(1000), concurrency=1)
        assert result.ok
        assert len(emu.store.clients) == 1000
        assert sorted(stored_external_ids(emu)) == sorted(f"ext-{i}" for i in range(1000))
    # One 413, then 120+120+120+120+20 for each of the two chunks: the second chunk never hit a 413.
    assert result.requests == 1 + 5 + 5


async def test_lost_answers_are_uncertain_and_creates_never_resent(emu: Emulator, make_client: MakeClient) -> None:
    """A create batch applied but unanswered is reported uncertain, says why, and is not sent again."""
    emu.set_faults(1.0, ["lost"])
    async with make_client(emu) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(30), chunk_size=10, raise_on_error=False)
    assert [item.status for item in result.items] == ["uncertain"] * 30
    error = result.items[0].error
    assert isinstance(error, errors.TransportError)
    assert error.may_have_been_sent
    assert "not sent again" in str(error)
    assert result.requests == 3
    assert len(emu.store.clients) == 30


async def test_updates_with_ids_are_applied_and_returned(emu: Emulator, make_client: MakeClient) -> None:
    """Items carrying an id update those records, in one idempotent batch, and return them."""
    async with make_client(emu) as kayse:
        created = await kayse.clients.bulk_upsert(client_items(5))
        changes = [
            Client(
                id=c.id, external_source="crm", external_source_id=c.external_source_id, first_name="Bo", last_name="X"
            )
            for c in created.succeeded
        ]
        result = await kayse.clients.bulk_upsert(changes)
    assert [c.id for c in result.succeeded] == [c.id for c in created.succeeded]
    assert {record["first_name"] for record in emu.store.clients.values()} == {"Bo"}


async def test_read_ahead_is_bounded_by_chunk_size_times_concurrency(emu: Emulator, make_client: MakeClient) -> None:
    """The input is read lazily: never more than chunk_size x concurrency items ahead of what was yielded."""
    read = 0

    def counting() -> Any:
        nonlocal read
        for item in client_items(2000):
            read += 1
            yield item

    most_ahead = 0
    yielded = 0
    async with make_client(emu) as kayse:
        async for _item in kayse.clients.bulk_upsert_iter(counting(), chunk_size=50, concurrency=3):
            yielded += 1
            most_ahead = max(most_ahead, read - yielded)
    assert yielded == 2000
    assert 50 < most_ahead <= 50 * 3


async def test_progress_is_reported_after_every_chunk(emu: Emulator, make_client: MakeClient) -> None:
    """The progress callback sees every chunk, in order, with the total when the input has a length."""
    seen: list[BulkProgress] = []
    items = [client_item(i) for i in range(1050)]
    items[5] = {"nope": True}
    async with make_client(emu) as kayse:
        result = await kayse.clients.bulk_upsert(items, raise_on_error=False, progress=seen.append)
    assert [p.items_done for p in seen] == [501, 1001, 1050]
    assert {p.items_total for p in seen} == {1050}
    assert seen[-1].requests == result.requests == 3
    assert (seen[-1].succeeded, seen[-1].failed) == (1049, 1)
    assert all(p.quota_wait_seconds >= 0 for p in seen)


async def test_progress_total_is_unknown_for_a_generator(emu: Emulator, make_client: MakeClient) -> None:
    """A generator has no len(): items_total is None."""
    seen: list[BulkProgress] = []
    async with make_client(emu) as kayse:
        await kayse.clients.bulk_upsert(client_items(10), progress=seen.append)
    assert [(p.items_done, p.items_total) for p in seen] == [(10, None)]


async def test_cases_and_case_lists_go_through_the_same_engine(emu: Emulator, make_client: MakeClient) -> None:
    """cases.bulk_upsert creates cases; case_lists.bulk_upsert returns an id and action per list."""
    cases = [
        {
            "case_number": f"C-{i}",
            "external_source": "crm",
            "external_source_id": f"case-{i}",
            "status": "open",
            "type": "civil",
        }
        for i in range(30)
    ]
    async with make_client(emu) as kayse:
        result = await kayse.cases.bulk_upsert(cases, chunk_size=7)
        assert [c.case_number for c in result.succeeded] == [f"C-{i}" for i in range(30)]
        created = await kayse.case_lists.bulk_upsert([{"name": f"L{i}"} for i in range(3)])
        assert [u.action for u in created] == ["created"] * 3
        updated = await kayse.case_lists.bulk_upsert([{"id": u.id, "name": "renamed"} for u in created])
    assert [u.action for u in updated] == ["updated"] * 3
    assert [u.id for u in updated] == [u.id for u in created]
    assert len(emu.store.cases) == 30


async def test_a_fatal_error_stops_the_job(emu: Emulator, make_client: MakeClient) -> None:
    """A 401 rejects its chunk; the chunks after it are not attempted and say why; one request spent."""
    async with make_client(emu, key="wrong") as kayse:
        result = await kayse.clients.bulk_upsert(client_items(50), chunk_size=10, concurrency=1, raise_on_error=False)
    assert result.requests == 1
    assert {item.status for item in result.items[:10]} == {"rejected"}
    assert isinstance(result.items[0].error, errors.AuthenticationError)
    assert {item.status for item in result.items[10:]} == {"not_attempted"}
    assert "stopped after an earlier error" in str(result.items[10].error)


async def test_a_spent_budget_leaves_the_rest_not_attempted(emu: Emulator, make_client: MakeClient) -> None:
    """QuotaExhaustedError (max_wait=0 on a spent budget) leaves the unsent chunks not attempted."""
    emu.set_rate_limit(2, 3600.0)
    async with make_client(emu, max_wait=0) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(50), chunk_size=10, concurrency=1, raise_on_error=False)
    assert [item.status for item in result.items[:20]] == ["succeeded"] * 20
    assert {item.status for item in result.items[20:]} == {"not_attempted"}
    assert isinstance(result.items[20].error, errors.QuotaExhaustedError)
    assert len(emu.store.clients) == 20


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"concurrency": 0}, "concurrency"),
        ({"bisect_budget": -1}, "bisect_budget"),
        ({"progress": "no"}, "progress"),
    ],
)
async def test_bad_options_are_refused_before_anything_is_sent(
    emu: Emulator, make_client: MakeClient, options: dict[str, Any], message: str
) -> None:
    """A bad option raises ConfigurationError naming it, at the call."""
    async with make_client(emu) as kayse:
        with pytest.raises(errors.ConfigurationError, match=message):
            kayse.clients.bulk_upsert_iter(client_items(3), **options)
    assert emu.stats()["requests"] == 0


@pytest.mark.parametrize("items", ["abc", {"a": 1}, 42])
async def test_input_that_is_not_a_list_of_items_is_refused(emu: Emulator, make_client: MakeClient, items: Any) -> None:
    """A string, a mapping or a non-iterable is not a list of items: ValidationError naming items."""
    async with make_client(emu) as kayse:
        with pytest.raises(errors.ValidationError, match="items"):
            await kayse.clients.bulk_upsert(items)


async def test_breaking_out_of_the_stream_stops_reading(emu: Emulator, make_client: MakeClient) -> None:
    """Closing the stream early stops the job: the input is not read to its end."""
    read = 0

    def counting() -> Any:
        nonlocal read
        for item in client_items(10_000):
            read += 1
            yield item

    async with make_client(emu) as kayse:
        stream = kayse.clients.bulk_upsert_iter(counting(), chunk_size=10, concurrency=2)
        first: BulkItem[Client] | None = None
        async for item in stream:
            first = item
            break
        await stream.aclose()  # type: ignore[attr-defined]
    assert first is not None
    assert first.index == 0
    assert read <= 30


async def test_quota_wait_comes_from_the_transport_when_it_keeps_a_total(
    emu: Emulator, make_client: MakeClient
) -> None:
    """A transport keeping ``quota_wait_seconds`` is read as a delta over the job, not estimated."""
    seen: list[float] = []
    async with make_client(emu) as kayse:
        transport: Any = kayse._transport
        transport.quota_wait_seconds = 10.0

        def progress(p: BulkProgress) -> None:
            seen.append(p.quota_wait_seconds)
            transport.quota_wait_seconds += 2.5

        await kayse.clients.bulk_upsert(client_items(30), chunk_size=10, concurrency=1, progress=progress)
    assert seen == pytest.approx([0.0, 2.5, 5.0], abs=0.5)  # plus the real (tiny) waits
