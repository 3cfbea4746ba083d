"""Odd server answers from a scripted server: whatever comes back, no item is lost and no create is sent twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from kayse_async import AsyncKayse, errors

from .conftest import client_items


class Scripted:
    """A server answering POST /v1/clients/bulk with the next scripted answer, and counting the batches."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, str, str]] = []
        self.batches: list[list[Any]] = []
        self.url = ""

    def post(self, *, status: int = 200, payload: Any = None, body: str | None = None, content_type: str = "") -> None:
        text = body if body is not None else json.dumps(payload)
        self.answers.append((status, text, content_type or ("application/json" if body is None else "text/plain")))

    async def handle(self, request: web.Request) -> web.Response:
        self.batches.append((await request.json())["clients"])
        status, text, content_type = self.answers.pop(0)
        return web.Response(status=status, text=text, content_type=content_type)


@pytest.fixture
async def mocked() -> AsyncIterator[Scripted]:
    server = Scripted()
    app = web.Application()
    app.router.add_post("/v1/clients/bulk", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


def client(server: Scripted, **options: Any) -> AsyncKayse:
    return AsyncKayse("k", base_url=server.url, calls_base_url=server.url, **options)


async def test_an_answer_of_the_wrong_length_leaves_the_batch_uncertain(mocked: Scripted) -> None:
    """Two objects back for three items: the three are uncertain, with an excerpt, never resent."""
    mocked.post(payload={"clients": [{"id": 1}, {"id": 2}]})
    async with client(mocked) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(3), raise_on_error=False)
    assert [item.status for item in result.items] == ["uncertain"] * 3
    error = result.items[0].error
    assert isinstance(error, errors.APIError)
    assert "got 2 items" in str(error)
    assert "not sent again" in str(error)
    assert len(mocked.batches) == 1


async def test_an_html_page_leaves_the_batch_uncertain(mocked: Scripted) -> None:
    """A 200 with an HTML body is not an answer: uncertain, with an excerpt of the body."""
    mocked.post(body="<html><body>Gateway says hi</body></html>", content_type="text/html")
    async with client(mocked) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(2), raise_on_error=False)
    assert {item.status for item in result.items} == {"uncertain"}
    assert "Gateway says hi" in str(result.items[0].error)


async def test_a_500_on_creates_is_uncertain_and_not_retried(mocked: Scripted) -> None:
    """A 500 after a create batch was sent: uncertain, one request, the error says why it was not resent."""
    mocked.post(status=500, payload={"message": "boom", "field": None})
    async with client(mocked) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(2), raise_on_error=False)
    assert {item.status for item in result.items} == {"uncertain"}
    assert isinstance(result.items[0].error, errors.InternalServerError)
    assert "no idempotency key" in str(result.items[0].error)
    assert result.requests == 1


async def test_a_too_large_400_is_split_without_a_413(mocked: Scripted) -> None:
    """A 400 saying the batch is too large splits it like a 413."""
    mocked.post(status=400, payload={"message": "Batch too large", "field": "clients"})
    mocked.post(payload={"clients": [{"id": 1}, {"id": 2}]})
    mocked.post(payload={"clients": [{"id": 3}, {"id": 4}]})
    async with client(mocked) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(4), concurrency=1)
    assert [c.id for c in result.succeeded] == [1, 2, 3, 4]
    assert result.requests == 3


async def test_a_503_after_retries_rejects_the_batch(mocked: Scripted) -> None:
    """A server unavailable through every retry stored nothing: rejected, the job goes on."""
    for _ in range(2):
        mocked.post(status=503, payload={"message": "maintenance", "field": None})
    mocked.post(payload={"clients": [{"id": 9}]})
    async with client(mocked, max_retries=1) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(2), chunk_size=1, concurrency=1, raise_on_error=False)
    assert [item.status for item in result.items] == ["rejected", "succeeded"]
    assert isinstance(result.items[0].error, errors.ServiceUnavailableError)


async def test_a_400_about_one_item_is_not_taken_for_a_size_limit(mocked: Scripted) -> None:
    """'clients[1].last_name: too long' concerns an item: it is rejected, its mates blame it, no split (one request)."""
    mocked.post(status=400, payload={"message": "too long", "field": "clients[1].last_name"})
    async with client(mocked) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(4), raise_on_error=False)
    assert {item.status for item in result.items} == {"rejected"}
    assert len(mocked.batches) == 1
    assert "clients[1].last_name" in str(result.items[1].error)
    assert isinstance(result.items[0].error, errors.BatchRefusedError)
    assert result.items[0].error.culprit == 1


async def test_a_batch_refused_without_naming_an_item_is_halved_within_the_budget(mocked: Scripted) -> None:
    """No item named: each half costs one request of the budget; a half still refused when it is spent says so."""
    mocked.post(status=400, payload={"message": "something is wrong", "field": None})
    mocked.post(payload={"clients": [{"id": 1}, {"id": 2}]})
    mocked.post(status=400, payload={"message": "something is wrong", "field": None})
    async with client(mocked) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(4), concurrency=1, raise_on_error=False, bisect_budget=2)
    assert [item.status for item in result.items] == ["succeeded", "succeeded", "rejected", "rejected"]
    assert [len(batch) for batch in mocked.batches] == [4, 2, 2]
    assert "the bisection budget is spent" in str(result.items[2].error)
    assert isinstance(result.items[2].error, errors.BadRequestError)


async def test_without_a_budget_a_batch_refused_as_a_whole_is_rejected_as_it_came(mocked: Scripted) -> None:
    """No item named and no budget: every item is rejected with the server's own error, one request spent."""
    mocked.post(status=400, payload={"message": "something is wrong", "field": None})
    async with client(mocked) as kayse:
        result = await kayse.clients.bulk_upsert(client_items(3), raise_on_error=False)
    assert {item.status for item in result.items} == {"rejected"}
    assert str(result.items[0].error).endswith("something is wrong")
    assert len(mocked.batches) == 1
