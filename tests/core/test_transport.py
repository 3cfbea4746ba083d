"""The transport, against aioresponses: headers, hosts, retries, leases, redirects, sessions."""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any
from unittest.mock import MagicMock

import aiohttp
import pytest
from yarl import URL

from kayse_async import AsyncKayse, RetryEvent, errors
from kayse_async._transport import RetryPolicy
from kayse_async._wire.protocol import Request

from .conftest import BASE, CALLS, CALLS_KEY, KEY, RecordingQuota

CLIENT_JSON = {"id": 1, "external_source": "m", "external_source_id": "e", "first_name": "A", "last_name": "B"}
NEW_CLIENT = {"external_source": "m", "external_source_id": "e", "first_name": "A", "last_name": "B"}


def sent(mocked: Any, method: str, url: str) -> list[Any]:
    return list(mocked.requests.get((method, URL(url)), []))


def refused() -> aiohttp.ClientConnectorError:
    key = MagicMock(host="api.example.test", port=443, ssl=True)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


async def test_main_routes_carry_only_the_main_key_and_a_user_agent(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.get(f"{BASE}/v1/clients/1", payload=CLIENT_JSON)
    client = await kayse.clients.get(1)
    assert client.first_name == "A"
    (call,) = sent(mocked, "GET", f"{BASE}/v1/clients/1")
    headers = call.kwargs["headers"]
    assert headers["X-API-KEY"] == KEY
    assert "X-Public-Api-Key" not in headers
    assert CALLS_KEY not in repr(call.kwargs)


async def test_calls_go_to_the_calls_host_with_the_public_key_only(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.post(f"{CALLS}/v1/calls", payload={"campaign_id": 3, "client_id": 4, "case_id": 5})
    call = await kayse.calls.schedule(campaign_id=3, case_id=5)
    assert (call.campaign_id, call.client_id, call.case_id) == (3, 4, 5)
    (request,) = sent(mocked, "POST", f"{CALLS}/v1/calls")
    assert request.kwargs["headers"]["X-Public-Api-Key"] == CALLS_KEY
    assert "X-API-KEY" not in request.kwargs["headers"]
    assert request.kwargs["json"] == {"campaign_id": 3, "case_id": 5}


async def test_a_create_is_never_resent_after_a_500(kayse: AsyncKayse, mocked: Any, quota: RecordingQuota) -> None:
    mocked.post(f"{BASE}/v1/clients", status=500, payload={"message": "boom"})
    mocked.post(f"{BASE}/v1/clients", payload=CLIENT_JSON)
    with pytest.raises(errors.InternalServerError, match="boom"):
        await kayse.clients.create(**NEW_CLIENT)
    assert len(sent(mocked, "POST", f"{BASE}/v1/clients")) == 1
    assert [lease.events for lease in quota.leases] == [["sent", "complete"]]


async def test_a_create_is_never_resent_after_a_timeout(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.post(f"{BASE}/v1/clients", exception=TimeoutError())
    mocked.post(f"{BASE}/v1/clients", payload=CLIENT_JSON)
    with pytest.raises(errors.RequestTimeoutError) as info:
        await kayse.clients.create(**NEW_CLIENT)
    assert info.value.may_have_been_sent
    assert len(sent(mocked, "POST", f"{BASE}/v1/clients")) == 1


async def test_sms_is_never_resent_after_a_dropped_connection(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.post(f"{BASE}/v1/cases/communication/sms", exception=aiohttp.ServerDisconnectedError())
    mocked.post(f"{BASE}/v1/cases/communication/sms", payload={"message": "sms scheduled"})
    with pytest.raises(errors.ConnectError, match="connection lost"):
        await kayse.cases.send_sms(case_id=1, client_id=2, message="hi")
    assert len(sent(mocked, "POST", f"{BASE}/v1/cases/communication/sms")) == 1


async def test_a_get_is_retried_after_500_and_timeouts(kayse: AsyncKayse, mocked: Any, sleeps: list[float]) -> None:
    url = f"{BASE}/v1/clients/1"
    mocked.get(url, status=500, payload={"message": "boom"})
    mocked.get(url, exception=TimeoutError())
    mocked.get(url, payload=CLIENT_JSON)
    assert (await kayse.clients.get(1)).id == 1
    assert len(sent(mocked, "GET", url)) == 3
    assert len(sleeps) == 2
    assert all(0 <= s <= 1.0 for s in sleeps)  # full jitter: at most base, then 2 x base


async def test_a_create_is_retried_when_the_connection_could_not_be_opened(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.post(f"{BASE}/v1/clients", exception=refused())
    mocked.post(f"{BASE}/v1/clients", payload=CLIENT_JSON)
    assert (await kayse.clients.create(**NEW_CLIENT)).id == 1
    assert len(sent(mocked, "POST", f"{BASE}/v1/clients")) == 2


async def test_503_is_retried_after_the_retry_after_it_asks(
    kayse: AsyncKayse, mocked: Any, sleeps: list[float]
) -> None:
    mocked.post(f"{BASE}/v1/clients", status=503, headers={"Retry-After": "7"}, payload={"message": "maintenance"})
    mocked.post(f"{BASE}/v1/clients", payload=CLIENT_JSON)
    assert (await kayse.clients.create(**NEW_CLIENT)).id == 1
    assert sleeps == [7.0]


async def test_429_is_retried_and_the_quota_hears_of_it(kayse: AsyncKayse, mocked: Any, quota: RecordingQuota) -> None:
    mocked.get(f"{BASE}/v1/clients/1", status=429, headers={"Retry-After": "1"}, payload={"message": "slow down"})
    mocked.get(f"{BASE}/v1/clients/1", payload=CLIENT_JSON)
    assert (await kayse.clients.get(1)).id == 1
    assert [lease.statuses for lease in quota.leases] == [[429], [200]]
    assert [lease.priority for lease in quota.leases] == [False, True]  # the retry keeps its place


async def test_retries_stop_at_max_retries_with_the_last_error(quota: RecordingQuota, mocked: Any) -> None:
    async def no_sleep(_: float) -> None:
        return None

    async with AsyncKayse(KEY, base_url=BASE, quota=quota, max_retries=2) as kayse:
        kayse._transport._sleep = no_sleep
        for _ in range(5):
            mocked.get(f"{BASE}/v1/cases/9", status=503, payload={"message": "down"})
        with pytest.raises(errors.ServiceUnavailableError):
            await kayse.cases.get(9)
    assert len(sent(mocked, "GET", f"{BASE}/v1/cases/9")) == 3


async def test_a_4xx_is_raised_at_once(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.get(f"{BASE}/v1/cases/9", status=404, payload={"message": "case not found"})
    with pytest.raises(errors.NotFoundError, match="case not found") as info:
        await kayse.cases.get(9)
    assert info.value.url == f"{BASE}/v1/cases/9"
    assert len(sent(mocked, "GET", f"{BASE}/v1/cases/9")) == 1


async def test_a_delete_whose_answer_was_lost_is_done_when_the_retry_finds_nothing(
    kayse: AsyncKayse, mocked: Any
) -> None:
    mocked.delete(f"{BASE}/v1/cases/9", exception=aiohttp.ServerDisconnectedError())
    mocked.delete(f"{BASE}/v1/cases/9", status=404, payload={"message": "case not found"})
    assert await kayse.cases.delete(9) is None
    assert len(sent(mocked, "DELETE", f"{BASE}/v1/cases/9")) == 2


async def test_a_delete_of_a_missing_case_is_still_not_found(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.delete(f"{BASE}/v1/cases/9", status=404, payload={"message": "case not found"})
    with pytest.raises(errors.NotFoundError):
        await kayse.cases.delete(9)


async def test_a_redirect_to_another_host_is_not_followed(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.get(f"{BASE}/v1/cases/9", status=302, headers={"Location": "https://evil.example.test/steal"})
    mocked.get("https://evil.example.test/steal", payload={})
    with pytest.raises(errors.APIError, match="another host") as info:
        await kayse.cases.get(9)
    assert info.value.status == 302
    assert sent(mocked, "GET", "https://evil.example.test/steal") == []


async def test_a_redirect_on_the_same_host_is_followed(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.get(f"{BASE}/v1/cases/9", status=301, headers={"Location": "/v1/cases/10"})
    mocked.get(f"{BASE}/v1/cases/10", payload={"id": 10})
    assert (await kayse.cases.get(9)).id == 10


async def test_cancelling_after_sending_never_refunds_the_lease(
    kayse: AsyncKayse, mocked: Any, quota: RecordingQuota
) -> None:
    started = asyncio.Event()

    async def slow(url: Any, **kwargs: Any) -> Any:
        started.set()
        await asyncio.sleep(3600)

    mocked.get(f"{BASE}/v1/cases/9", callback=slow)
    task = asyncio.create_task(kayse.cases.get(9))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [lease.events for lease in quota.leases] == [["sent", "complete"]]


class _Interrupt(BaseException):
    """Stands for KeyboardInterrupt landing in the request's own code (a thread running the loop got Ctrl-C)."""


async def test_an_interrupt_inside_the_request_settles_the_lease(
    kayse: AsyncKayse, mocked: Any, quota: RecordingQuota
) -> None:
    async def interrupted(url: Any, **kwargs: Any) -> Any:
        raise _Interrupt

    mocked.get(f"{BASE}/v1/cases/9", callback=interrupted)
    with pytest.raises(_Interrupt):
        await kayse.cases.get(9)
    # Spent (it may have gone out), not left reserved forever.
    assert [lease.events for lease in quota.leases] == [["sent", "complete"]]


async def test_a_malformed_success_body_is_a_clear_error(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.get(f"{BASE}/v1/cases/9", status=200, body='{"id": 9, "name": ', content_type="application/json")
    with pytest.raises(errors.ResponseFormatError, match=re.escape('not valid JSON: \'{"id": 9, "name":')):
        await kayse.cases.get(9)


async def test_a_wrongly_shaped_success_body_is_a_clear_error(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.get(f"{BASE}/v1/cases/9", payload=[1, 2])
    with pytest.raises(errors.APIError, match="expected a JSON object"):
        await kayse.cases.get(9)
    mocked.get(f"{BASE}/v1/cases/9", payload={"id": "nine"})
    with pytest.raises(errors.ResponseFormatError, match="integer id for Case"):
        await kayse.cases.get(9)
    mocked.get(f"{BASE}/v1/cases/9", payload={"id": 9, "status": 5})
    assert (await kayse.cases.get(9)).extra == {"status": 5}  # a field of another type is kept, not raised on


async def test_a_body_that_echoes_the_key_is_redacted(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.get(f"{BASE}/v1/cases/9", status=401, payload={"message": f"bad key {KEY}"})
    with pytest.raises(errors.AuthenticationError) as info:
        await kayse.cases.get(9)
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value.body)
    assert "[redacted]" in info.value.message


async def test_an_injected_session_is_used_and_never_closed(quota: RecordingQuota, mocked: Any) -> None:
    mocked.get(f"{BASE}/v1/cases/9", payload={"id": 9})
    async with aiohttp.ClientSession() as session:
        async with AsyncKayse(KEY, base_url=BASE, quota=quota, session=session) as kayse:
            assert (await kayse.cases.get(9)).id == 9
        assert not session.closed


async def test_the_own_session_is_closed_and_the_client_refuses_calls_after(quota: RecordingQuota, mocked: Any) -> None:
    mocked.get(f"{BASE}/v1/cases/9", payload={"id": 9})
    kayse = AsyncKayse(KEY, base_url=BASE, quota=quota)
    await kayse.cases.get(9)
    sessions = [route.session for route in kayse._transport._pool.routes.values()]
    await kayse.aclose()
    assert len(sessions) == 2
    assert all(session.closed for session in sessions)
    assert kayse.closed
    with pytest.raises(errors.KayseError, match="closed"):
        await kayse.cases.get(9)


async def test_a_redirected_post_is_not_followed_unless_307_or_308(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.post(f"{BASE}/v1/clients", status=302, headers={"Location": "/v1/clients2"})
    with pytest.raises(errors.APIError, match="redirect 302 of a POST not followed"):
        await kayse.clients.create(**NEW_CLIENT)
    assert sent(mocked, "POST", f"{BASE}/v1/clients2") == []
    mocked.post(f"{BASE}/v1/clients", status=307, headers={"Location": "/v1/clients2"})
    mocked.post(f"{BASE}/v1/clients2", payload=CLIENT_JSON)
    assert (await kayse.clients.create(**NEW_CLIENT)).id == 1
    (moved,) = sent(mocked, "POST", f"{BASE}/v1/clients2")
    assert moved.kwargs["json"] == NEW_CLIENT


async def test_a_connect_time_out_means_nothing_was_sent(kayse: AsyncKayse, mocked: Any) -> None:
    mocked.post(f"{BASE}/v1/clients", exception=aiohttp.ConnectionTimeoutError())
    mocked.post(f"{BASE}/v1/clients", payload=CLIENT_JSON)
    assert (await kayse.clients.create(**NEW_CLIENT)).id == 1
    assert len(sent(mocked, "POST", f"{BASE}/v1/clients")) == 2


async def test_a_base_url_with_a_path_keeps_it_before_every_route(mocked: Any, quota: RecordingQuota) -> None:
    """The request URL is the base URL with the route put after its path, not in place of it."""
    mocked.get(f"{BASE}/kayse/api/v1/clients/7", payload=dict(CLIENT_JSON, id=7))
    mocked.post(f"{CALLS}/public/v1/calls", payload={"campaign_id": 3, "client_id": 4, "case_id": 5})
    async with (
        aiohttp.ClientSession() as session,
        AsyncKayse(
            KEY,
            base_url=f"{BASE}/kayse/api/",
            calls_base_url=f"{CALLS}/public",
            calls_api_key=CALLS_KEY,
            quota=quota,
            session=session,
        ) as kayse,
    ):
        assert (await kayse.clients.get(7)).id == 7
        await kayse.calls.schedule(campaign_id=3, case_id=5)
    assert len(sent(mocked, "GET", f"{BASE}/kayse/api/v1/clients/7")) == 1
    assert len(sent(mocked, "POST", f"{CALLS}/public/v1/calls")) == 1


def _refused_error(*, sent: bool) -> errors.TransportError:
    return errors.ConnectError("connection lost", method="POST", url=BASE, may_have_been_sent=sent)


POLICY_TABLE: list[tuple[str, errors.KayseError, bool, float | None]] = [
    # (case, error of attempt 1, idempotent request?, least delay before the retry; None: not retried)
    ("429 create", errors.RateLimitError("slow", status=429, retry_after=9.0), False, 0.0),
    ("503 create", errors.ServiceUnavailableError("down", status=503, retry_after=7.0), False, 7.0),
    ("500 get", errors.InternalServerError("boom", status=500), True, 0.0),
    ("500 create", errors.InternalServerError("boom", status=500), False, None),
    ("404 get", errors.NotFoundError("gone", status=404), True, None),
    ("400 create", errors.BadRequestError("bad", status=400), False, None),
    ("never sent create", _refused_error(sent=False), False, 0.0),
    ("lost after sending get", _refused_error(sent=True), True, 0.0),
    ("lost after sending create", _refused_error(sent=True), False, None),
    ("time-out create", errors.RequestTimeoutError("late", may_have_been_sent=True), False, None),
    ("certificate", errors.TLSError("tls", may_have_been_sent=False), True, None),
    ("no HTTP error at all", errors.QuotaExhaustedError("spent"), True, None),
]


@pytest.mark.parametrize(("case", "error", "idempotent", "least"), POLICY_TABLE, ids=[row[0] for row in POLICY_TABLE])
def test_the_retry_policy_table(case: str, error: errors.KayseError, idempotent: bool, least: float | None) -> None:
    """The policy, as data, retries exactly what cannot repeat an effect, and waits at least what the server asked."""
    request = Request(method="GET" if idempotent else "POST", path="/v1/x", idempotent=idempotent)
    delay = RetryPolicy().delay(error, request, 1, random.Random(case))
    if least is None:
        assert delay is None
    else:
        assert delay is not None
        assert least <= delay <= max(least, 0.5)


def test_the_retry_policy_backs_off_and_stops_at_max_retries() -> None:
    """Full jitter under a doubling ceiling capped at wait_max, and no retry past max_retries."""
    policy = RetryPolicy(max_retries=6, wait_initial=1.0, wait_max=5.0)
    request = Request(method="GET", path="/v1/x", idempotent=True)
    error = errors.InternalServerError("boom", status=500)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (5, 5.0), (6, 5.0)]:
        delays = [policy.delay(error, request, attempt, rng) for _ in range(200)]
        assert all(d is not None and 0.0 <= d <= ceiling for d in delays)
        assert max(d or 0.0 for d in delays) > ceiling * 0.9  # the whole range is used
    assert policy.delay(error, request, 7, rng) is None


async def test_on_retry_hears_every_retry_without_a_key(
    quota: RecordingQuota, mocked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry reaches on_retry with method, URL, attempt, delay and reason; a failing hook is only logged."""
    caplog.set_level("INFO", logger="kayse_async")
    events: list[RetryEvent] = []

    def hook(event: RetryEvent) -> None:
        events.append(event)
        raise RuntimeError("a broken hook")

    url = f"{BASE}/v1/clients/1"
    mocked.get(url, status=503, headers={"Retry-After": "7"}, payload={"message": f"maintenance {KEY}"})
    mocked.get(url, status=500, payload={"message": "boom"})
    mocked.get(url, payload=CLIENT_JSON)
    async with (
        aiohttp.ClientSession() as session,
        AsyncKayse(KEY, base_url=BASE, quota=quota, session=session, on_retry=hook) as kayse,
    ):
        kayse._transport._sleep = _no_sleep
        assert (await kayse.clients.get(1)).id == 1
    assert [(e.method, e.url, e.attempt) for e in events] == [("GET", url, 1), ("GET", url, 2)]
    assert events[0].delay >= 7.0
    assert 0.0 <= events[1].delay <= 1.0
    assert "503" in events[0].reason
    assert "maintenance [redacted]" in events[0].reason
    assert isinstance(events[0].error, errors.ServiceUnavailableError)
    assert isinstance(events[1].error, errors.InternalServerError)
    assert all(KEY not in repr(e) for e in events)
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["on_retry hook failed"] * 2
    logged = [r.getMessage() for r in caplog.records if r.levelname == "INFO" and r.name == "kayse_async"]
    assert logged[0].startswith(f"retrying GET {url} in {events[0].delay:.2f} s (retry 1 of 3) after 503 GET")


async def _no_sleep(_: float) -> None:
    return None


@pytest.mark.looptime
async def test_an_error_after_retries_says_how_many_attempts_over_how_long(quota: RecordingQuota, mocked: Any) -> None:
    """timeout=1.0 and four attempts timing out: the error says 4 attempts and the time they took, not just 1.0 s."""

    async def hangs(url: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(1.0)  # the attempt's time-out, on the fast-forwarded clock
        raise TimeoutError

    for _ in range(4):
        mocked.get(f"{BASE}/v1/clients/1", callback=hangs)
    async with (
        aiohttp.ClientSession() as session,
        AsyncKayse(KEY, base_url=BASE, quota=quota, session=session, timeout=1.0) as kayse,
    ):
        kayse._transport._rng = random.Random(3)
        rng = random.Random(3)
        backoffs = [rng.uniform(0.0, 0.5 * 2**n) for n in range(3)]
        with pytest.raises(errors.RequestTimeoutError) as info:
            await kayse.clients.get(1)
    message = str(info.value)
    assert "no complete response within 1.0 s" in message
    assert f"(after 4 attempts over {4 * 1.0 + sum(backoffs):.1f} s)" in message
    assert 4.0 < 4 * 1.0 + sum(backoffs) < 8.0


async def test_extra_headers_are_sent_and_never_replace_the_key(kayse: AsyncKayse, mocked: Any) -> None:
    """A request's extra headers go out with it; a key header among them is dropped, whatever its case or host."""
    mocked.get(f"{BASE}/v1/clients/1", payload=CLIENT_JSON)
    mocked.get(f"{BASE}/v1/clients/1", payload=CLIENT_JSON)
    transport = kayse._transport
    await transport.request(Request(method="GET", path="/v1/clients/1", headers={"X-Trace": "abc"}))
    extra = {"x-api-key": "other", "X-Public-Api-Key": "other", "X-Trace": "def"}
    await transport.request(Request(method="GET", path="/v1/clients/1", headers=extra))
    first, second = (call.kwargs["headers"] for call in sent(mocked, "GET", f"{BASE}/v1/clients/1"))
    assert (first["X-Trace"], first["X-API-KEY"]) == ("abc", KEY)
    assert second.getall("X-API-KEY") == [KEY]
    assert "X-Public-Api-Key" not in second
    assert second["X-Trace"] == "def"


async def test_an_api_error_carries_the_headers_redacted_and_the_request_id(kayse: AsyncKayse, mocked: Any) -> None:
    """A 404 with X-Request-Id: .request_id, shown in the message; .headers kept with the echoed key blanked out."""
    mocked.get(
        f"{BASE}/v1/cases/9",
        status=404,
        headers={"X-Request-Id": "req-42", "X-Echo": f"key={KEY}"},
        payload={"message": "case not found"},
    )
    with pytest.raises(errors.NotFoundError) as info:
        await kayse.cases.get(9)
    error = info.value
    assert error.request_id == "req-42"
    assert "request id req-42" in str(error)
    assert error.headers["x-request-id"] == "req-42"
    assert error.headers["x-echo"] == "key=[redacted]"
    assert KEY not in repr(vars(error))


@pytest.mark.parametrize("name", ["X-Request-Id", "Request-Id", "X-Amzn-RequestId", "X-Correlation-Id"])
def test_each_documented_request_id_header_is_read(name: str) -> None:
    """Every header of REQUEST_ID_HEADERS gives .request_id, whatever its case; none gives None."""
    assert errors.APIError("x", status=500, headers={name.upper(): "id-1"}).request_id == "id-1"
    assert errors.APIError("x", status=500, headers={"X-Other": "id-1"}).request_id is None
