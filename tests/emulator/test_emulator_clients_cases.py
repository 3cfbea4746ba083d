"""Clients and cases through real sockets: CRUD, full replacement, links, opt-out, bulk, deletes."""

from __future__ import annotations

from typing import Any

import pytest

from kayse_async.testing import Emulator

from .helpers import Api


async def test_client_create_get_update_delete(api: Api) -> None:
    """A created client is returned whole, can be read back, replaced, and deleted (then 404)."""
    created = await api.client(1, email="a@example.com", date_of_birth="1990-01-15", meta={"k": "v"})
    assert created["id"] == 1
    assert created["email"] == "a@example.com"
    assert created["voice_calls_opted_out"] is False
    assert created["case_ids"] == []
    assert created["date_of_death"] is None
    assert await api.ok("GET", "/v1/clients/1") == created
    deleted = await api.ok("DELETE", "/v1/clients/1")
    assert deleted == {"message": "client deleted successfully"}
    reply = await api.call("GET", "/v1/clients/1")
    assert (reply.status, reply.body) == (404, {"message": "client 1 not found", "field": None})


async def test_put_is_a_full_replacement(api: Api) -> None:
    """PUT: omitted optional fields become null, omitted required fields keep their value."""
    await api.client(1, email="a@example.com", city="Paris", mobile="+1")
    updated = await api.ok("PUT", "/v1/clients/1", {"city": "Lyon"})
    assert updated["city"] == "Lyon"
    assert (updated["email"], updated["mobile"]) == (None, None)
    assert (updated["first_name"], updated["external_source_id"]) == ("F1", "cl-1")
    assert await api.ok("GET", "/v1/clients/1") == updated


async def test_put_checks_types_like_create_and_changes_nothing_on_error(api: Api) -> None:
    """PUT with a bad field is a 400 naming it, and the stored client is unchanged."""
    before = await api.client(1, city="Paris")
    reply = await api.call("PUT", "/v1/clients/1", {"city": "Lyon", "first_name": 5})
    assert (reply.status, reply.body["field"]) == (400, "first_name")
    assert await api.ok("GET", "/v1/clients/1") == before


async def test_put_accepts_its_own_id_only(api: Api) -> None:
    """A PUT body may carry the path's id (as GET returned it), never another one."""
    record = await api.client(1)
    assert (await api.ok("PUT", "/v1/clients/1", record))["id"] == 1
    reply = await api.call("PUT", "/v1/clients/1", {**record, "id": 2})
    assert (reply.status, reply.body["field"]) == (400, "id")


async def test_unknown_ids_are_404(api: Api) -> None:
    """GET, PUT and DELETE of an unknown client or case id are 404."""
    for resource in ("clients", "cases"):
        for method, body in (("GET", None), ("PUT", {}), ("DELETE", None)):
            reply = await api.call(method, f"/v1/{resource}/999", body)
            assert reply.status == 404, (method, resource)
            assert reply.body["message"].endswith("999 not found")


async def test_links_go_both_ways_and_are_replaced(api: Api) -> None:
    """client.case_ids and case.client_ids mirror each other; a write replaces the links."""
    await api.case(1)
    await api.case(2)
    await api.case(3)
    await api.client(1, case_ids=[1, 2])
    assert (await api.ok("GET", "/v1/cases/1"))["client_ids"] == [1]
    assert (await api.ok("GET", "/v1/cases/2"))["client_ids"] == [1]
    await api.ok("PUT", "/v1/clients/1", {"case_ids": [2, 3]})
    assert (await api.ok("GET", "/v1/cases/1"))["client_ids"] == []
    assert (await api.ok("GET", "/v1/cases/3"))["client_ids"] == [1]
    case = await api.case(4, client_ids=[1])
    assert case["client_ids"] == [1]
    assert (await api.ok("GET", "/v1/clients/1"))["case_ids"] == [2, 3, 4]
    await api.ok("PUT", "/v1/cases/4", {"client_ids": []})
    assert (await api.ok("GET", "/v1/clients/1"))["case_ids"] == [2, 3]
    # A PUT without links drops them (full replacement).
    await api.ok("PUT", "/v1/clients/1", {})
    assert (await api.ok("GET", "/v1/cases/2"))["client_ids"] == []


async def test_case_id_alias_links_one_case(api: Api) -> None:
    """The reference table's single `case_id` links that case; giving both spellings is a 400."""
    await api.case(1)
    assert (await api.client(1, case_id=1))["case_ids"] == [1]
    required = {"external_source": "s", "external_source_id": "x", "first_name": "a", "last_name": "b"}
    reply = await api.call("POST", "/v1/clients", {**required, "case_id": 1, "case_ids": [1]})
    assert (reply.status, reply.body["field"]) == (400, "case_id")
    reply = await api.call("POST", "/v1/clients", {**required, "case_id": 9})
    assert (reply.status, reply.body["field"]) == (400, "case_id")


async def test_links_to_missing_records_are_400_naming_the_item(api: Api) -> None:
    """Linking to an id that does not exist names the offending array item."""
    await api.case(1)
    reply = await api.call(
        "POST",
        "/v1/clients",
        {"external_source": "s", "external_source_id": "x", "first_name": "a", "last_name": "b", "case_ids": [1, 42]},
    )
    assert (reply.status, reply.body) == (400, {"message": "case 42 not found", "field": "case_ids[1]"})
    reply = await api.call(
        "POST",
        "/v1/cases",
        {
            "case_number": "c",
            "external_source": "s",
            "external_source_id": "x",
            "status": "a",
            "type": "b",
            "client_ids": [7],
        },
    )
    assert (reply.status, reply.body["field"]) == (400, "client_ids[0]")
    assert api.emulator.store.clients == {}


async def test_deleting_unlinks(api: Api) -> None:
    """Deleting a client removes it from its cases' client_ids, and a case from its clients' case_ids."""
    await api.case(1)
    await api.case(2)
    await api.client(1, case_ids=[1, 2])
    await api.client(2, case_ids=[1])
    await api.ok("DELETE", "/v1/clients/1")
    assert (await api.ok("GET", "/v1/cases/1"))["client_ids"] == [2]
    await api.ok("DELETE", "/v1/cases/1")
    assert (await api.ok("GET", "/v1/clients/2"))["case_ids"] == []
    assert await api.ok("DELETE", "/v1/cases/2") == {"message": "case deleted successfully"}


async def test_case_opt_out_marks_linked_clients(api: Api) -> None:
    """opt_out_voice_calls=true on a case opts out every client linked to it, and only them."""
    await api.client(1)
    await api.client(2)
    await api.client(3)
    await api.case(1, client_ids=[1, 2], opt_out_voice_calls=True)
    flags = [(await api.ok("GET", f"/v1/clients/{n}"))["voice_calls_opted_out"] for n in (1, 2, 3)]
    assert flags == [True, True, False]
    await api.ok("PUT", "/v1/cases/1", {"client_ids": [1, 2, 3], "opt_out_voice_calls": True})
    assert (await api.ok("GET", "/v1/clients/3"))["voice_calls_opted_out"] is True


async def test_client_opt_out_spreads_across_linked_cases_and_their_clients(api: Api) -> None:
    """A client opting out marks its cases opted out and their other clients too; unrelated ones stay."""
    await api.case(1)
    await api.case(2)
    await api.client(1, case_ids=[1])
    await api.client(2, case_ids=[1])
    await api.client(3, case_ids=[2])
    result = await api.ok(
        "POST",
        "/v1/clients/bulk",
        {"clients": [{"id": 1, "voice_calls_opted_out": True, "case_ids": [1]}]},
    )
    assert result["clients"][0]["voice_calls_opted_out"] is True
    assert (await api.ok("GET", "/v1/cases/1"))["opt_out_voice_calls"] is True
    assert (await api.ok("GET", "/v1/clients/2"))["voice_calls_opted_out"] is True
    assert (await api.ok("GET", "/v1/clients/3"))["voice_calls_opted_out"] is False
    assert (await api.ok("GET", "/v1/cases/2"))["opt_out_voice_calls"] is None


async def test_opt_out_is_not_lost_by_omission(api: Api) -> None:
    """A PUT that omits voice_calls_opted_out keeps an opt-out; an explicit false clears it."""
    await api.client(1, voice_calls_opted_out=True)
    assert (await api.ok("PUT", "/v1/clients/1", {"city": "x"}))["voice_calls_opted_out"] is True
    assert (await api.ok("PUT", "/v1/clients/1", {"voice_calls_opted_out": False}))["voice_calls_opted_out"] is False


async def test_a_put_keeps_what_lies_outside_the_put_table(api: Api) -> None:
    """A PUT keeps a case's links and opt-out and a client's gender when it omits them; values change them."""
    await api.client(1, gender="female")
    await api.case(1, client_ids=[1], opt_out_voice_calls=True)
    case = await api.ok("PUT", "/v1/cases/1", {"name": "renamed", "opt_out_voice_calls": None})
    assert (case["name"], case["client_ids"], case["opt_out_voice_calls"]) == ("renamed", [1], True)
    assert (await api.ok("PUT", "/v1/clients/1", {"city": "x"}))["gender"] == "female"
    assert (await api.ok("PUT", "/v1/cases/1", {"client_ids": []}))["client_ids"] == []
    assert (await api.ok("PUT", "/v1/clients/1", {"gender": "f"}))["gender"] == "f"


@pytest.mark.parametrize(
    ("resource", "body", "field"),
    [
        ("clients", {"external_source_id": "other"}, "external_source_id"),
        ("cases", {"case_number": "N-1", "external_source_id": "other"}, "case_number"),
        ("cases", {"case_number": "other"}, "external_source_id"),
    ],
)
async def test_uniqueness_is_enforced(api: Api, resource: str, body: dict[str, Any], field: str) -> None:
    """case_number and (external_source, external_source_id) are unique per resource: 400 naming the field."""
    first = await (api.client(1) if resource == "clients" else api.case(1))
    template = {
        "clients": {"external_source": "test", "first_name": "a", "last_name": "b", "external_source_id": "cl-1"},
        "cases": {"external_source": "test", "external_source_id": "ca-1", "status": "s", "type": "t"},
    }[resource]
    duplicate = {**template, **body}
    if resource == "clients":
        duplicate["external_source_id"] = "cl-1"
    reply = await api.call("POST", f"/v1/{resource}", duplicate)
    assert (reply.status, reply.body["field"]) == (400, field)
    # The same values on the record itself are not a clash (a PUT keeping them).
    assert (await api.ok("PUT", f"/v1/{resource}/{first['id']}", {}))["id"] == first["id"]
    # Another source with the same source id is fine.
    other = {**duplicate, "external_source": "elsewhere", "case_number": "N-9"}
    if resource == "clients":
        del other["case_number"]
    assert (await api.ok("POST", f"/v1/{resource}", other))["id"] == 2


async def test_bulk_upsert_creates_and_updates_in_input_order(api: Api) -> None:
    """Bulk clients: items without id are created, with id replaced; full objects come back in order."""
    await api.client(1, city="Paris")
    await api.case(1)
    result = await api.ok(
        "POST",
        "/v1/clients/bulk",
        {
            "clients": [
                {"external_source": "b", "external_source_id": "n1", "first_name": "N", "last_name": "1"},
                {"id": 1, "first_name": "Renamed", "case_ids": [1]},
                {
                    "external_source": "b",
                    "external_source_id": "n2",
                    "first_name": "N",
                    "last_name": "2",
                    "case_ids": [1],
                },
            ]
        },
    )
    assert [item["id"] for item in result["clients"]] == [2, 1, 3]
    assert result["clients"][1]["first_name"] == "Renamed"
    assert result["clients"][1]["city"] is None
    assert result["clients"][1]["last_name"] == "L"
    assert (await api.ok("GET", "/v1/cases/1"))["client_ids"] == [1, 3]


async def test_bulk_upsert_is_atomic(api: Api) -> None:
    """One bad item (its position named) rejects the batch: nothing of the good items is stored."""
    await api.case(1)
    before = api.emulator.store.snapshot()
    good = {"external_source": "b", "external_source_id": "g", "first_name": "G", "last_name": "1", "case_ids": [1]}
    for bad_item, field, status in [
        ({"external_source": "b", "first_name": "x", "last_name": "y"}, "clients[1].external_source_id", 400),
        ({**good, "external_source_id": "g"}, "clients[1].external_source_id", 400),  # clash inside the batch
        ({**good, "external_source_id": "h", "case_ids": [5]}, "clients[1].case_ids[0]", 400),
        ({"id": 77, "first_name": "x"}, "clients[1].id", 404),
        ({**good, "date_of_birth": "1990-02-30"}, "clients[1].date_of_birth", 400),
        ("not an object", "clients[1]", 400),
    ]:
        reply = await api.call("POST", "/v1/clients/bulk", {"clients": [good, bad_item]})
        assert (reply.status, reply.body["field"]) == (status, field), bad_item
        assert api.emulator.store.snapshot() == before


async def test_bulk_cases_and_the_same_id_twice(api: Api) -> None:
    """Bulk cases work like bulk clients; one id twice in a batch is a 400."""
    await api.case(1)
    result = await api.ok(
        "POST",
        "/v1/cases/bulk",
        {
            "cases": [
                {"id": 1, "status": "closed"},
                {"case_number": "B", "external_source": "s", "external_source_id": "b", "status": "a", "type": "t"},
            ]
        },
    )
    assert [(c["id"], c["status"], c["case_number"]) for c in result["cases"]] == [(1, "closed", "N-1"), (2, "a", "B")]
    reply = await api.call("POST", "/v1/cases/bulk", {"cases": [{"id": 1}, {"id": 1}]})
    assert (reply.status, reply.body["field"]) == (400, "cases[1].id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "clients"),
        ({"clients": []}, "clients"),
        ({"clients": {}}, "clients"),
        ({"clients": [{}], "extra": 1}, "extra"),
        ([], None),
    ],
)
async def test_bulk_container_rules(api: Api, body: Any, field: str | None) -> None:
    """The bulk array is required, an array, not empty; the body an object with nothing else."""
    reply = await api.call("POST", "/v1/clients/bulk", body)
    assert (reply.status, reply.body["field"]) == (400, field)


async def test_max_batch_gives_413_and_stores_nothing() -> None:
    """Over --max-batch items a bulk upsert is a 413 naming the array; at the limit it passes."""
    import aiohttp

    async with Emulator("k", limit=0, max_batch=2) as emu, aiohttp.ClientSession() as session:
        api = Api(session, emu)
        items = [
            {"external_source": "s", "external_source_id": str(n), "first_name": "a", "last_name": "b"}
            for n in range(3)
        ]
        reply = await api.call("POST", "/v1/clients/bulk", {"clients": items})
        assert (reply.status, reply.body) == (413, {"message": "batch too large: at most 2 items", "field": "clients"})
        assert emu.store.clients == {}
        assert len((await api.ok("POST", "/v1/clients/bulk", {"clients": items[:2]}))["clients"]) == 2
        emu.configure(max_batch=None)
        assert len((await api.ok("POST", "/v1/clients/bulk", {"clients": items[2:]}))["clients"]) == 1


async def test_bulk_delete_with_and_without_clients(api: Api) -> None:
    """bulk_delete returns the ids it removed; with_clients removes clients linked only to deleted cases."""
    for n in (1, 2, 3):
        await api.case(n)
    await api.client(1, case_ids=[1])  # only on a deleted case: goes
    await api.client(2, case_ids=[1, 3])  # also on a surviving case: stays
    await api.client(3)  # on no case: stays
    await api.client(4, case_ids=[2])
    result = await api.ok("POST", "/v1/cases/bulk_delete", {"ids": [1, 99, 1, 2], "with_clients": True})
    assert result == {"deleted_ids": [1, 2]}
    assert sorted(api.emulator.store.clients) == [2, 3]
    assert (await api.ok("GET", "/v1/clients/2"))["case_ids"] == [3]
    assert await api.ok("POST", "/v1/cases/bulk_delete", {"ids": [3]}) == {"deleted_ids": [3]}
    assert sorted(api.emulator.store.clients) == [2, 3]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"ids": []}, "ids", "ids must not be empty"),
        ({}, "ids", "ids is required"),
        ({"ids": list(range(1, 502))}, "ids", "ids must hold at most 500 ids"),
        ({"ids": [1, "2"]}, "ids[1]", "ids[1] must be an integer"),
        ({"ids": [1], "with_clients": "yes"}, "with_clients", "with_clients must be a boolean"),
    ],
)
async def test_bulk_delete_rules(api: Api, body: Any, field: str, message: str) -> None:
    """bulk_delete: 1 to 500 integer ids, with_clients a boolean."""
    reply = await api.call("POST", "/v1/cases/bulk_delete", body)
    assert (reply.status, reply.body) == (400, {"message": message, "field": field})


async def test_bulk_delete_accepts_exactly_500(api: Api) -> None:
    """500 ids is the limit, not past it."""
    assert await api.ok("POST", "/v1/cases/bulk_delete", {"ids": list(range(1, 501))}) == {"deleted_ids": []}


async def test_lookups_number_statuses_and_types_in_order_of_appearance(api: Api) -> None:
    """Each distinct status / type gets a stable id, listed in /_emulator/store."""
    await api.case(1, status="open", type="civil")
    await api.case(2, status="closed", type="civil")
    await api.case(3, status="open", type="family")
    store = await api.ok("GET", "/_emulator/store", key=None)
    assert store["lookups"]["statuses"] == {"open": 1, "closed": 2}
    assert store["lookups"]["types"] == {"civil": 1, "family": 2}
