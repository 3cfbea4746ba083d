"""Fuzzed input: every payload gives a ValidationError naming a bad field and no request, or exactly the right request.

The transport's ``request`` is replaced by a recorder that answers as the
API would, so each example costs no socket; every body the SDK chose to send
is also checked against the emulator's own request rules (the server side of
the shared decisions): the SDK never sends what the server would refuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kayse_async import AsyncKayse, errors
from kayse_async._wire.protocol import Request, Response
from kayse_async._wire.ratelimit import RateLimitInfo
from kayse_async.models import BulkItem, BulkResult
from kayse_async.quota import MemoryQuota
from kayse_async.testing import _validation as server_rules

from .strategies import CALL, CAMPAIGN, CASE, CASE_LIST, CLIENT, EMAIL, MAX_INT, SMS, Drawn, payload

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
UNKNOWN = "x_new_field"


def _echo(request: Request) -> Any:
    """What the API answers to a request the SDK sent (the body echoed, with ids)."""
    body = request.json
    path = request.path
    if path.endswith("/bulk_delete"):
        return {"deleted_ids": list(body["ids"])}
    if path.endswith("/communication/sms"):
        return {"message": "sms scheduled"}
    if path.endswith("/communication/email"):
        return {"message": "email scheduled"}
    if path == "/v1/calls":
        return {"campaign_id": body["campaign_id"], "client_id": None, "case_id": body["case_id"]}
    if path == "/v1/case_lists/bulk":
        return {
            "lists": [
                {"id": item.get("id", 1), "action": "updated" if "id" in item else "created"} for item in body["lists"]
            ]
        }
    if path.endswith("/bulk"):
        key = path.split("/")[2]
        return {key: [{**item, "id": item.get("id") or 10_000 + n} for n, item in enumerate(body[key])]}
    match = re.fullmatch(r"/v1/\w+/(\d+)", path)
    return {**body, "id": int(match.group(1)) if match else 1}


class Recorder:
    """Stands in for ``Transport.request``: records every request, answers as the API would."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def request(self, request: Request, *, max_wait: float | None = None) -> Response:
        self.requests.append(request)
        # Through JSON, as the answer would travel: plain types only.
        data = json.loads(json.dumps(_echo(request)))
        return Response(status=200, data=data, rate_limit=RateLimitInfo())


async def run(call: Callable[[AsyncKayse], Awaitable[Any]]) -> tuple[Any, list[Request]]:
    """Run ``call`` on a fresh client whose transport records; return its result (or ValidationError) and requests."""
    recorder = Recorder()
    kayse = AsyncKayse("k-fuzz", base_url="https://api.example.test", quota=MemoryQuota(limit=10**6, period=1.0))
    kayse._transport.request = recorder.request  # type: ignore[method-assign]
    async with kayse:
        try:
            return await call(kayse), recorder.requests
        except errors.ValidationError as exc:
            return exc, recorder.requests


def _base(field: str) -> str:
    """The top-level field of an error's field path (``meta.x`` -> ``meta``, ``clients[3].city`` -> ``city``)."""
    field = re.sub(r"^(clients|cases|lists)\[\d+\]\.", "", field)
    return re.split(r"[.\[]", field, maxsplit=1)[0]


def _canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True)


def _server_accepts(body: dict[str, Any], rules: Callable[[dict[str, Any]], Any]) -> None:
    """The emulator's rules accept the body (fields the emulator does not know are left out)."""
    known = {k: v for k, v in body.items() if k != UNKNOWN}
    try:
        rules(known)
    except server_rules.Reject as reject:
        pytest.fail(f"the SDK sent a body the server refuses: {reject.body()}")


def check_single(drawn: Drawn, outcome: Any, requests: list[Request], method: str, path: str, rules: Any) -> None:
    """A single-item call: refused with a named bad field and nothing sent, or sent exactly as expected."""
    if drawn.bad:
        assert isinstance(outcome, errors.ValidationError), f"accepted invalid input {sorted(drawn.bad)}"
        assert _base(outcome.field) in drawn.bad, f"error names {outcome.field!r}, bad fields are {sorted(drawn.bad)}"
        assert requests == [], "a request was sent for invalid input"
        return
    assert not isinstance(outcome, errors.ValidationError), f"refused valid input: {outcome}"
    assert [(r.method, r.path) for r in requests] == [(method, path)]
    assert requests[0].json == drawn.expected
    _server_accepts(requests[0].json, rules)


@FUZZ
@given(payload(CLIENT))
async def test_client_create(drawn: Drawn) -> None:
    """clients.create: any payload gives a ValidationError naming a bad field, or exactly the right POST."""
    outcome, requests = await run(lambda k: k.clients.create(**drawn.fields))
    check_single(drawn, outcome, requests, "POST", "/v1/clients", lambda b: server_rules.check_client(b, require=True))


@FUZZ
@given(payload(CLIENT, mode="update"), st.integers(1, MAX_INT))
async def test_client_update(drawn: Drawn, client_id: int) -> None:
    """clients.update: a full replacement (optional fields left out go as null), or a ValidationError."""
    outcome, requests = await run(lambda k: k.clients.update(client_id, **drawn.fields))
    path = f"/v1/clients/{client_id}"
    check_single(drawn, outcome, requests, "PUT", path, lambda b: server_rules.check_client(b, require=False))


@FUZZ
@given(payload(CASE))
async def test_case_create(drawn: Drawn) -> None:
    """cases.create: a ValidationError naming a bad field, or exactly the right POST."""
    outcome, requests = await run(lambda k: k.cases.create(**drawn.fields))
    check_single(drawn, outcome, requests, "POST", "/v1/cases", lambda b: server_rules.check_case(b, require=True))


@FUZZ
@given(payload(CASE, mode="update"), st.integers(1, MAX_INT))
async def test_case_update(drawn: Drawn, case_id: int) -> None:
    """cases.update: a full replacement, or a ValidationError."""
    outcome, requests = await run(lambda k: k.cases.update(case_id, **drawn.fields))
    path = f"/v1/cases/{case_id}"
    check_single(drawn, outcome, requests, "PUT", path, lambda b: server_rules.check_case(b, require=False))


@FUZZ
@given(payload(CASE_LIST))
async def test_case_list_create(drawn: Drawn) -> None:
    """case_lists.create: a ValidationError naming a bad field, or exactly the right POST."""
    outcome, requests = await run(lambda k: k.case_lists.create(**drawn.fields))
    rules = lambda b: server_rules.check_case_list(b, require=True)  # noqa: E731
    check_single(drawn, outcome, requests, "POST", "/v1/case_lists", rules)


@FUZZ
@given(payload(CAMPAIGN))
async def test_campaign_create(drawn: Drawn) -> None:
    """campaigns.create: a ValidationError naming a bad field, or exactly the right POST."""
    outcome, requests = await run(lambda k: k.campaigns.create(**drawn.fields))
    rules = lambda b: server_rules.check_fields(b, server_rules.CAMPAIGN_FIELDS, require=True)  # noqa: E731
    check_single(drawn, outcome, requests, "POST", "/v1/campaigns", rules)


@pytest.mark.parametrize(
    ("field", "value"),
    [("case_list_id", 0), ("case_list_id", -4), ("send_sms_before_call_delay_minutes", -1)],
)
async def test_campaign_integers_of_the_wrong_sign_are_refused_before_sending(field: str, value: int) -> None:
    """A campaign's case_list_id must be a positive id and its delay minutes not negative: refused locally."""
    fields: dict[str, Any] = {
        "name": "n",
        "agent_id": "a",
        "case_list_id": 1,
        "send_sms_before_call": False,
        "sms_before_call_text": "t",
        field: value,
    }
    outcome, requests = await run(lambda k: k.campaigns.create(**fields))
    assert requests == []
    assert isinstance(outcome, errors.ValidationError)
    assert outcome.field == field


def _message_call(table: dict[str, Any]) -> Any:
    return payload(table, unknown=False).filter(lambda d: set(d.fields) == set(table))


@FUZZ
@given(_message_call(SMS))
async def test_send_sms(drawn: Drawn) -> None:
    """cases.send_sms: a ValidationError naming the bad argument, or exactly one POST (never two)."""
    outcome, requests = await run(lambda k: k.cases.send_sms(**drawn.fields))
    rules = lambda b: server_rules.check_fields(b, server_rules.SMS_FIELDS, require=True)  # noqa: E731
    check_single(drawn, outcome, requests, "POST", "/v1/cases/communication/sms", rules)


@FUZZ
@given(_message_call(EMAIL))
async def test_send_email(drawn: Drawn) -> None:
    """cases.send_email: a ValidationError naming the bad argument, or exactly one POST."""
    outcome, requests = await run(lambda k: k.cases.send_email(**drawn.fields))
    rules = lambda b: server_rules.check_fields(b, server_rules.EMAIL_FIELDS, require=True)  # noqa: E731
    check_single(drawn, outcome, requests, "POST", "/v1/cases/communication/email", rules)


@FUZZ
@given(_message_call(CALL))
async def test_schedule_call(drawn: Drawn) -> None:
    """calls.schedule: a ValidationError naming the bad argument, or exactly one POST to the calls host."""
    outcome, requests = await run(lambda k: k.calls.schedule(**drawn.fields))
    rules = lambda b: server_rules.check_fields(b, server_rules.CALL_FIELDS, require=True)  # noqa: E731
    check_single(drawn, outcome, requests, "POST", "/v1/calls", rules)
    if not drawn.bad:
        assert requests[0].host == "calls"


_bad_ids = st.sampled_from([0, -1, True, 1.0, "5", MAX_INT + 1])
"""Ids that are not positive 64-bit integers (an id of None is no id: the item is a create)."""


@st.composite
def bulk_items(draw: st.DrawFn, table: dict[str, Any]) -> list[tuple[Any, Drawn, bool]]:
    """1 to 12 bulk items, creates and updates, each with its verdict; (item, drawn, id_ok)."""
    out: list[tuple[Any, Drawn, bool]] = []
    used: set[int] = set()
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            drawn = draw(payload(table))
            out.append((dict(drawn.fields), drawn, True))
            continue
        drawn = draw(payload(table, mode="update"))
        if draw(st.integers(0, 6)) == 0:
            item_id, id_ok = draw(_bad_ids), False
        else:
            item_id = draw(st.integers(1, MAX_INT).filter(lambda i: i not in used))
            used.add(item_id)
            id_ok = True
        out.append(({"id": item_id, **drawn.fields}, drawn, id_ok))
    return out


async def check_bulk(
    resource: str, items: list[tuple[Any, Drawn, bool]], chunk_size: int, rules: Any, container: str | None = None
) -> None:
    """Bad items are rejected locally (named by index); good ones are sent, each once, exactly as expected."""
    container = container or resource

    async def call(kayse: AsyncKayse) -> Any:
        target = getattr(kayse, resource)
        given = [item for item, _, _ in items]
        if resource == "case_lists":
            # This route's bulk_upsert raises BulkError, carrying the whole result, when any item fails.
            try:
                await target.bulk_upsert(given, chunk_size=chunk_size)
            except errors.BulkError as exc:
                return exc.result
            return BulkResult(items=[BulkItem(index=i, status="succeeded") for i in range(len(given))])
        return await target.bulk_upsert(given, chunk_size=chunk_size, raise_on_error=False)

    result, requests = await run(call)
    assert not isinstance(result, errors.ValidationError), f"bulk_upsert raised {result}"
    assert [item.index for item in result.items] == list(range(len(items)))
    sent: list[dict[str, Any]] = []
    for request in requests:
        assert (request.method, request.path) == ("POST", f"/v1/{resource}/bulk")
        assert 1 <= len(request.json[container]) <= chunk_size
        sent += request.json[container]
    wanted: list[dict[str, Any]] = []
    for index, ((item, drawn, id_ok), outcome) in enumerate(zip(items, result.items, strict=True)):
        if drawn.bad or not id_ok:
            assert outcome.status == "rejected", f"item {index} with bad {sorted(drawn.bad)} was {outcome.status}"
            assert isinstance(outcome.error, errors.ValidationError)
            assert outcome.error.field.startswith(f"{container}[{index}]"), outcome.error.field
            if id_ok:
                assert _base(outcome.error.field) in drawn.bad, outcome.error.field
            continue
        assert outcome.status == "succeeded", f"valid item {index}: {outcome.error}"
        body = dict(drawn.expected) if "id" not in item else {"id": item["id"], **drawn.expected}
        wanted.append(body)
    assert sorted(map(_canonical, sent)) == sorted(map(_canonical, wanted)), "the bodies sent are not the valid items"
    for body in sent:
        rest = {k: v for k, v in body.items() if k != "id"}
        _server_accepts(rest, lambda b, has_id="id" in body: rules(b, require=not has_id))


@FUZZ
@given(bulk_items(CLIENT), st.integers(1, 5))
async def test_clients_bulk_upsert(items: list[tuple[Any, Drawn, bool]], chunk_size: int) -> None:
    """clients.bulk_upsert: each bad item rejected by index, the good ones sent once each, in chunks."""
    await check_bulk("clients", items, chunk_size, server_rules.check_client)


@FUZZ
@given(bulk_items(CASE), st.integers(1, 5))
async def test_cases_bulk_upsert(items: list[tuple[Any, Drawn, bool]], chunk_size: int) -> None:
    """cases.bulk_upsert: each bad item rejected by index, the good ones sent once each, in chunks."""
    await check_bulk("cases", items, chunk_size, server_rules.check_case)


@FUZZ
@given(bulk_items(CASE_LIST), st.integers(1, 5))
async def test_case_lists_bulk_upsert(items: list[tuple[Any, Drawn, bool]], chunk_size: int) -> None:
    """case_lists.bulk_upsert: each bad item rejected by index, the good ones sent once each, in chunks."""
    await check_bulk("case_lists", items, chunk_size, server_rules.check_case_list, container="lists")


@FUZZ
@given(
    st.lists(st.integers(1, MAX_INT) | st.integers(1, 30), max_size=40),
    st.one_of(st.none(), st.tuples(st.integers(0, 40), _bad_ids)),
)
async def test_bulk_delete_ids(ids: list[int], spoil: tuple[int, Any] | None) -> None:
    """cases.bulk_delete: any bad id is named by its place and nothing is sent; else unique ids in chunks of 500."""
    given_ids: list[Any] = list(ids)
    bad_at = None
    if spoil is not None:
        bad_at = min(spoil[0], len(given_ids))
        given_ids.insert(bad_at, spoil[1])
    outcome, requests = await run(lambda k: k.cases.bulk_delete(given_ids))
    if bad_at is not None or not given_ids:
        assert isinstance(outcome, errors.ValidationError)
        assert outcome.field == (f"ids[{bad_at}]" if bad_at is not None else "ids")
        assert requests == []
        return
    unique = list(dict.fromkeys(ids))
    assert outcome == unique
    assert [i for r in requests for i in r.json["ids"]] == unique
    assert all(len(r.json["ids"]) <= 500 for r in requests)


async def test_bulk_delete_a_million_ids() -> None:
    """10^6 ids: 2,000 requests of 500 unique ids each, every id once; a bad last id stops all before sending."""
    ids = list(range(1, 1_000_001))
    outcome, requests = await run(lambda k: k.cases.bulk_delete(ids))
    assert len(requests) == 2000
    assert all(len(r.json["ids"]) == 500 for r in requests)
    seen = [i for r in requests for i in r.json["ids"]]
    assert len(seen) == len(set(seen)) == 1_000_000
    assert outcome == ids

    spoiled: list[Any] = [*ids[:-1], "1000000"]
    outcome, requests = await run(lambda k: k.cases.bulk_delete(spoiled))
    assert isinstance(outcome, errors.ValidationError)
    assert outcome.field == "ids[999999]"
    assert requests == []


@pytest.mark.parametrize("bad", ["12", 12, None, {"ids": [1]}, b"\x01\x02", 3.5])
async def test_bulk_delete_refuses_what_is_not_a_list_of_ids(bad: Any) -> None:
    """A string, a number, a mapping or bytes in place of the id list: ValidationError on ids, nothing sent."""
    outcome, requests = await run(lambda k: k.cases.bulk_delete(bad))
    assert isinstance(outcome, errors.ValidationError)
    assert outcome.field.startswith("ids")
    assert requests == []


@FUZZ
@given(st.one_of(st.integers(max_value=0), st.integers(min_value=MAX_INT + 1), st.sampled_from([True, 1.0, "1", None])))
async def test_bad_ids_in_the_path_are_refused(bad: Any) -> None:
    """get / update / patch / delete with an id that is not a positive 64-bit integer: ValidationError, nothing sent."""
    for method in ("get", "delete"):
        outcome, requests = await run(lambda k, m=method: getattr(k.clients, m)(bad))
        assert isinstance(outcome, errors.ValidationError)
        assert requests == []
    outcome, requests = await run(lambda k: k.cases.patch(bad, name="x"))
    assert isinstance(outcome, errors.ValidationError)
    assert requests == []
