"""Every request that reaches the server went through the SDK's retry rules and its quota.

aiohttp resends an idempotent request (GET, PUT, DELETE) once, by itself, when
a reused keep-alive connection turns out closed. Such a resend is a request
the quota never granted, and it hides from the SDK that the first attempt may
have been applied: a DELETE whose answer was lost then comes back as a 404.
The fault soak met exactly this; these tests pin it down on a small server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from kayse_async import AsyncKayse
from kayse_async.models import QuotaSnapshot
from kayse_async.quota import Lease, MemoryQuota


class CountingQuota:
    """A wide MemoryQuota that counts the leases it grants."""

    def __init__(self) -> None:
        self.inner = MemoryQuota(limit=10**6, period=1.0)
        self.granted = 0

    async def acquire(self, bucket: str, *, max_wait: float | None = None, priority: bool = False) -> Lease:
        self.granted += 1
        return await self.inner.acquire(bucket, max_wait=max_wait, priority=priority)

    def snapshot(self, bucket: str) -> QuotaSnapshot:
        return self.inner.snapshot(bucket)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def lossy_server(method: str) -> AsyncIterator[tuple[str, list[str]]]:
    """A server that applies the first ``method`` request, then closes the connection unanswered."""
    seen: list[str] = []
    applied: list[bool] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.method} {request.path}")
        if request.method != method:
            return web.json_response([] if request.method == "GET" else {})
        if not applied:
            applied.append(True)
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if method == "DELETE":
            return web.json_response({"message": "client 1 not found", "field": None}, status=404)
        body: Any = await request.json() if request.can_read_body else {}
        return web.json_response({"id": 1, **body})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.2)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_a_delete_whose_answer_was_lost_is_done_and_every_attempt_was_granted() -> None:
    """DELETE applied, answer lost on a reused connection: the call succeeds, and the quota granted every attempt."""
    quota = CountingQuota()
    async with lossy_server("DELETE") as (url, seen), AsyncKayse("k-hidden", base_url=url, quota=quota) as kayse:
        await kayse.metadata.objects()  # opens the keep-alive connection the DELETE will reuse
        outcome: BaseException | None = None
        try:
            await kayse.clients.delete(1)
        except Exception as exc:
            outcome = exc
    assert len(seen) == quota.granted, f"the server saw {seen}, the quota granted {quota.granted}"
    assert outcome is None, f"a delete that was applied was reported as {outcome!r}"


async def test_a_put_resent_after_a_lost_answer_spends_granted_budget_only() -> None:
    """PUT applied, answer lost on a reused connection: resending is safe, but only with budget the quota granted."""
    quota = CountingQuota()
    async with lossy_server("PUT") as (url, seen), AsyncKayse("k-hidden", base_url=url, quota=quota) as kayse:
        await kayse.metadata.objects()
        await kayse.clients.update(1, external_source="m", external_source_id="e", first_name="A", last_name="B")
    assert len(seen) == quota.granted, f"the server saw {seen}, the quota granted {quota.granted}"


async def test_a_create_whose_answer_was_lost_is_never_resent() -> None:
    """POST applied, answer lost on a reused connection: neither aiohttp nor the SDK sends it again."""
    quota = CountingQuota()
    async with lossy_server("POST") as (url, seen), AsyncKayse("k-hidden", base_url=url, quota=quota) as kayse:
        await kayse.metadata.objects()
        with pytest.raises(Exception, match="connection") as caught:
            await kayse.clients.create(external_source="m", external_source_id="e", first_name="A", last_name="B")
    assert getattr(caught.value, "may_have_been_sent", None) is True
    assert [s for s in seen if s.startswith("POST")] == ["POST /v1/clients"]
    assert len(seen) == quota.granted
