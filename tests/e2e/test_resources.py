"""Every resource through real sockets against the emulator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kayse_async import AsyncKayse, errors, models
from kayse_async.testing import Emulator

from .conftest import KEY


def new_client(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "external_source": "manual",
        "external_source_id": f"ext-{n}",
        "first_name": f"F{n}",
        "last_name": "L",
        **extra,
    }


def new_case(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "case_number": f"CASE-{n}",
        "external_source": "other",
        "external_source_id": f"case-{n}",
        "status": "active",
        "type": "civil",
        **extra,
    }


async def test_client_create_get_update_patch_delete(kayse: AsyncKayse) -> None:
    created = await kayse.clients.create(**new_client(1, city="New York", date_of_birth=dt.date(1990, 1, 15)))
    assert created.id is not None
    assert created.date_of_birth == dt.date(1990, 1, 15)
    fetched = await kayse.clients.get(created.id)
    assert fetched.city == "New York"

    replaced = await kayse.clients.update(created.id, state="CA")
    assert replaced.state == "CA"
    assert replaced.city is None  # PUT is a full replacement
    assert replaced.first_name == "F1"  # required fields not given are kept

    patched = await kayse.clients.patch(created.id, city="Los Angeles")
    assert (patched.city, patched.state, patched.first_name) == ("Los Angeles", "CA", "F1")

    await kayse.clients.delete(created.id)
    with pytest.raises(errors.NotFoundError):
        await kayse.clients.get(created.id)


async def test_patch_keeps_fields_the_sdk_does_not_know(kayse: AsyncKayse, emulator: Emulator) -> None:
    emulator.configure(extra_fields=("loyalty_tier",))  # a server newer than this SDK
    created = await kayse.clients.create(**new_client(2), extra_body={"loyalty_tier": "gold"})
    assert created.extra.get("loyalty_tier") == "gold"
    patched = await kayse.clients.patch(created.id or 0, city="Paris")
    assert patched.city == "Paris"
    assert patched.extra.get("loyalty_tier") == "gold"
    replaced = await kayse.clients.update(created.id or 0, city="Rome")
    assert replaced.extra.get("loyalty_tier") is None  # update() is a full replacement


async def test_links_between_clients_and_cases_go_both_ways(kayse: AsyncKayse) -> None:
    client = await kayse.clients.create(**new_client(3))
    case = await kayse.cases.create(**new_case(3, client_ids=[client.id]))
    assert case.client_ids == [client.id]
    assert (await kayse.clients.get(client.id or 0)).case_ids == [case.id]


async def test_case_crud_and_validation_errors_from_the_server(kayse: AsyncKayse) -> None:
    case = await kayse.cases.create(**new_case(4, court_date="2024-03-20"))
    assert case.court_date == dt.date(2024, 3, 20)
    with pytest.raises(errors.BadRequestError) as info:
        await kayse.cases.create(**new_case(5, case_number="CASE-4"))
    assert "case_number" in str(info.value)
    updated = await kayse.cases.patch(case.id or 0, status="closed")
    assert (updated.status, updated.court_date) == ("closed", dt.date(2024, 3, 20))
    await kayse.cases.delete(case.id or 0)


async def test_local_validation_sends_nothing(kayse: AsyncKayse, emulator: Emulator) -> None:
    before = emulator.stats()["requests"]
    with pytest.raises(errors.ValidationError) as info:
        await kayse.clients.create(external_source="m", external_source_id="x", first_name="A")
    assert info.value.field == "last_name"
    with pytest.raises(errors.ValidationError):
        await kayse.cases.get("7")  # type: ignore[arg-type]
    assert emulator.stats()["requests"] == before


async def test_sms_and_email_reach_the_outbox_once(kayse: AsyncKayse, emulator: Emulator) -> None:
    client = await kayse.clients.create(**new_client(6))
    case = await kayse.cases.create(**new_case(6, client_ids=[client.id]))
    assert (
        await kayse.cases.send_sms(case_id=case.id or 0, client_id=client.id or 0, message="hello") == "sms scheduled"
    )
    reply = await kayse.cases.send_email(case_id=case.id or 0, client_id=client.id or 0, subject="s", message="m")
    assert reply == "email scheduled"
    kinds = [entry["kind"] for entry in emulator.store.outbox]
    assert sorted(kinds) == ["email", "sms"]


async def test_case_lists_walk_every_page(kayse: AsyncKayse) -> None:
    for n in range(7):
        await kayse.case_lists.create(name=f"List {n}", filter={"statuses": ["active"]})
    names = [cl.name async for cl in kayse.case_lists.list(page_size=3)]
    assert names == [f"List {n}" for n in range(7)]
    found = [cl.name async for cl in kayse.case_lists.list(key="list 6")]
    assert found == ["List 6"]


async def test_case_list_bulk_upsert_returns_ids_and_actions(kayse: AsyncKayse) -> None:
    existing = await kayse.case_lists.create(name="Old")
    result = await kayse.case_lists.bulk_upsert([{"name": "New"}, {"id": existing.id, "name": "Renamed"}])
    assert [r.action for r in result] == ["created", "updated"]
    assert result[1].id == existing.id


async def test_campaigns_and_calls(kayse: AsyncKayse, emulator: Emulator) -> None:
    client = await kayse.clients.create(**new_client(8))
    case = await kayse.cases.create(**new_case(8, client_ids=[client.id]))
    case_list = await kayse.case_lists.create(name="Calls", filter={}, include_ids=[case.id])
    campaign = await kayse.campaigns.create(
        name="Test",
        agent_id="abc_123123",
        case_list_id=case_list.id,
        send_sms_before_call=True,
        sms_before_call_text="we will call",
        days=["Monday", "Tuesday"],
        callback_delays=[models.CallbackDelay(minutes=1)],
    )
    assert campaign.id is not None
    assert campaign.callback_delays == [models.CallbackDelay(minutes=1)]
    assert [c.name for c in await kayse.campaigns.list(key="tes")] == ["Test"]
    call = await kayse.calls.schedule(campaign_id=campaign.id, case_id=case.id or 0)
    assert (call.campaign_id, call.case_id, call.client_id) == (campaign.id, case.id, client.id)


async def test_metadata_lists_the_public_objects(kayse: AsyncKayse) -> None:
    objects = {o.name: o for o in await kayse.metadata.objects()}
    assert {"cases", "clients", "case_lists"} <= set(objects)
    required = {f.name for f in objects["clients"].fields if f.required}
    assert required == {"external_source", "external_source_id", "first_name", "last_name"}


async def test_a_wrong_key_is_an_authentication_error_without_the_key(emulator: Emulator) -> None:
    wrong = "wrong-key-that-must-not-leak"
    async with AsyncKayse(wrong, base_url=emulator.url) as kayse:
        with pytest.raises(errors.AuthenticationError) as info:
            await kayse.clients.get(1)
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value.body)
    assert KEY not in str(info.value)


async def test_the_quota_snapshot_follows_the_server() -> None:
    async with (
        Emulator(api_key=KEY, limit=50, period=3600.0) as limited,
        AsyncKayse(KEY, base_url=limited.url) as kayse,
    ):
        await kayse.metadata.objects()
        snapshot = kayse.quota
    assert snapshot.limit == 50
    assert snapshot.remaining == 49
    assert snapshot.resets_at is not None
