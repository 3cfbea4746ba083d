"""Kayse against the emulator through real sockets: the same answers as AsyncKayse, blocking."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
from typing import Any

import pytest

from kayse_async import AsyncKayse, Kayse, errors, models
from kayse_async.quota import MemoryQuota
from kayse_async.testing import ThreadedEmulator

from .helpers import portal_threads


def _client_fields(n: int) -> dict[str, Any]:
    return {"external_source": "sync", "external_source_id": f"c{n}", "first_name": f"F{n}", "last_name": "L"}


def _case_fields(n: int) -> dict[str, Any]:
    return {
        "case_number": f"K-{n}",
        "external_source": "sync",
        "external_source_id": f"k{n}",
        "status": "active",
        "type": "civil",
    }


def test_no_thread_until_the_first_call(emulator: ThreadedEmulator) -> None:
    """Kayse() starts nothing; the first call starts exactly one portal thread; close() joins it."""
    before = len(portal_threads())
    kayse = Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url)
    assert kayse.portal_thread is None
    assert len(portal_threads()) == before
    kayse.metadata.objects()
    thread = kayse.portal_thread
    assert thread is not None
    assert thread.is_alive()
    assert len(portal_threads()) == before + 1
    kayse.metadata.objects()
    assert kayse.portal_thread is thread
    kayse.close()
    assert not thread.is_alive()
    assert kayse.closed
    assert "closed" in repr(kayse)


def test_the_async_client_is_built_inside_the_portals_loop(
    emulator: ThreadedEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kayse() checks its arguments in the caller; the AsyncKayse that serves calls is made in the running loop."""
    from kayse_async._sync import base

    built: list[tuple[str, bool]] = []

    class Recording(AsyncKayse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            try:
                asyncio.get_running_loop()
                running = True
            except RuntimeError:
                running = False
            built.append((threading.current_thread().name, running))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(base, "AsyncKayse", Recording)
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url) as kayse:
        assert built == [(threading.current_thread().name, False)]
        kayse.metadata.objects()
        kayse.metadata.objects()
    assert built[1:] == [("kayse-portal", True)]


def test_single_item_calls_return_models(kayse: Kayse) -> None:
    """create/get/update/patch/delete, SMS, email, campaigns, calls and metadata answer like the async API."""
    client = kayse.clients.create(**_client_fields(1), city="Austin")
    assert isinstance(client, models.Client)
    assert client.id is not None
    assert client.city == "Austin"
    assert kayse.clients.get(client.id) == client
    patched = kayse.clients.patch(client.id, state="TX")
    assert (patched.city, patched.state) == ("Austin", "TX")
    replaced = kayse.clients.update(client.id, first_name="G")
    assert replaced.first_name == "G"
    assert replaced.city is None
    case = kayse.cases.create(**_case_fields(1), client_ids=[client.id])
    assert isinstance(case, models.Case)
    assert kayse.cases.get(case.id).case_number == "K-1"
    assert kayse.cases.send_sms(case_id=case.id, client_id=client.id, message="hi") == "sms scheduled"
    assert kayse.cases.send_email(case_id=case.id, client_id=client.id, subject="s", message="m") == "email scheduled"
    case_list = kayse.case_lists.create(name="all", include_ids=[case.id], filter={})
    campaign = kayse.campaigns.create(
        name="c", agent_id="a", case_list_id=case_list.id, send_sms_before_call=False, sms_before_call_text="t"
    )
    assert [c.id for c in kayse.campaigns.list()] == [campaign.id]
    scheduled = kayse.calls.schedule(campaign_id=campaign.id, case_id=case.id)
    assert isinstance(scheduled, models.ScheduledCall)
    assert scheduled.case_id == case.id
    assert all(isinstance(o, models.ObjectSchema) for o in kayse.metadata.objects())
    assert kayse.clients.delete(client.id) is None
    with pytest.raises(errors.NotFoundError):
        kayse.clients.get(client.id)


def test_bad_input_raises_in_the_caller_before_sending(kayse: Kayse, emulator: ThreadedEmulator) -> None:
    """Validation errors come up unchanged, at call time (even for iterators), and nothing is sent."""
    kayse.metadata.objects()
    sent = emulator.stats()["requests"]
    with pytest.raises(errors.ValidationError) as info:
        kayse.clients.get("7")  # type: ignore[arg-type]
    assert info.value.field == "client_id"
    with pytest.raises(errors.ValidationError) as info:
        kayse.case_lists.list(page_size=1000)
    assert info.value.field == "page_size"
    assert emulator.stats()["requests"] == sent


def test_case_lists_list_is_a_plain_generator_over_the_pages(kayse: Kayse, emulator: ThreadedEmulator) -> None:
    """for ... in kayse.case_lists.list() walks every page, one request per page."""
    made = [kayse.case_lists.create(name=f"list {n}").id for n in range(5)]
    before = emulator.stats()["requests"]
    seen = [cl.id for cl in kayse.case_lists.list(page_size=2)]
    assert seen == made
    assert emulator.stats()["requests"] - before == 3


def test_breaking_out_of_the_loop_closes_the_async_iterator(kayse: Kayse, emulator: ThreadedEmulator) -> None:
    """Dropping the generator after one item closes the async generator underneath; no further page is read."""
    for n in range(4):
        kayse.case_lists.create(name=f"list {n}")
    before = emulator.stats()["requests"]
    pages = kayse.case_lists.list(page_size=1)
    frame = pages.gi_frame
    assert frame is not None
    for _ in pages:
        underneath = frame.f_locals["iterator"]
        break
    assert underneath.ag_frame is not None  # still suspended inside the async generator
    del pages, frame
    gc.collect()
    assert underneath.ag_frame is None  # closed: its frame is gone
    assert emulator.stats()["requests"] - before == 1


def test_errors_come_up_with_their_type(kayse: Kayse) -> None:
    """An API error raised in the loop reaches the caller as the same exception type and data."""
    with pytest.raises(errors.NotFoundError) as info:
        kayse.cases.get(999_999)
    assert info.value.status == 404


def test_quota_property_reads_the_clients_budget(kayse: Kayse) -> None:
    """kayse.quota is the snapshot AsyncKayse.quota gives: the limit, and what the server said remains."""
    kayse.metadata.objects()
    snapshot = kayse.quota
    assert isinstance(snapshot, models.QuotaSnapshot)
    assert snapshot.limit == 1_000_000
    assert snapshot.remaining is not None
    assert snapshot.remaining < 1_000_000


def test_bulk_upsert_runs_concurrently_in_the_portal(emulator: ThreadedEmulator, quota: MemoryQuota) -> None:
    """bulk_upsert keeps `concurrency` requests in flight at once, as the async engine does."""
    emulator.configure(latency_ms=100)
    counting = _InFlight(quota)
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, quota=counting) as kayse:
        result = kayse.clients.bulk_upsert([_client_fields(n) for n in range(12)], chunk_size=1, concurrency=4)
        assert result.ok
        assert [c.external_source_id for c in result.succeeded] == [f"c{n}" for n in range(12)]
        streamed = list(kayse.cases.bulk_upsert_iter([_case_fields(n) for n in range(6)], chunk_size=2))
        assert [item.index for item in streamed] == list(range(6))
    assert counting.most == 4


def test_a_call_from_the_portal_thread_fails_fast(emulator: ThreadedEmulator, quota: MemoryQuota) -> None:
    """A callback running on the client's loop that calls the client gets a clear error, not a deadlock."""
    seen: list[BaseException] = []
    holder: list[Kayse] = []

    def reenter() -> None:
        try:
            holder[0].metadata.objects()
        except BaseException as exc:
            seen.append(exc)

    reentrant = _Reentrant(quota, reenter)
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, quota=reentrant) as kayse:
        holder.append(kayse)
        finished = threading.Event()
        worker = threading.Thread(target=lambda: (kayse.metadata.objects(), finished.set()))
        worker.start()
        worker.join(20)
        assert finished.is_set(), "the outer call did not finish: the inner call deadlocked"
        assert len(seen) == 1
        assert isinstance(seen[0], errors.KayseError)
        assert "own event-loop thread" in str(seen[0])
        with pytest.raises(errors.KayseError, match="own event-loop thread"):
            reentrant.close_from_loop(kayse)


def test_callbacks_may_call_another_client_but_not_close_a_cycle(
    emulator: ThreadedEmulator, quota: MemoryQuota
) -> None:
    """A's loop may call client B; B's loop calling back into A (both loops waiting) raises instead of hanging."""
    outcomes: dict[str, object] = {}
    clients: dict[str, Kayse] = {}

    def from_a() -> None:  # runs on A's loop
        outcomes["a->b"] = clients["b"].metadata.objects()

    def from_b() -> None:  # runs on B's loop, while A's loop waits for B
        try:
            clients["a"].metadata.objects()
        except errors.KayseError as exc:
            outcomes["b->a"] = exc

    options: dict[str, Any] = {"base_url": emulator.url, "calls_base_url": emulator.url}
    with (
        Kayse(emulator.api_key, quota=_Reentrant(quota, from_a), **options) as a,
        Kayse(emulator.api_key, quota=_Reentrant(quota, from_b), **options) as b,
    ):
        clients.update(a=a, b=b)
        worker = threading.Thread(target=a.metadata.objects)
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), "the clients' loops deadlocked"
    assert isinstance(outcomes["a->b"], list)
    assert "waiting for the first one" in str(outcomes["b->a"])


def test_progress_callback_calling_the_client_fails_fast(emulator: ThreadedEmulator) -> None:
    """The bulk progress callback runs on the loop: calling the client from it raises at once."""
    seen: list[BaseException] = []
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url) as kayse:

        def progress(_: object) -> None:
            try:
                kayse.clients.get(1)
            except BaseException as exc:
                seen.append(exc)

        result = kayse.clients.bulk_upsert([_client_fields(n) for n in range(3)], chunk_size=1, progress=progress)
        assert result.ok
    assert seen
    assert all("own event-loop thread" in str(exc) for exc in seen)


def test_context_variables_cross_into_the_loop(emulator: ThreadedEmulator, quota: MemoryQuota) -> None:
    """Each call sees its caller's context variables on the loop, and changes made there stay there."""
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
    seen: list[str] = []

    class Reading(_InFlight):
        async def acquire(self, bucket: str, **options: Any) -> Any:
            seen.append(request_id.get())
            request_id.set("changed on the loop")
            return await super().acquire(bucket, **options)

    after: list[str] = []
    with Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, quota=Reading(quota)) as kayse:

        def work(n: int) -> None:
            request_id.set(f"request {n}")
            kayse.metadata.objects()
            after.append(request_id.get())

        workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    assert sorted(seen) == [f"request {n}" for n in range(4)]
    assert sorted(after) == [f"request {n}" for n in range(4)]


def test_calls_after_close_raise(emulator: ThreadedEmulator) -> None:
    """After close(): calls raise KayseError, an open iterator stops with it, close() again is a no-op."""
    kayse = Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url)
    for n in range(3):
        kayse.case_lists.create(name=f"l{n}")
    pages = kayse.case_lists.list(page_size=1)
    next(pages)
    kayse.close()
    kayse.close()
    with pytest.raises(errors.KayseError, match="closed"):
        kayse.metadata.objects()
    with pytest.raises(errors.KayseError, match="closed"):
        next(pages)


def test_close_fails_calls_in_flight_in_other_threads(emulator: ThreadedEmulator) -> None:
    """close() while another thread waits on a slow call: that call raises KayseError, close() returns."""
    emulator.configure(latency_ms=10_000)
    kayse = Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url)
    kayse.quota  # noqa: B018 - starts the portal without a request
    outcome: list[BaseException] = []
    started = threading.Event()

    def slow() -> None:
        started.set()
        try:
            kayse.metadata.objects()
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=slow)
    worker.start()
    started.wait(5)
    _wait_for(lambda: emulator.stats()["requests"] >= 1)
    kayse.close()
    worker.join(5)
    assert not worker.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], errors.KayseError)
    assert "closed" in str(outcome[0])


def test_same_answers_as_the_async_client(emulator: ThreadedEmulator, kayse: Kayse) -> None:
    """The blocking and the async client read the same objects the same way."""
    made = kayse.clients.create(**_client_fields(9))

    async def read() -> models.Client:
        async with AsyncKayse(emulator.api_key, base_url=emulator.url) as client:
            return await client.clients.get(made.id)

    # A loop_factory keeps the runner away from the policy's loop, which the test plugins own.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        assert runner.run(read()) == kayse.clients.get(made.id)


def test_bad_arguments_raise_in_the_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kayse() checks its arguments as AsyncKayse() does, before any thread or request."""
    monkeypatch.delenv("KAYSE_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError, match="API key"):
        Kayse()
    with pytest.raises(errors.ConfigurationError, match="timeout"):
        Kayse("k", timeout=-1)
    with pytest.raises(errors.ConfigurationError, match="base_url"):
        Kayse("k", base_url="http://example.com")


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not condition():
            if done.wait(0.01):
                raise AssertionError("condition not met in time")
    finally:
        deadline.cancel()


class _InFlight:
    """A quota that counts the requests on the wire at once (sent, not yet complete)."""

    def __init__(self, inner: MemoryQuota) -> None:
        self.inner = inner
        self.now = 0
        self.most = 0

    async def acquire(self, bucket: str, **options: Any) -> Any:
        return _CountedLease(self, await self.inner.acquire(bucket, **options))

    def snapshot(self, bucket: str) -> models.QuotaSnapshot:
        return self.inner.snapshot(bucket)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _CountedLease:
    def __init__(self, owner: _InFlight, inner: Any) -> None:
        self.owner = owner
        self.inner = inner

    def sent(self) -> None:
        self.owner.now += 1
        self.owner.most = max(self.owner.most, self.owner.now)
        self.inner.sent()

    def complete(self, info: Any, status: int | None) -> None:
        self.owner.now -= 1
        self.inner.complete(info, status)

    def release(self) -> None:
        self.inner.release()


class _Reentrant(_InFlight):
    """A quota whose acquire runs a callback (on the client's loop) once."""

    def __init__(self, inner: MemoryQuota, callback: Any) -> None:
        super().__init__(inner)
        self.callback = callback

    async def acquire(self, bucket: str, **options: Any) -> Any:
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()
        return await super().acquire(bucket, **options)

    def close_from_loop(self, kayse: Kayse) -> None:
        """Run kayse.close() on the loop thread, re-raising what it raised."""
        errors_seen: list[BaseException] = []

        def close() -> None:
            try:
                kayse.close()
            except BaseException as exc:
                errors_seen.append(exc)

        self.callback = close
        kayse.metadata.objects()
        raise errors_seen[0]
