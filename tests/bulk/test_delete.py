"""cases.bulk_delete end to end: chunks of 500, deduplication, with_clients, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kayse_async import errors
from kayse_async.models import BulkProgress, DeleteResult
from kayse_async.testing import Emulator
from kayse_async.testing._faults import FaultInjector

from .conftest import MakeClient, client_item


def case_item(i: int, **extra: object) -> dict[str, object]:
    return {
        "case_number": f"C-{i}",
        "external_source": "crm",
        "external_source_id": f"case-{i}",
        "status": "open",
        "type": "civil",
        **extra,
    }


async def test_deleting_1234_cases_takes_three_chunks(emu: Emulator, make_client: MakeClient) -> None:
    """1,234 ids (with repeats) go in three requests of at most 500 and every case is gone."""
    seen: list[BulkProgress] = []
    async with make_client(emu) as kayse:
        created = await kayse.cases.bulk_upsert(case_item(i) for i in range(1234))
        ids = [c.id for c in created.succeeded if c.id is not None]
        before = emu.stats()["requests"]
        deleted = await kayse.cases.bulk_delete(ids + ids[:100], progress=seen.append)
    assert deleted == ids
    assert emu.stats()["requests"] - before == 3
    assert emu.store.cases == {}
    assert sorted(p.items_done for p in seen) == [500, 1000, 1234]
    assert seen[-1].items_total == 1234


async def test_with_clients_deletes_clients_linked_only_to_deleted_cases(
    emu: Emulator, make_client: MakeClient
) -> None:
    """with_clients removes the clients of deleted cases that no other case holds."""
    async with make_client(emu) as kayse:
        clients = (await kayse.clients.bulk_upsert(client_item(i) for i in range(3))).succeeded
        only, shared, untouched = (c.id for c in clients)
        cases = await kayse.cases.bulk_upsert(
            [case_item(0, client_ids=[only, shared]), case_item(1, client_ids=[shared]), case_item(2)]
        )
        first, kept, third = (c.id for c in cases.succeeded)
        deleted = await kayse.cases.bulk_delete(iter([first, third]), with_clients=True)
    assert deleted == [first, third]
    assert set(emu.store.cases) == {kept}
    assert set(emu.store.clients) == {shared, untouched}


async def test_ids_already_gone_are_not_an_error(emu: Emulator, make_client: MakeClient) -> None:
    """An id the server no longer has is simply absent from the answer."""
    async with make_client(emu) as kayse:
        ids = [c.id for c in (await kayse.cases.bulk_upsert(case_item(i) for i in range(3))).succeeded]
        assert await kayse.cases.bulk_delete(ids[:1]) == ids[:1]

        async def all_ids() -> AsyncIterator[int]:
            for i in ids:
                if i is not None:
                    yield i

        assert await kayse.cases.bulk_delete(all_ids()) == ids[1:]


async def test_a_bad_id_is_refused_before_anything_is_sent(emu: Emulator, make_client: MakeClient) -> None:
    """Every id is checked first: a bad one names its place and nothing is sent."""
    async with make_client(emu) as kayse:
        with pytest.raises(errors.ValidationError, match=r"ids\[600\]"):
            await kayse.cases.bulk_delete([*range(1, 601), "7"])  # type: ignore[list-item]
        with pytest.raises(errors.ValidationError, match="with_clients"):
            await kayse.cases.bulk_delete([1], with_clients="yes")  # type: ignore[arg-type]
    assert emu.stats()["requests"] == 0


async def test_a_failed_chunk_raises_bulk_error_with_every_id(emu: Emulator, make_client: MakeClient) -> None:
    """A 401 stops the job: BulkError holds one outcome per unique id, the unsent ones not attempted."""
    async with make_client(emu, key="wrong") as kayse:
        with pytest.raises(errors.BulkError) as caught:
            await kayse.cases.bulk_delete(range(1, 1201), concurrency=1)
    result = caught.value.result
    assert len(result.items) == 1200
    assert {item.status for item in result.items[:500]} == {"rejected"}
    assert isinstance(result.items[0].error, errors.AuthenticationError)
    assert {item.status for item in result.items[500:]} == {"not_attempted"}
    assert result.requests == 1


def first_attempt_lost_seed() -> int:
    """A fault seed whose first request is 'lost' (applied, answer cut) and whose second is served."""
    for seed in range(1000):
        faults = FaultInjector(0.5, ["lost"], seed=seed)
        if (faults.draw(), faults.draw()) == ("lost", None):
            return seed
    raise AssertionError("no seed found")


async def test_ids_deleted_by_a_lost_attempt_are_reported_gone(emu: Emulator, make_client: MakeClient) -> None:
    """First answer lost, the retry finds the cases gone: they are in .gone, never silently dropped."""
    async with make_client(emu) as kayse:
        ids = [c.id for c in (await kayse.cases.bulk_upsert(case_item(i) for i in range(5))).succeeded]
        emu.set_faults(0.5, ["lost"], seed=first_attempt_lost_seed())
        result = await kayse.cases.bulk_delete([*ids, 999_999])
    assert emu.stats()["faults"]["lost"] == 1
    assert emu.store.cases == {}
    assert isinstance(result, DeleteResult)
    assert result == []
    assert result.confirmed == []
    assert result.gone == [*ids, 999_999]
    assert result.not_found == []
    assert result.failed == []
    assert result.ok
    assert result.requests == 2


async def test_the_confirmed_the_not_found_and_the_failed(emu: Emulator, make_client: MakeClient) -> None:
    """Without a lost answer a missing id is not_found; a failed chunk is listed when asked not to raise."""
    async with make_client(emu) as kayse:
        ids = [c.id for c in (await kayse.cases.bulk_upsert(case_item(i) for i in range(3))).succeeded]
        result = await kayse.cases.bulk_delete([ids[0], 999_999, ids[2]])
        assert list(result) == [ids[0], ids[2]]
        assert (result.confirmed, result.gone, result.not_found) == ([ids[0], ids[2]], [], [999_999])
        assert "not_found=[999999]" in repr(result)
        emu.set_faults(1.0, ["500"])
        async with make_client(emu, max_retries=0) as failing:
            failed = await failing.cases.bulk_delete([ids[1]], raise_on_error=False)
    assert failed == []
    assert not failed.ok
    assert [(item.index, item.status) for item in failed.failed] == [(0, "uncertain")]
    assert "deleting again is safe" in str(failed.failed[0].error)
    assert ids[1] in emu.store.cases
