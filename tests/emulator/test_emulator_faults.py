"""Injected faults: each kind does what it says, counts in stats, and a seed reproduces the sequence."""

from __future__ import annotations

import time

import aiohttp
import pytest

from kayse_async.testing import FAULT_KINDS, Emulator

from .helpers import Api

CLIENT = {"external_source": "s", "first_name": "a", "last_name": "b"}


async def outcome(api: Api, n: int) -> str:
    """Create client n; say what happened: a status, or 'cut' when no response came."""
    try:
        reply = await api.call("POST", "/v1/clients", {**CLIENT, "external_source_id": str(n)})
    except aiohttp.ServerDisconnectedError:
        return "cut"
    return str(reply.status)


async def run_sequence(seed: int) -> tuple[list[str], list[str]]:
    async with Emulator("k", limit=0, fault_rate=0.5, fault_kinds=["500", "503", "drop", "lost"], seed=seed) as emu:
        async with aiohttp.ClientSession() as session:
            outcomes = [await outcome(Api(session, emu), n) for n in range(40)]
        stored = [client["external_source_id"] for client in emu.store.clients.values()]
    return outcomes, stored


async def test_same_seed_same_faults() -> None:
    """Two emulators with one seed fault the same requests the same way; another seed differs."""
    first, second, other = await run_sequence(7), await run_sequence(7), await run_sequence(8)
    assert first == second
    assert first != other
    assert {"200", "500", "503", "cut"} <= set(first[0])


@pytest.mark.parametrize(("kind", "status", "applied"), [("500", 500, False), ("503", 503, False)])
async def test_error_faults_apply_nothing(
    session: aiohttp.ClientSession, kind: str, status: int, applied: bool
) -> None:
    """500 and 503 faults answer with that status (503 with Retry-After: 1) and store nothing."""
    async with Emulator("k", limit=10, fault_rate=1.0, fault_kinds=[kind]) as emu:
        reply = await Api(session, emu).call("POST", "/v1/clients", {**CLIENT, "external_source_id": "1"})
        assert reply.status == status
        assert reply.body["field"] is None
        assert reply.headers["X-RateLimit-Remaining"] == "9"  # a faulted request counts against the limit
        if kind == "503":
            assert reply.headers["Retry-After"] == "1"
        assert bool(emu.store.clients) is applied
        assert emu.stats()["faults"][kind] == 1


@pytest.mark.parametrize(("kind", "applied"), [("drop", False), ("lost", True)])
async def test_cut_connections(session: aiohttp.ClientSession, kind: str, applied: bool) -> None:
    """drop: no response, nothing stored; lost: no response, but the change is stored."""
    async with Emulator("k", limit=0, fault_rate=1.0, fault_kinds=[kind]) as emu:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await Api(session, emu).call("POST", "/v1/clients", {**CLIENT, "external_source_id": "1"})
        assert bool(emu.store.clients) is applied
        stats = emu.stats()
        assert (stats["faults"][kind], stats["requests"]) == (1, 1)
        emu.set_faults(0.0)
        assert await outcome(Api(session, emu), 2) == "200"


async def test_latency_fault_delays_then_serves(session: aiohttp.ClientSession) -> None:
    """latency: the request waits at least 200 ms, then succeeds normally."""
    async with Emulator("k", limit=0, fault_rate=1.0, fault_kinds=["latency"]) as emu:
        started = time.monotonic()
        assert await outcome(Api(session, emu), 1) == "200"
        assert time.monotonic() - started >= 0.2
        assert emu.stats()["faults"] == {kind: int(kind == "latency") for kind in FAULT_KINDS}


async def test_no_faults_on_refused_or_unauthenticated_requests(session: aiohttp.ClientSession) -> None:
    """401s and 429s are never faulted: faults only hit requests the server would serve."""
    async with Emulator("k", limit=1, fault_rate=1.0, fault_kinds=["500"]) as emu:
        api = Api(session, emu)
        assert (await api.call("GET", "/v1/metadata/objects", key="bad")).status == 401
        assert (await api.call("GET", "/v1/metadata/objects")).status == 500
        assert (await api.call("GET", "/v1/metadata/objects")).status == 429
        assert emu.stats()["faults"]["500"] == 1


def test_bad_fault_settings() -> None:
    """Unknown kinds, an empty kind list and rates outside 0..1 are refused."""
    for options in ({"fault_kinds": ["timeout"]}, {"fault_kinds": []}, {"fault_rate": 1.5}):
        with pytest.raises(ValueError, match="fault"):
            Emulator("k", **options)  # type: ignore[arg-type]


async def test_latency_ms_slows_every_request(session: aiohttp.ClientSession) -> None:
    """--latency-ms adds that delay to every API request (and none to introspection)."""
    async with Emulator("k", limit=0, latency_ms=100) as emu:
        api = Api(session, emu)
        started = time.monotonic()
        assert (await api.call("GET", "/v1/metadata/objects")).status == 200
        assert time.monotonic() - started >= 0.1
        assert emu.stats()["faults"]["latency"] == 0
