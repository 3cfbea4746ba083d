"""Random bodies never make the emulator fail: no 500, and the store's links and indexes stay sound."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kayse_async.testing import ThreadedEmulator
from kayse_async.testing import _validation as v

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
plausible = {
    id(v.STRING): st.text(alphabet="abcd", min_size=1, max_size=3),
    id(v.ID): st.integers(1, 4),
    id(v.COUNT): st.integers(0, 3),
    id(v.BOOL): st.booleans(),
    id(v.DATE): st.sampled_from(["2024-01-15", "2024-02-30", "1990-1-1"]),
    id(v.OBJECT): st.dictionaries(st.text(max_size=3), json_values, max_size=2),
    id(v.ID_LIST): st.lists(st.integers(1, 5), max_size=3),
    id(v.STRING_LIST): st.lists(st.sampled_from(["open", "closed", "civil"]), max_size=2),
    id(v.WEEKDAY_LIST): st.lists(st.sampled_from(["Monday", "Sunday", "Moonday"]), max_size=2),
    id(v.FILTER): st.fixed_dictionaries(
        {}, optional={"status_ids": st.lists(st.integers(1, 3), max_size=2), "is_obo": st.booleans(), "x": json_values}
    ),
    id(v.CALLBACK_DELAYS): st.lists(st.fixed_dictionaries({}, optional={"minutes": st.integers(-1, 2)}), max_size=2),
}


def shaped(fields: tuple[v.Field, ...], with_id: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Objects shaped like a table: mostly well typed (so records get written), sometimes anything."""
    well_typed = st.fixed_dictionaries(
        {field.name: plausible[id(field.kind)] for field in fields if field.required},
        optional={field.name: plausible[id(field.kind)] for field in fields if not field.required},
    )
    optional = {field.name: plausible[id(field.kind)] | json_values for field in fields}
    if with_id:
        optional["id"] = st.integers(0, 5) | json_values
    return well_typed | st.fixed_dictionaries({}, optional=optional)


ROUTES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("POST", "/v1/clients"): shaped(v.CLIENT_FIELDS),
    ("PUT", "/v1/clients/1"): shaped(v.CLIENT_FIELDS),
    ("POST", "/v1/clients/bulk"): st.fixed_dictionaries(
        {"clients": st.lists(shaped(v.CLIENT_FIELDS, True), max_size=3)}
    ),
    ("POST", "/v1/cases"): shaped(v.CASE_FIELDS),
    ("PUT", "/v1/cases/2"): shaped(v.CASE_FIELDS),
    ("POST", "/v1/cases/bulk"): st.fixed_dictionaries({"cases": st.lists(shaped(v.CASE_FIELDS, True), max_size=3)}),
    ("POST", "/v1/cases/bulk_delete"): shaped(v.BULK_DELETE_FIELDS),
    ("POST", "/v1/cases/communication/sms"): shaped(v.SMS_FIELDS),
    ("POST", "/v1/case_lists"): shaped(v.CASE_LIST_FIELDS),
    ("POST", "/v1/case_lists/bulk"): st.fixed_dictionaries(
        {"lists": st.lists(shaped(v.CASE_LIST_FIELDS, True), max_size=2)}
    ),
    ("POST", "/v1/campaigns"): shaped(v.CAMPAIGN_FIELDS),
    ("POST", "/v1/calls"): shaped(v.CALL_FIELDS),
    ("DELETE", "/v1/clients/3"): st.none(),
}


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedEmulator]:
    with ThreadedEmulator("k", limit=0) as emu:
        yield emu


def check_store(store: dict[str, Any]) -> None:
    """Links mirror each other and point at records that exist; unique keys are unique."""
    clients = {client["id"]: client for client in store["clients"]}
    cases = {case["id"]: case for case in store["cases"]}
    for client in clients.values():
        for case_id in client["case_ids"]:
            assert client["id"] in cases[case_id]["client_ids"]
    for case in cases.values():
        for client_id in case["client_ids"]:
            assert case["id"] in clients[client_id]["case_ids"]
    for case_list in store["case_lists"]:
        assert set(case_list["case_ids"]) <= set(cases)
    for records in (clients.values(), cases.values()):
        keys = [(r["external_source"], r["external_source_id"]) for r in records]
        assert len(keys) == len(set(keys))
    assert len({case["case_number"] for case in cases.values()}) == len(cases)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(sorted(ROUTES)), data=st.data())
def test_random_requests_never_fail(server: ThreadedEmulator, route: tuple[str, str], data: st.DataObject) -> None:
    """Any body on any route gets 200, 400, 404 or 413 with a JSON body, and the store stays consistent."""
    method, path = route
    body = data.draw(ROUTES[route])
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, body=payload, headers={"X-API-KEY": "k", "X-Public-Api-Key": "k"})
        response = connection.getresponse()
        status, reply = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status in (200, 400, 404), (method, path, body, reply)
    if status != 200:
        assert set(reply) == {"message", "field"}
    check_store(server.snapshot())
