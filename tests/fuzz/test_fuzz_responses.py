"""Malformed server responses: a clear KayseError within the time-out, never a crash, never a silent wrong value.

A field of an unexpected type is no error (the request took effect): it is kept as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kayse_async import AsyncKayse, errors, models
from kayse_async._wire.protocol import decipher, structure_response
from kayse_async.models import Case, Client
from kayse_async.quota import MemoryQuota

from .servers import Reply, serve

TIMEOUT = 1.0
"""The client's per-attempt time-out in these tests (seconds)."""
SLACK = 1.5
"""How much longer than the time-out a failure may take to surface (loaded CI machines)."""
CLIENT = {"external_source": "m", "external_source_id": "e", "first_name": "A", "last_name": "B"}


def _raw(status: int, body: bytes, content_type: str = "application/json", **headers: str) -> Reply:
    async def reply(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type=content_type, headers=headers)

    return reply


async def _short_body(request: web.Request) -> web.StreamResponse:
    """Promises 1000 bytes, sends 20, closes."""
    response = web.StreamResponse(status=200, headers={"Content-Length": "1000", "Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"id": 1, "first_na')
    assert request.transport is not None
    request.transport.close()
    return response


async def _slow_loris(request: web.Request) -> web.StreamResponse:
    """Headers at once, then one byte every 50 ms, forever."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b"{")
    while True:
        await asyncio.sleep(0.05)
        await response.write(b" ")


async def _silent(_request: web.Request) -> web.StreamResponse:
    """Never answers."""
    await asyncio.sleep(3600)
    return web.Response()


async def _huge(request: web.Request) -> web.StreamResponse:
    """A 65 MiB JSON string, streamed without a length."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"first_name": "')
    block = b"x" * (1 << 20)
    for _ in range(65):
        await response.write(block)
    await response.write(b'"}')
    return response


async def _huge_declared(request: web.Request) -> web.StreamResponse:
    """Declares a terabyte, then sends a few bytes and hangs."""
    response = web.StreamResponse(status=200, headers={"Content-Length": str(10**12)})
    await response.prepare(request)
    await response.write(b"{}")
    await asyncio.sleep(3600)
    return response


@pytest.fixture
async def kayse_for() -> AsyncIterator[Callable[[Reply], Any]]:
    """Start a server answering with a reply, and a client of it (time-out 1 s, no retries)."""
    stack: list[Any] = []

    async def start(reply: Reply) -> AsyncKayse:
        server_cm = serve(reply)
        url = await server_cm.__aenter__()
        stack.append(server_cm)
        kayse = AsyncKayse(
            "k-resp", base_url=url, timeout=TIMEOUT, max_retries=0, quota=MemoryQuota(limit=10**6, period=1.0)
        )
        stack.append(kayse)
        return kayse

    yield start
    for item in reversed(stack):
        if isinstance(item, AsyncKayse):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


MALFORMED: list[tuple[str, Reply, type[errors.KayseError], str]] = [
    (
        "html-500",
        _raw(500, b"<html><h1>Internal Server Error</h1></html>", "text/html"),
        errors.InternalServerError,
        "Internal",
    ),
    ("html-200", _raw(200, b"<!doctype html><title>Login</title>", "text/html"), errors.APIError, "not valid JSON"),
    ("truncated-json", _raw(200, b'{"id": 1, "first_name": "A'), errors.APIError, "not valid JSON"),
    ("invalid-utf8", _raw(200, b'{"first_name": "\xff\xfe"}'), errors.APIError, "not valid JSON"),
    ("array-not-object", _raw(200, b"[1, 2, 3]"), errors.ResponseFormatError, "unexpected response"),
    ("null", _raw(200, b"null"), errors.ResponseFormatError, "unexpected response"),
    ("number", _raw(200, b"42"), errors.ResponseFormatError, "unexpected response"),
    ("id-not-a-number", _raw(200, b'{"id": "abc"}'), errors.ResponseFormatError, "integer id"),
    ("nested-too-deep", _raw(200, b"[" * 100_000 + b"]" * 100_000), errors.APIError, "JSON"),
    ("error-nested-too-deep", _raw(500, b"[" * 100_000 + b"]" * 100_000), errors.InternalServerError, ""),
    ("empty-error", _raw(503, b""), errors.ServiceUnavailableError, "empty"),
    ("teapot", _raw(418, b'{"message": "I am a teapot"}'), errors.APIError, "teapot"),
    ("short-body", _short_body, errors.ConnectError, ""),
    ("slow-loris", _slow_loris, errors.RequestTimeoutError, "within"),
    ("silent", _silent, errors.RequestTimeoutError, "within"),
    ("huge-body", _huge, errors.APIError, "larger than"),
    ("huge-declared", _huge_declared, errors.APIError, "larger than"),
]


@pytest.mark.parametrize(
    ("name", "reply", "expected", "says"),
    MALFORMED,
    ids=[case[0] for case in MALFORMED],
)
async def test_a_malformed_response_gives_a_clear_error_in_time(
    kayse_for: Callable[[Reply], Awaitable[AsyncKayse]],
    name: str,
    reply: Reply,
    expected: type[errors.KayseError],
    says: str,
) -> None:
    """Each malformed answer to a GET raises its KayseError, saying what was wrong, within the time-out."""
    kayse = await kayse_for(reply)
    started = time.monotonic()
    with pytest.raises(expected) as caught:
        await kayse.clients.get(1)
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + SLACK, f"{name} took {elapsed:.1f} s"
    assert says.lower() in str(caught.value).lower()
    assert len(str(caught.value)) < 2000, "the error message is not an excerpt"


async def test_a_create_whose_answer_is_cut_is_uncertain_not_retried(
    kayse_for: Callable[[Reply], Awaitable[AsyncKayse]],
) -> None:
    """A create whose response body is cut: ConnectError that says it may have been sent; one attempt only."""
    calls: list[int] = []

    async def counted(request: web.Request) -> web.StreamResponse:
        calls.append(1)
        return await _short_body(request)

    kayse = await kayse_for(counted)
    kayse._transport._max_retries = 3
    with pytest.raises(errors.ConnectError) as caught:
        await kayse.clients.create(**CLIENT)
    assert caught.value.may_have_been_sent is True
    assert calls == [1]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"clients": "x"}, "not a list"),
        ({"clients": []}, "fewer items than sent"),
        ({"clients": [{"id": 1, **CLIENT}]}, "fewer items than sent"),
        ({"items": []}, "wrong key"),
        ({"clients": [{"id": "x"}, {"id": "y"}]}, "items of the wrong shape"),
    ],
)
async def test_a_malformed_bulk_answer_never_reports_items_as_stored(
    kayse_for: Callable[[Reply], Awaitable[AsyncKayse]], body: Any, why: str
) -> None:
    """A 200 to a bulk create whose body does not account for every item: those items are uncertain, not succeeded."""
    kayse = await kayse_for(_raw(200, json.dumps(body).encode()))
    items = [CLIENT, {**CLIENT, "external_source_id": "e2"}]
    result = await kayse.clients.bulk_upsert(items, raise_on_error=False)
    assert len(result.items) == 2
    unaccounted = [item for item in result.items if item.status != "succeeded"]
    assert unaccounted, f"{why}: every item reported stored"
    assert all(item.status == "uncertain" for item in unaccounted), [i.status for i in result.items]
    assert all(isinstance(item.error, errors.KayseError) for item in unaccounted)


@pytest.mark.parametrize("body", [{"deleted_ids": "1"}, {"deleted_ids": ["a"]}, {"gone": [1]}, [1]])
async def test_a_malformed_bulk_delete_answer_is_a_bulk_error(
    kayse_for: Callable[[Reply], Awaitable[AsyncKayse]], body: Any
) -> None:
    """bulk_delete answered with a body that is not ``{"deleted_ids": [int...]}``: BulkError, items uncertain."""
    kayse = await kayse_for(_raw(200, json.dumps(body).encode()))
    with pytest.raises(errors.BulkError) as caught:
        await kayse.cases.bulk_delete([1, 2])
    assert {item.status for item in caught.value.result.items} == {"uncertain"}


UNUSABLE = [
    ({"id": 1.7}, "a fractional id would be cut to 1"),
    ({"id": True}, "true would read as id 1"),
    ({"id": "7"}, "a string id would be taken for the item asked"),
    ({"first_name": "A"}, "a client without an id would be returned as if stored"),
]


@pytest.mark.parametrize(("data", "why"), UNUSABLE, ids=[w[1][:30] for w in UNUSABLE])
async def test_an_answer_without_an_integer_id_is_a_response_format_error(
    kayse_for: Callable[[Reply], Awaitable[AsyncKayse]], data: dict[str, Any], why: str
) -> None:
    """A client answered without an integer id cannot be used: ResponseFormatError (an APIError) with the status."""
    kayse = await kayse_for(_raw(200, json.dumps(data).encode()))
    with pytest.raises(errors.ResponseFormatError, match="integer id") as caught:
        await kayse.clients.get(1)
    assert caught.value.status == 200
    assert caught.value.body == data


@pytest.mark.parametrize(
    "create",
    [
        lambda kayse: kayse.clients.create(**CLIENT),
        lambda kayse: kayse.cases.create(
            case_number="c", external_source="m", external_source_id="e", status="s", type="t"
        ),
        lambda kayse: kayse.case_lists.create(name="n"),
    ],
    ids=["client", "case", "case-list"],
)
async def test_a_create_answered_without_an_id_is_a_response_format_error_sent_once(
    kayse_for: Callable[[Reply], Awaitable[AsyncKayse]], create: Callable[[AsyncKayse], Awaitable[Any]]
) -> None:
    """A 201 to a create whose object has no id cannot be used: ResponseFormatError with status 201, one request."""
    calls: list[int] = []

    async def reply(_request: web.Request) -> web.StreamResponse:
        calls.append(1)
        return web.json_response({"name": "n", "first_name": "A"}, status=201)

    kayse = await kayse_for(reply)
    with pytest.raises(errors.ResponseFormatError, match="integer id") as caught:
        await create(kayse)
    assert caught.value.status == 201
    assert caught.value.body == {"name": "n", "first_name": "A"}
    assert calls == [1]


WRONG_TYPES = [
    ({"id": 1, "case_ids": "12"}, "case_ids", "a string where a list of ids belongs would read as [1, 2]"),
    ({"id": 1, "case_ids": [1, "2"]}, "case_ids", "a string id in the list would read as 2"),
    ({"id": 1, "voice_calls_opted_out": "false"}, "voice_calls_opted_out", "the string 'false' would read as True"),
    ({"id": 1, "first_name": {"a": 1}}, "first_name", "an object where a name belongs would be turned into its repr"),
    ({"id": 1, "date_of_birth": "soon"}, "date_of_birth", "a date that is not one would be an error"),
    ({"id": 1, "meta": [1]}, "meta", "an array where an object belongs would be an error"),
]


@pytest.mark.parametrize(("data", "field", "why"), WRONG_TYPES, ids=[w[2][:30] for w in WRONG_TYPES])
async def test_a_field_of_the_wrong_type_is_kept_as_sent_never_converted(
    kayse_for: Callable[[Reply], Awaitable[AsyncKayse]], data: dict[str, Any], field: str, why: str
) -> None:
    """A field of the wrong JSON type in an answer: the model is returned, the value kept as sent in extra."""
    kayse = await kayse_for(_raw(200, json.dumps(data).encode()))
    client = await kayse.clients.get(1)
    assert getattr(client, field) is None, why
    assert client.extra == {field: data[field]}, why
    assert client.to_dict()[field] == data[field], why


async def test_an_answer_of_unexpected_types_after_a_side_effect_is_returned_not_raised() -> None:
    """A call (case_id "3"), a campaign (case_list_id "123", days "Monday", agent id "abc"): one request each."""
    campaign = {"id": 4, "name": "n", "case_list_id": "123", "days": "Monday", "agent": {"id": "abc"}}
    answers = {"/v1/calls": {"campaign_id": 4, "client_id": 5, "case_id": "3"}, "/v1/campaigns": campaign}
    paths: list[str] = []

    async def reply(request: web.Request) -> web.StreamResponse:
        paths.append(request.path)
        return web.json_response(answers[request.path], status=201)

    async with serve(reply) as url:
        quota = MemoryQuota(limit=10**6, period=1.0)
        async with AsyncKayse("k", base_url=url, calls_base_url=url, quota=quota, max_retries=0) as kayse:
            call = await kayse.calls.schedule(campaign_id=4, case_id=3)
            made = await kayse.campaigns.create(
                name="n", agent_id="a", case_list_id=123, send_sms_before_call=False, sms_before_call_text="t"
            )
    assert paths == ["/v1/calls", "/v1/campaigns"]
    assert (call.campaign_id, call.client_id, call.case_id) == (4, 5, "3")
    assert (made.case_list_id, made.days, made.agent) == ("123", None, models.Agent(id="abc"))
    assert made.extra == {"days": "Monday"}


_statuses = st.sampled_from([200, 201, 204, 400, 401, 404, 405, 429, 500, 502, 503, 504, 599])
_headers = st.dictionaries(
    st.sampled_from(["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After", "Date"]),
    st.text(max_size=12) | st.integers(-(10**12), 10**12).map(str),
    max_size=5,
)
_bodies = (
    st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=15,
    ).map(lambda v: json.dumps(v).encode())
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_statuses, _headers, _bodies)
def test_any_answer_deciphers_to_data_or_a_kayse_error(status: int, headers: dict[str, str], body: bytes) -> None:
    """Sans-I/O: any status, rate-limit headers and body give a Response or an APIError; structuring likewise."""
    if status >= 300:
        with pytest.raises(errors.APIError) as caught:
            decipher(status, headers, body, method="GET", url="/v1/cases/1")
        assert caught.value.status == status
        return
    try:
        response = decipher(status, headers, body, method="GET", url="/v1/cases/1")
    except errors.APIError as exc:
        refused = exc.message
    else:
        refused = None
    if refused is not None:
        assert "not valid JSON" in refused
        return
    for model in (Client, Case):
        with contextlib.suppress(errors.APIError):
            structure_response(response.data, model, method="GET", url="/v1/cases/1")


@pytest.mark.parametrize("reset", ["253402300800", "1e308", "99999999999999999999999", "-1", "nan", "inf"])
@pytest.mark.parametrize("status", [200, 429, 503])
def test_absurd_rate_limit_headers_are_no_crash(reset: str, status: int) -> None:
    """A Reset far past year 9999, huge, negative or not a number, with no Date: data or the status's error."""
    headers = {"X-RateLimit-Reset": reset, "Retry-After": reset, "X-RateLimit-Remaining": reset}
    if status == 200:
        assert decipher(status, headers, b"[]", method="GET", url="/v1/campaigns").data == []
        return
    with pytest.raises(errors.APIError) as caught:
        decipher(status, headers, b"", method="GET", url="/v1/campaigns")
    assert caught.value.status == status
