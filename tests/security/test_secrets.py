"""No API key in any log record, repr, error message or exception chain, on every error path."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from kayse_async import AsyncKayse, errors
from kayse_async.testing import Emulator

from .conftest import make_client
from .helpers import CALLS_KEY, KEY, Capture, assert_no_leak, exception_texts, json_error, serve

Call = Callable[[AsyncKayse], Awaitable[Any]]

CLIENT = {"external_source": "manual", "external_source_id": "e-1", "first_name": "Ann", "last_name": "Lee"}


def _status(status: int, message: str, **headers: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return json_error(status, message, **headers)

    return handler


async def _html(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")


async def _slow(_request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.json_response({})


async def _drop(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()


async def _bad_json(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=200, text='{"id": 1, "first_na', content_type="application/json")


async def _get(kayse: AsyncKayse) -> Any:
    return await kayse.clients.get(7)


async def _create(kayse: AsyncKayse) -> Any:
    return await kayse.clients.create(**CLIENT)


async def _bulk(kayse: AsyncKayse) -> Any:
    return await kayse.clients.bulk_upsert([CLIENT, {**CLIENT, "external_source_id": "e-2"}])


async def _sms(kayse: AsyncKayse) -> Any:
    return await kayse.cases.send_sms(case_id=1, client_id=2, message="hello")


async def _call(kayse: AsyncKayse) -> Any:
    return await kayse.calls.schedule(campaign_id=1, case_id=2)


SERVER_PATHS: list[tuple[str, Callable[..., Any], Call, type[BaseException]]] = [
    ("400", _status(400, "already used", field="external_source_id"), _create, errors.BadRequestError),
    ("401", _status(401, "invalid API key"), _get, errors.AuthenticationError),
    ("401-calls", _status(401, "invalid API key"), _call, errors.AuthenticationError),
    ("404", _status(404, "client 7 not found"), _get, errors.NotFoundError),
    ("405", _status(405, "method not allowed"), _get, errors.MethodNotAllowedError),
    ("429", _status(429, "rate limit exceeded", **{"Retry-After": "0"}), _get, errors.RateLimitError),
    ("500-get", _status(500, "boom"), _get, errors.InternalServerError),
    ("500-sms", _status(500, "boom"), _sms, errors.InternalServerError),
    ("503", _status(503, "maintenance", **{"Retry-After": "0"}), _get, errors.ServiceUnavailableError),
    ("html-502", _html, _get, errors.APIError),
    ("truncated-json", _bad_json, _get, errors.APIError),
    ("timeout", _slow, _get, errors.RequestTimeoutError),
    ("dropped", _drop, _create, errors.ConnectError),
    ("bulk-400", _status(400, "required", field="clients[1].first_name"), _bulk, errors.BulkError),
    ("bulk-500", _status(500, "boom"), _bulk, errors.BulkError),
]


@pytest.mark.parametrize(("name", "handler", "call", "expected"), SERVER_PATHS, ids=[p[0] for p in SERVER_PATHS])
async def test_server_error_paths_leak_no_key(
    capture: Capture, name: str, handler: Any, call: Call, expected: type[BaseException]
) -> None:
    """Each server-side failure raises its error, and no log record, repr or traceback holds either key."""
    async with serve(handler) as server:
        kayse = make_client(server.url, timeout=0.3)
        async with kayse:
            with pytest.raises(expected) as caught:
                await call(kayse)
            client_reprs = [repr(kayse), repr(kayse.clients), repr(kayse._transport), repr(kayse.quota)]
    # The key did travel (to the right header only), so a clean scan means something.
    assert server.seen, "the server received nothing"
    header = "X-Public-Api-Key" if name.endswith("calls") else "X-API-KEY"
    sent = CALLS_KEY if name.endswith("calls") else KEY
    assert all(seen.headers.get(header) == sent for seen in server.seen)
    if name not in ("timeout", "dropped"):
        # Every response is logged at DEBUG: the scan covered the SDK's own lines.
        assert any(r.name.startswith("kayse_async") for r in capture.records), "the SDK logged nothing at DEBUG"
    assert_no_leak(exception_texts(caught.value), capture.texts(), client_reprs)


async def test_a_server_that_echoes_the_key_does_not_leak_it(capture: Capture) -> None:
    """A server that repeats the request's key in its error body: the SDK's error must not carry it on."""

    async def echo(request: web.Request) -> web.StreamResponse:
        given = request.headers.get("X-API-KEY", "")
        return json_error(401, f"invalid API key {given}", field="X-API-KEY", **{"X-Echo": given})

    async with serve(echo) as server, make_client(server.url) as kayse:
        with pytest.raises(errors.AuthenticationError) as caught:
            await kayse.clients.get(1)
    assert_no_leak(exception_texts(caught.value), capture.texts())


async def test_connection_refused_leaks_no_key(capture: Capture) -> None:
    """Nothing listening: ConnectError, marked as never sent, and no key anywhere."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with make_client(f"http://127.0.0.1:{port}") as kayse:
        with pytest.raises(errors.ConnectError) as caught:
            await kayse.clients.get(1)
    assert caught.value.may_have_been_sent is False
    assert_no_leak(exception_texts(caught.value), capture.texts())


async def test_validation_errors_leak_no_key(capture: Capture) -> None:
    """Bad input is refused before sending, by a ValidationError that holds no key."""
    async with serve(_status(500, "must not be reached")) as server:
        async with make_client(server.url) as kayse:
            failures: list[BaseException] = []
            for call in (
                kayse.clients.create(first_name="Ann"),
                kayse.clients.update(1, date_of_birth="1990-02-30"),
                kayse.cases.send_sms(case_id=1, client_id=2, message=""),
                kayse.cases.bulk_delete(["x"]),  # type: ignore[list-item]
            ):
                with pytest.raises(errors.ValidationError) as caught:
                    await call
                failures.append(caught.value)
            result = await kayse.clients.bulk_upsert([{"first_name": 3}], raise_on_error=False)
        assert not server.seen, "an invalid request was sent"
    assert result.items[0].status == "rejected"
    assert result.items[0].error is not None
    texts = [t for exc in [*failures, result.items[0].error] for t in exception_texts(exc)]
    assert_no_leak(texts, capture.texts())


async def test_configuration_errors_leak_no_key(capture: Capture) -> None:
    """A refused configuration names the problem, not the key it was given."""
    for options in (
        {"base_url": "http://api.kayse.example"},
        {"base_url": "https://user:pw@api.kayse.example"},
        {"timeout": -1},
        {"max_retries": -1},
        {"calls_api_key": CALLS_KEY + "\n"},
    ):
        with pytest.raises(errors.ConfigurationError) as caught:
            AsyncKayse(KEY, calls_api_key=options.pop("calls_api_key", CALLS_KEY), **options)
        assert_no_leak(exception_texts(caught.value))
    with pytest.raises(errors.ConfigurationError) as caught:
        AsyncKayse(KEY + " ")
    assert_no_leak(exception_texts(caught.value), capture.texts() or [""])


async def test_emulator_round_trip_at_debug_leaks_no_key(capture: Capture) -> None:
    """A session of successes and failures against the emulator: every record, repr and model is clean."""
    async with Emulator(KEY, calls_api_key=CALLS_KEY, limit=0) as emu, make_client(emu.url) as kayse:
        client = await kayse.clients.create(**CLIENT)
        case = await kayse.cases.create(
            case_number="C-1", external_source="manual", external_source_id="c-1", status="active", type="civil"
        )
        await kayse.clients.patch(client.id, case_ids=[case.id])
        await kayse.cases.send_sms(case_id=case.id, client_id=client.id, message="hi")
        result = await kayse.clients.bulk_upsert([CLIENT], raise_on_error=False)  # a duplicate: rejected
        with pytest.raises(errors.NotFoundError) as caught:
            await kayse.clients.get(99_999)
        texts = [repr(kayse), repr(client), repr(case), repr(result), str(emu.stats())]
    assert result.items[0].status == "rejected"
    assert_no_leak(texts, exception_texts(caught.value), capture.texts())


def test_cli_error_output_leaks_no_key() -> None:
    """The kayse command's output on every failure (refused key, 404, refused URL, no server) never holds the key."""
    pytest.importorskip("kayse_async._sync", reason="the sync facade (kayse_async._sync) has not landed yet")
    from click.testing import CliRunner

    from kayse_async.cli import cli
    from kayse_async.testing import ThreadedEmulator

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    runner = CliRunner()
    outputs: list[str] = []
    with ThreadedEmulator("another-key", limit=0) as wrong_key, ThreadedEmulator(KEY, limit=0) as right_key:
        for args in (
            ["--base-url", wrong_key.url, "get", "client", "1"],
            ["--base-url", right_key.url, "get", "client", "999"],
            ["--base-url", right_key.url, "sms", "--case-id", "1", "--client-id", "2", "--message", "x", "--yes"],
            ["--base-url", "http://api.kayse.example", "get", "client", "1"],
            ["--base-url", f"http://127.0.0.1:{closed_port}", "get", "client", "1"],
        ):
            result = runner.invoke(cli, ["--api-key", KEY, *args])
            assert result.exit_code in (1, 2), (args, result.output)
            outputs += [result.output, repr(result.exception)]
            if result.exception is not None:
                outputs += exception_texts(result.exception)
    assert_no_leak(outputs)
