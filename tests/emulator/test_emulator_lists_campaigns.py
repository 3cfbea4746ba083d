"""Case lists, campaigns, calls, SMS and email through real sockets."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Api


async def seed_cases(api: Api) -> None:
    """Cases 1-5 over statuses open/closed (ids 1/2), types civil/family (1/2)."""
    await api.case(1, status="open", type="civil", jurisdiction="NY")
    await api.case(2, status="closed", type="civil", jurisdiction="NY")
    await api.case(3, status="open", type="family", is_obo=True)
    await api.case(4, status="open", type="civil")
    await api.case(5, status="pending", type="family")


@pytest.mark.parametrize(
    ("filter_", "members"),
    [
        ({}, [1, 2, 3, 4, 5]),
        ({"status_ids": [1]}, [1, 3, 4]),
        ({"case_type_ids": [2]}, [3, 5]),
        ({"status_ids": [1], "case_type_ids": [1]}, [1, 4]),
        ({"status_ids": [99]}, []),
        ({"statuses": ["closed", "pending"]}, [2, 5]),
        ({"types": ["family"]}, [3, 5]),
        ({"is_obo": True}, [3]),
        ({"is_obo": False}, [1, 2, 4, 5]),
        ({"jurisdiction": "NY"}, [1, 2]),
        ({"statuses": None}, [1, 2, 3, 4, 5]),
    ],
)
async def test_filters(api: Api, filter_: dict[str, Any], members: list[int]) -> None:
    """Each filter key selects the cases it names; keys combine with AND, values within one with OR."""
    await seed_cases(api)
    created = await api.ok("POST", "/v1/case_lists", {"name": "L", "filter": filter_})
    assert created["case_ids"] == members


async def test_include_and_exclude(api: Api) -> None:
    """Members are the filter's result plus include_ids less exclude_ids."""
    await seed_cases(api)
    created = await api.ok(
        "POST",
        "/v1/case_lists",
        {"name": "L", "filter": {"status_ids": [1]}, "include_ids": [2], "exclude_ids": [3, 77]},
    )
    assert created == {
        "id": 1,
        "name": "L",
        "description": None,
        "filter": {"status_ids": [1]},
        "include_ids": [2],
        "exclude_ids": [3, 77],
        "is_obo": None,
        "case_ids": [1, 2, 4],
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "L", "include_ids": [1]}, "include_ids"),
        ({"name": "L", "exclude_ids": [1], "filter": None}, "exclude_ids"),
        ({"name": "L", "filter": {"owner": 1}}, "filter.owner"),
        ({"name": "L", "filter": {}, "include_ids": [99]}, "include_ids[0]"),
        ({"filter": {}}, "name"),
    ],
)
async def test_case_list_rules(api: Api, body: dict[str, Any], field: str) -> None:
    """include/exclude need a filter; unknown filter keys and missing included cases are named."""
    await seed_cases(api)
    reply = await api.call("POST", "/v1/case_lists", body)
    assert (reply.status, reply.body["field"]) == (400, field)


async def test_is_obo_propagates_to_members(api: Api) -> None:
    """A list with is_obo set writes it to every member case, and to no other."""
    await seed_cases(api)
    await api.ok("POST", "/v1/case_lists", {"name": "L", "filter": {"types": ["civil"]}, "is_obo": True})
    flags = [(await api.ok("GET", f"/v1/cases/{n}"))["is_obo"] for n in range(1, 6)]
    assert flags == [True, True, True, True, None]


async def test_members_are_applied_at_write_and_lose_deleted_cases(api: Api) -> None:
    """Membership is set when the list is written ("set"), and a deleted case leaves every list."""
    await seed_cases(api)
    await api.ok("POST", "/v1/case_lists", {"name": "L", "filter": {"status_ids": [1]}})
    await api.case(6, status="open")
    listed = await api.ok("GET", "/v1/case_lists")
    assert listed["case_lists"][0]["case_ids"] == [1, 3, 4]
    await api.ok("DELETE", "/v1/cases/3")
    await api.ok("POST", "/v1/cases/bulk_delete", {"ids": [4]})
    listed = await api.ok("GET", "/v1/case_lists")
    assert listed["case_lists"][0]["case_ids"] == [1]


async def test_bulk_case_lists_reapply_the_filter(api: Api) -> None:
    """Bulk lists: created/updated per input in order; an update replaces members with the new filter's."""
    await seed_cases(api)
    await api.ok("POST", "/v1/case_lists", {"name": "Old", "filter": {"status_ids": [1]}})
    await api.case(6, status="closed")
    result = await api.ok(
        "POST",
        "/v1/case_lists/bulk",
        {
            "lists": [
                {"name": "New", "filter": {"types": ["family"]}, "include_ids": [1]},
                {"id": 1, "name": "Old renamed", "filter": {"status_ids": [2]}, "is_obo": True},
            ]
        },
    )
    assert result == {"lists": [{"id": 2, "action": "created"}, {"id": 1, "action": "updated"}]}
    lists = {item["id"]: item for item in (await api.ok("GET", "/v1/case_lists"))["case_lists"]}
    assert lists[1]["name"] == "Old renamed"
    assert lists[1]["case_ids"] == [2, 6]
    assert lists[1]["description"] is None
    assert lists[2]["case_ids"] == [1, 3, 5]
    assert (await api.ok("GET", "/v1/cases/6"))["is_obo"] is True
    before = api.emulator.store.snapshot()
    reply = await api.call(
        "POST", "/v1/case_lists/bulk", {"lists": [{"name": "ok", "filter": {}}, {"id": 9, "name": "x"}]}
    )
    assert (reply.status, reply.body["field"]) == (404, "lists[1].id")
    assert api.emulator.store.snapshot() == before


async def test_listing_search_hide_empty_and_pages(api: Api) -> None:
    """GET /v1/case_lists: key (any case, in the name), hide_empty, page and page_size, total."""
    await api.case(1)
    names = ["Mass Tort A", "mass tort B", "Other", "Empty mass tort"]
    for name in names:
        body: dict[str, Any] = {"name": name}
        if name != "Empty mass tort":
            body["filter"] = {}
        await api.ok("POST", "/v1/case_lists", body)
    found = await api.ok("GET", "/v1/case_lists", params={"key": "MASS tort"})
    assert [item["name"] for item in found["case_lists"]] == ["Mass Tort A", "mass tort B", "Empty mass tort"]
    assert (found["page"], found["page_size"], found["total"]) == (1, 25, 3)
    found = await api.ok("GET", "/v1/case_lists", params={"key": "mass tort", "hide_empty": "true"})
    assert found["total"] == 2
    page = await api.ok("GET", "/v1/case_lists", params={"page": "2", "page_size": "3"})
    assert ([item["id"] for item in page["case_lists"]], page["total"]) == ([4], 4)
    beyond = await api.ok("GET", "/v1/case_lists", params={"page": "9"})
    assert (beyond["case_lists"], beyond["total"]) == ([], 4)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": "101"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"hide_empty": "maybe"}, "hide_empty"),
    ],
)
async def test_listing_query_rules(api: Api, params: dict[str, str], field: str) -> None:
    """page >= 1, 1 <= page_size <= 100, hide_empty a boolean: else a 400 naming the parameter."""
    reply = await api.call("GET", "/v1/case_lists", params=params)
    assert (reply.status, reply.body["field"]) == (400, field)


async def test_page_size_100_is_allowed(api: Api) -> None:
    """page_size 100 is the maximum, and allowed."""
    assert (await api.ok("GET", "/v1/case_lists", params={"page_size": "100"}))["page_size"] == 100


CAMPAIGN = {
    "name": "Spring calls",
    "agent_id": "abc_123123",
    "case_list_id": 1,
    "start_time": "2006-01-02T15:04:05Z",
    "callback_delays": [{"minutes": 1, "hours": 0, "days": 0}, {"hours": 2}],
    "days": ["Monday", "Tuesday"],
    "send_sms_before_call_delay_minutes": 15,
    "send_sms_before_call": True,
    "sms_before_call_text": "we will call",
    "is_obo": False,
}


async def test_campaigns_create_and_list(api: Api) -> None:
    """A campaign needs an existing case list; it comes back with id, list name and agent; list and search."""
    reply = await api.call("POST", "/v1/campaigns", CAMPAIGN)
    assert (reply.status, reply.body) == (400, {"message": "case list 1 not found", "field": "case_list_id"})
    await api.ok("POST", "/v1/case_lists", {"name": "Prospects"})
    created = await api.ok("POST", "/v1/campaigns", CAMPAIGN)
    assert created["id"] == 1
    assert created["case_list_name"] == "Prospects"
    assert created["callback_delays"] == [{"minutes": 1, "hours": 0, "days": 0}, {"minutes": 0, "hours": 2, "days": 0}]
    assert created["end_time"] is None
    assert created["agent"]["name"] == "abc_123123"
    assert created["stats"] == {}
    await api.ok("POST", "/v1/campaigns", {**CAMPAIGN, "name": "Autumn"})
    listed = await api.ok("GET", "/v1/campaigns")
    assert [item["name"] for item in listed] == ["Spring calls", "Autumn"]
    assert listed[0] == created
    assert [item["id"] for item in await api.ok("GET", "/v1/campaigns", params={"key": "AUTUMN"})] == [2]


async def prepare_calls(api: Api) -> None:
    await api.client(1, voice_calls_opted_out=True)
    await api.client(2)
    await api.case(1, client_ids=[1, 2])
    await api.case(2)
    await api.ok("POST", "/v1/case_lists", {"name": "L", "filter": {}})
    await api.ok("POST", "/v1/campaigns", CAMPAIGN)


async def test_calls_need_campaign_and_case_and_skip_opted_out_clients(api: Api) -> None:
    """POST /v1/calls (X-Public-Api-Key): the first linked client not opted out is called, or none."""
    await prepare_calls(api)
    assert await api.ok("POST", "/v1/calls", {"campaign_id": 1, "case_id": 1}) == {
        "campaign_id": 1,
        "client_id": 2,
        "case_id": 1,
    }
    assert (await api.ok("POST", "/v1/calls", {"campaign_id": 1, "case_id": 2}))["client_id"] is None
    for body, field in (
        ({"campaign_id": 5, "case_id": 1}, "campaign_id"),
        ({"campaign_id": 1, "case_id": 9}, "case_id"),
    ):
        reply = await api.call("POST", "/v1/calls", body)
        assert (reply.status, reply.body["field"]) == (400, field)
    calls = [item for item in api.emulator.store.outbox if item["kind"] == "call"]
    assert [(c["campaign_id"], c["case_id"], c["client_id"]) for c in calls] == [(1, 1, 2), (1, 2, None)]


async def test_sms_and_email_go_to_the_outbox(api: Api) -> None:
    """SMS and email to a linked client are recorded in order (never sent) and listed by /_emulator/outbox."""
    await prepare_calls(api)
    assert await api.ok("POST", "/v1/cases/communication/sms", {"case_id": 1, "client_id": 2, "message": "hi"}) == {
        "message": "sms scheduled"
    }
    email = {"case_id": 1, "client_id": 1, "subject": "S", "message": "body"}
    assert await api.ok("POST", "/v1/cases/communication/email", email) == {"message": "email scheduled"}
    outbox = await api.ok("GET", "/_emulator/outbox", key=None)
    assert [(m["id"], m["kind"], m["case_id"], m["client_id"], m["subject"], m["message"]) for m in outbox] == [
        (1, "sms", 1, 2, None, "hi"),
        (2, "email", 1, 1, "S", "body"),
    ]
    assert outbox == api.emulator.store.outbox


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"case_id": 9, "client_id": 2, "message": "m"}, "case_id", "case 9 not found"),
        ({"case_id": 1, "client_id": 9, "message": "m"}, "client_id", "client 9 not found"),
        ({"case_id": 2, "client_id": 2, "message": "m"}, "client_id", "client 2 is not linked to case 2"),
    ],
)
async def test_sms_needs_an_existing_linked_pair(api: Api, body: dict[str, Any], field: str, message: str) -> None:
    """The case and the client must exist and be linked: else a 400 naming the field, nothing recorded."""
    await prepare_calls(api)
    reply = await api.call("POST", "/v1/cases/communication/sms", body)
    assert (reply.status, reply.body) == (400, {"message": message, "field": field})
    reply = await api.call("POST", "/v1/cases/communication/email", {**body, "subject": "s"})
    assert (reply.status, reply.body["field"]) == (400, field)
    assert api.emulator.store.outbox == []
