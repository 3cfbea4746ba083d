"""What the resources put on the wire: PUT bodies, unknown names, extras, check() and schema(), case list pages.

A small aiohttp server on a loopback socket records every request and answers
as told, so that each test sees exactly what the SDK sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web

from kayse_async import AsyncKayse, Kayse, errors, models
from kayse_async._wire.protocol import Request

KEY = "k-requests-0123456789"


@attrs.frozen
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Answer = Callable[[Seen], Any]


class Recorder:
    """A server that records requests and answers with ``answer(seen)`` (echo with an id by default)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.answer: Answer = lambda seen: {"id": 1, **(seen.body or {})}
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        seen = Seen(
            request.method,
            request.path,
            dict(request.query),
            {name.lower(): value for name, value in request.headers.items()},
            json.loads(raw) if raw else None,
        )
        self.seen.append(seen)
        return web.json_response(self.answer(seen))


@pytest.fixture
async def server() -> AsyncIterator[Recorder]:
    """A recording server on 127.0.0.1, on a free port."""
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recorder.url = f"http://127.0.0.1:{port}"
    yield recorder
    await runner.cleanup()


@pytest.fixture
async def kayse(server: Recorder) -> AsyncIterator[AsyncKayse]:
    """A client of the recording server."""
    async with AsyncKayse(KEY, base_url=server.url, calls_base_url=server.url) as client:
        yield client


STORED_CLIENT = {
    "id": 5,
    "email": "a@b.c",
    "external_source": "m",
    "external_source_id": "e",
    "first_name": "Ann",
    "last_name": "Lee",
    "gender": "female",
    "city": "Austin",
    "voice_calls_opted_out": True,
    "case_ids": [1],
    "tier": "gold",
}
"""A client as the server returns it: opted out of AI calls, with a field this SDK does not know."""


async def test_update_sends_no_null_outside_the_put_table(kayse: AsyncKayse, server: Recorder) -> None:
    """update(): null for the PUT table's optional fields left out, nothing for the opt-out flags and gender."""
    await kayse.clients.update(5, city="Boston")
    await kayse.cases.update(6, status="closed")
    client, case = server.seen[0].body, server.seen[1].body
    assert client["city"] == "Boston"
    assert client["email"] is None
    assert client["case_ids"] is None
    assert "voice_calls_opted_out" not in client
    assert "gender" not in client
    assert case["status"] == "closed"
    assert case["court_date"] is None
    assert "client_ids" not in case
    assert "opt_out_voice_calls" not in case


async def test_patch_sends_back_the_put_table_and_keeps_the_rest_as_stored(kayse: AsyncKayse, server: Recorder) -> None:
    """patch(): GET, then a PUT of the PUT table's fields with the change, unknown fields, and no opt-out flag."""
    server.answer = lambda seen: STORED_CLIENT if seen.method == "GET" else {**STORED_CLIENT, **seen.body}
    patched = await kayse.clients.patch(5, city="Boston")
    assert [(seen.method, seen.path) for seen in server.seen] == [("GET", "/v1/clients/5"), ("PUT", "/v1/clients/5")]
    body = server.seen[1].body
    assert body["city"] == "Boston"
    assert body["email"] == "a@b.c"
    assert body["case_ids"] == [1]
    assert body["tier"] == "gold"  # a field the server added survives
    assert "voice_calls_opted_out" not in body
    assert "gender" not in body
    assert patched.voice_calls_opted_out is True


async def test_bulk_items_with_an_id_send_no_null_outside_the_put_table(kayse: AsyncKayse, server: Recorder) -> None:
    """A bulk item with an id follows the PUT rules: no null for the opt-out flags it leaves out."""
    server.answer = lambda seen: {"clients": [{**item, "id": item.get("id", 9)} for item in seen.body["clients"]]}
    result = await kayse.clients.bulk_upsert([{"id": 5, "city": "Boston"}, models.Client(id=6, last_name="Lee")])
    assert result.ok
    first, second = server.seen[0].body["clients"]
    assert first["id"] == 5
    assert first["email"] is None
    assert "voice_calls_opted_out" not in first
    assert second["last_name"] == "Lee"
    assert "voice_calls_opted_out" not in second
    assert "gender" not in second


async def test_unknown_keywords_are_refused_before_anything_is_sent(kayse: AsyncKayse, server: Recorder) -> None:
    """A misspelt keyword is a ValidationError naming it, from create, update and patch alike: no request."""
    calls = [
        lambda: kayse.clients.create(frist_name="Ann", last_name="Lee", external_source="m", external_source_id="e"),  # type: ignore[call-arg]
        lambda: kayse.clients.update(5, citty="Boston"),  # type: ignore[call-arg]
        lambda: kayse.cases.patch(5, stauts="closed"),  # type: ignore[call-arg]
        lambda: kayse.campaigns.create(nmae="x"),  # type: ignore[call-arg]
    ]
    for call in calls:
        with pytest.raises(errors.ValidationError, match="is not a field of"):
            await call()
    assert server.seen == []


async def test_extra_body_query_and_headers_reach_the_server(kayse: AsyncKayse, server: Recorder) -> None:
    """The extras travel as given, beside the checked fields, and the API key header stays the client's."""
    await kayse.case_lists.create(
        name="L", extra_body={"color": "red"}, extra_query={"trace": "1"}, extra_headers={"X-Trace-Id": "t-1"}
    )
    seen = server.seen[0]
    assert seen.body == {"name": "L", "color": "red"}
    assert seen.query == {"trace": "1"}
    assert seen.headers["x-trace-id"] == "t-1"
    assert seen.headers["x-api-key"] == KEY
    for headers in ({"X-API-KEY": "other"}, {"x-public-api-key": "other"}):
        with pytest.raises(errors.ValidationError, match="API key headers") as info:
            await kayse.clients.update(5, city="B", extra_headers=headers)
        assert info.value.field == f"extra_headers.{next(iter(headers))}"
    assert len(server.seen) == 1


async def test_the_transport_never_lets_extra_headers_replace_the_key(kayse: AsyncKayse, server: Recorder) -> None:
    """Even a request that carries a key header of its own goes out with the client's key, once."""
    await kayse._transport.request(Request(method="GET", path="/v1/x", headers={"x-api-key": "evil", "X-A": "b"}))
    assert server.seen[0].headers["x-api-key"] == KEY
    assert server.seen[0].headers["x-a"] == "b"


async def test_check_and_schema_send_nothing(kayse: AsyncKayse, server: Recorder) -> None:
    """check() returns the body each call would send, or the ValidationError it would raise; schema() the fields."""
    fields = {"id": 4, "external_source": "m", "city": "X"}
    assert kayse.clients.check(fields, mode="update")["email"] is None
    assert kayse.clients.check(fields)["id"] == 4
    with pytest.raises(errors.ValidationError) as info:
        kayse.clients.check(fields, mode="create")
    assert info.value.field == "id"
    assert {field.name for field in kayse.cases.schema().fields} >= {"case_number", "client_ids"}
    assert kayse.campaigns.schema().name == "campaigns"
    assert server.seen == []


def test_the_blocking_client_checks_without_its_loop() -> None:
    """Kayse's check() and schema() run in the calling thread: no portal thread, no key needed, no request."""
    kayse = Kayse("unused-key", base_url="http://127.0.0.1:9")
    try:
        body = kayse.case_lists.check({"name": "L", "filter": {}, "include_ids": [3]}, mode="create")
        assert body["include_ids"] == [3]
        with pytest.raises(errors.ValidationError, match="requires filter"):
            kayse.case_lists.check({"name": "L", "include_ids": [3]})
        assert kayse.clients.schema().fields[0].name == "email"
        assert kayse.portal_thread is None
    finally:
        kayse.close()


def _pages(sizes: list[int], total: int | None) -> Answer:
    """Pages of ``sizes[page - 1]`` case lists, reporting ``total`` (or none): short pages before the end."""

    def answer(seen: Seen) -> Any:
        page = int(seen.query["page"])
        start = sum(sizes[: page - 1])
        items = [{"id": start + n + 1, "name": f"L{start + n + 1}"} for n in range(sizes[page - 1])]
        return {"case_lists": items} if total is None else {"case_lists": items, "total": total}

    return answer


async def test_case_lists_trust_total_over_short_pages(kayse: AsyncKayse, server: Recorder) -> None:
    """A short page before the total is reached does not end the walk; the total does."""
    server.answer = _pages([2, 0, 3, 1], total=12)
    names = [case_list.name async for case_list in kayse.case_lists.list(page_size=3)]
    assert names == ["L1", "L2", "L3", "L4", "L5", "L6"]
    assert [seen.query["page"] for seen in server.seen] == ["1", "2", "3", "4"]
    assert all(seen.query["page_size"] == "3" for seen in server.seen)


async def test_case_list_pages_from_a_given_page(kayse: AsyncKayse, server: Recorder) -> None:
    """pages(page=2) starts there and yields each page as a list, empty pages included, up to the total."""
    server.answer = _pages([3, 1, 0, 3], total=12)
    pages = [[item.id for item in page] async for page in kayse.case_lists.pages(page=2, page_size=3, key="x")]
    assert pages == [[4], [], [5, 6, 7]]
    assert next(seen.query for seen in server.seen) == {"page": "2", "page_size": "3", "key": "x"}


async def test_case_lists_without_a_total_stop_at_the_first_short_page(kayse: AsyncKayse, server: Recorder) -> None:
    """With no total to trust, a short page is the last one."""
    server.answer = _pages([3, 2, 3], total=None)
    assert len([item async for item in kayse.case_lists.list(page_size=3)]) == 5
    assert len(server.seen) == 2
