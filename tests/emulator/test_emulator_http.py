"""HTTP-level behaviour: keys, routing, 405, malformed bodies, every field rule, introspection."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kayse_async.testing import _validation as v
from kayse_async.testing._routes import ROUTES

from .helpers import CALLS_KEY, KEY, Api

VALID: dict[str, dict[str, Any]] = {
    "/v1/clients": {"external_source": "s", "external_source_id": "x", "first_name": "a", "last_name": "b"},
    "/v1/cases": {"case_number": "n", "external_source": "s", "external_source_id": "x", "status": "a", "type": "b"},
    "/v1/case_lists": {"name": "list", "filter": {}},
    "/v1/campaigns": {
        "name": "c",
        "agent_id": "a",
        "case_list_id": 1,
        "send_sms_before_call": True,
        "sms_before_call_text": "t",
    },
    "/v1/cases/communication/sms": {"case_id": 1, "client_id": 1, "message": "m"},
    "/v1/cases/communication/email": {"case_id": 1, "client_id": 1, "subject": "s", "message": "m"},
    "/v1/calls": {"campaign_id": 1, "case_id": 1},
}
TABLES = {
    "/v1/clients": v.CLIENT_FIELDS,
    "/v1/cases": v.CASE_FIELDS,
    "/v1/case_lists": v.CASE_LIST_FIELDS,
    "/v1/campaigns": v.CAMPAIGN_FIELDS,
    "/v1/cases/communication/sms": v.SMS_FIELDS,
    "/v1/cases/communication/email": v.EMAIL_FIELDS,
    "/v1/calls": v.CALL_FIELDS,
}


def wrong_values(kind: v.Kind) -> list[tuple[Any, str]]:
    """Values a field of this kind must refuse, with the sub-path the error names."""
    common: list[tuple[Any, str]] = [([], "")] if kind in (v.OBJECT, v.FILTER) else [({"a": 1}, "")]
    table: dict[int, list[tuple[Any, str]]] = {
        id(v.STRING): [(5, ""), (True, ""), (["a"], "")],
        id(v.ID): [("1", ""), (True, ""), (1.5, ""), (0, ""), (2**63, "")],
        id(v.COUNT): [("1", ""), (False, ""), (-1, "")],
        id(v.BOOL): [(1, ""), ("true", ""), (0, "")],
        id(v.DATE): [("2024-1-15", ""), ("2024-02-30", ""), ("15/01/2024", ""), (20240115, "")],
        id(v.OBJECT): [("x", ""), (1, "")],
        id(v.ID_LIST): [(5, ""), ([1, True], "[1]"), (["1"], "[0]"), ([0], "[0]")],
        id(v.STRING_LIST): [("a", ""), (["a", 1], "[1]")],
        id(v.WEEKDAY_LIST): [("Monday", ""), (["Monday", "Funday"], "[1]"), (["monday"], "[0]")],
        id(v.FILTER): [({"unknown_key": 1}, ".unknown_key"), ({"status_ids": [True]}, ".status_ids[0]")],
        id(v.CALLBACK_DELAYS): [
            ({"minutes": 1}, ""),
            ([{"minutes": -1}], "[0].minutes"),
            ([{"weeks": 1}], "[0].weeks"),
            ([5], "[0]"),
        ],
    }
    return common + table[id(kind)]


CASES = [
    pytest.param(path, field.name, value, suffix, id=f"{path}:{field.name}={value!r}")
    for path, fields in TABLES.items()
    for field in fields
    for value, suffix in wrong_values(field.kind)
]


@pytest.mark.parametrize(("path", "name", "value", "suffix"), CASES)
async def test_every_field_refuses_wrong_types(api: Api, path: str, name: str, value: Any, suffix: str) -> None:
    """Each field of each body refuses values of the wrong type with a 400 naming it (bool is not int)."""
    reply = await api.call("POST", path, {**VALID[path], name: value})
    assert reply.status == 400, reply
    assert reply.body["field"] == name + suffix
    assert api.emulator.store.snapshot()["outbox"] == []


REQUIRED = [
    pytest.param(path, field.name, id=f"{path}:{field.name}")
    for path, fields in TABLES.items()
    for field in fields
    if field.required
]


@pytest.mark.parametrize(("path", "name"), REQUIRED)
async def test_required_fields(api: Api, path: str, name: str) -> None:
    """Every required field: missing, null, or (strings) blank is a 400 naming it."""
    body = {key: value for key, value in VALID[path].items() if key != name}
    reply = await api.call("POST", path, body)
    assert (reply.status, reply.body) == (400, {"message": f"{name} is required", "field": name})
    reply = await api.call("POST", path, {**body, name: None})
    assert (reply.status, reply.body["field"]) == (400, name)
    if isinstance(VALID[path][name], str):
        reply = await api.call("POST", path, {**body, name: "  "})
        assert (reply.status, reply.body) == (400, {"message": f"{name} must not be empty", "field": name})


async def test_optional_fields_accept_null_and_unknown_fields_are_refused(api: Api) -> None:
    """Optional fields may be null; a field outside the table is a 400 naming it."""
    nulls = {field.name: None for field in v.CLIENT_FIELDS if not field.required}
    assert (await api.ok("POST", "/v1/clients", {**VALID["/v1/clients"], **nulls}))["id"] == 1
    reply = await api.call("POST", "/v1/clients", {**VALID["/v1/clients"], "nickname": "x"})
    assert (reply.status, reply.body) == (400, {"message": "unknown field nickname", "field": "nickname"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{'campaign_id': 1}", "malformed JSON"),
        (b'{"a": 1,}', "malformed JSON"),
        (b'{"a": NaN}', "malformed JSON"),
        (b"", "request body is required"),
        (b"\xff\xfe", "request body is not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
    ],
)
async def test_malformed_bodies_are_400(api: Api, raw: bytes, message: str) -> None:
    """Bodies that are not JSON get a clean 400 (never a 500), naming no field."""
    reply = await api.call("POST", "/v1/clients", data=raw, headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.body["message"].startswith(message)
    assert reply.body["field"] is None


@pytest.mark.parametrize("body", ["[]", '"text"', "5", "null", "true"])
async def test_non_object_bodies_are_400(api: Api, body: str) -> None:
    """A JSON body that is not an object is a 400."""
    reply = await api.call("POST", "/v1/cases", data=body)
    assert (reply.status, reply.body) == (400, {"message": "request body must be a JSON object", "field": None})


async def test_keys(api: Api) -> None:
    """401 without or with a wrong key, on the right header per route; the key never appears in a body."""
    secret = "wrong-secret-value"
    for path, header, good in (
        ("/v1/metadata/objects", "X-API-KEY", KEY),
        ("/v1/calls", "X-Public-Api-Key", CALLS_KEY),
    ):
        method = "POST" if path == "/v1/calls" else "GET"
        missing = await api.call(method, path, key=None)
        assert (missing.status, missing.body["field"]) == (401, header)
        wrong = await api.call(method, path, key=secret)
        assert (wrong.status, wrong.body) == (401, {"message": "invalid API key", "field": header})
        assert secret not in str(wrong.body)
        assert good not in str(wrong.body)
    # The main key is no good on /v1/calls, and the calls key no good on the main routes.
    assert (await api.call("POST", "/v1/calls", {}, key=KEY)).status == 401
    assert (await api.call("GET", "/v1/metadata/objects", key=CALLS_KEY)).status == 401
    assert (await api.call("GET", "/v1/metadata/objects", headers={"X-Public-Api-Key": KEY}, key=None)).status == 401


async def test_keys_never_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing the emulator logs while serving good and bad keys holds a key."""
    caplog.set_level(logging.DEBUG)
    await api.call("GET", "/v1/metadata/objects")
    await api.call("GET", "/v1/metadata/objects", key="another-secret")
    assert KEY not in caplog.text
    assert "another-secret" not in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/clients", "POST"),
        ("PATCH", "/v1/clients/1", "DELETE, GET, PUT"),
        ("GET", "/v1/clients/bulk", "POST"),
        ("DELETE", "/v1/cases/bulk_delete", "POST"),
        ("PUT", "/v1/case_lists", "GET, POST"),
        ("GET", "/v1/calls", "POST"),
        ("POST", "/v1/metadata/objects", "GET"),
    ],
)
async def test_wrong_method_is_405_with_allow(api: Api, method: str, path: str, allow: str) -> None:
    """A wrong method on a known path is a 405 with the Allow header."""
    reply = await api.call(method, path)
    assert reply.status == 405
    assert reply.headers["Allow"] == allow


@pytest.mark.parametrize("path", ["/v1/nothing", "/v1/clients/abc", "/v1/clients/1/extra", "/v1/clients/", "/other"])
async def test_unknown_paths_are_404(api: Api, path: str) -> None:
    """Paths that are no route are a JSON 404."""
    reply = await api.call("GET", path)
    assert reply.status == 404
    assert set(reply.body) == {"message", "field"}


async def test_every_route_answers(api: Api) -> None:
    """Every route of the table is served (no route falls through to 404 or 405)."""
    for route in ROUTES:
        path = route.template.replace("{id}", "1")
        reply = await api.call(route.method, path, {} if route.has_body else None)
        assert reply.status in (200, 400, 404), route
        if reply.status == 404:
            assert "not found" in reply.body["message"]
            assert reply.body["message"] != "no such endpoint"


async def test_metadata_matches_the_validation_tables(api: Api) -> None:
    """The metadata lists every field of cases, clients and case lists with type and required."""
    objects = await api.ok("GET", "/v1/metadata/objects")
    assert [item["name"] for item in objects] == ["cases", "clients", "case_lists"]
    by_name = {item["name"]: {field["name"]: field for field in item["fields"]} for item in objects}
    assert by_name["cases"]["case_number"]["required"] is True
    assert by_name["cases"]["status"] == {
        "name": "status",
        "type": "string",
        "required": True,
        "description": 'Case status (e.g., "active", "closed", "pending")',
    }
    assert by_name["clients"]["date_of_birth"]["type"] == "date"
    assert by_name["clients"]["case_ids"]["type"] == "array"
    assert by_name["clients"]["case_ids"]["items"] == "uint"
    assert by_name["case_lists"]["is_obo"]["type"] == "bool"
    assert set(by_name["clients"]) == {field.name for field in v.CLIENT_FIELDS}
    required = {name for name, field in by_name["clients"].items() if field["required"]}
    assert required == {"external_source", "external_source_id", "first_name", "last_name"}


async def test_stats_count_requests_routes_and_statuses(api: Api) -> None:
    """Stats count every /v1 request whatever its status, by route template; reset empties them."""
    await api.client(1)
    await api.ok("GET", "/v1/clients/1")
    await api.call("GET", "/v1/clients/2")
    await api.call("GET", "/v1/metadata/objects", key=None)
    await api.call("PATCH", "/v1/clients/1")
    stats = await api.ok("GET", "/_emulator/stats", key=None)
    assert stats["requests"] == 5
    assert stats["by_route"] == {
        "GET /v1/clients/{id}": 2,
        "GET /v1/metadata/objects": 1,
        "PATCH /v1/clients/{id}": 1,
        "POST /v1/clients": 1,
    }
    assert stats["by_status"] == {"200": 2, "401": 1, "404": 1, "405": 1}
    assert stats == api.emulator.stats()
    await api.ok("POST", "/_emulator/reset", key=None)
    assert (await api.ok("GET", "/_emulator/stats", key=None))["requests"] == 0
    assert len(api.emulator.store.clients) == 1
    await api.ok("POST", "/_emulator/reset", key=None, params={"store": "1"})
    assert api.emulator.store.clients == {}
    assert (await api.client(1))["id"] == 1  # ids start again


async def test_config_route_changes_settings_and_never_shows_keys(api: Api) -> None:
    """GET/POST /_emulator/config read and change settings; bad values are a 400; keys are not shown."""
    config = await api.ok("GET", "/_emulator/config", key=None)
    assert config["limit"] == 0
    assert KEY not in str(config)
    changed = await api.ok(
        "POST", "/_emulator/config", {"limit": 2, "window": "sliding", "fault_kinds": "500,drop"}, key=None
    )
    assert (changed["limit"], changed["window"], changed["fault_kinds"]) == (2, "sliding", ["500", "drop"])
    assert api.emulator.settings.limit == 2
    for bad in ({"window": "leaky"}, {"api_key": "x"}, {"fault_rate": 2}, {"limit": "many"}):
        reply = await api.call("POST", "/_emulator/config", bad, key=None)
        assert reply.status == 400, bad
    assert api.emulator.settings.window == "sliding"


async def test_odd_but_valid_json_is_handled(api: Api) -> None:
    """Lone surrogates and non-ASCII text round-trip; over-deep free-form objects are a 400."""
    raw = '{"external_source": "s", "external_source_id": "x", "first_name": "\\ud800", "last_name": "Ünïcødé"}'
    reply = await api.call("POST", "/v1/clients", data=raw)
    assert reply.status == 200
    assert (reply.body["first_name"], reply.body["last_name"]) == ("\ud800", "Ünïcødé")
    deep: Any = {}
    for _ in range(40):
        deep = {"a": deep}
    reply = await api.call("POST", "/v1/clients", {**VALID["/v1/clients"], "meta": deep})
    assert (reply.status, reply.body["field"]) == (400, "meta")
