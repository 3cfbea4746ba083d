"""Per-call options (with_options) and base URLs, end to end against the emulator."""

from __future__ import annotations

import pytest

from kayse_async import AsyncKayse, errors
from kayse_async.quota import MemoryQuota
from kayse_async.testing import Emulator

from .conftest import CALLS_KEY, KEY


async def no_sleep(_: float) -> None:
    return None


async def test_with_options_changes_retries_and_time_out_only(emulator: Emulator) -> None:
    """A derived client retries and times out by its own options, while the original keeps its own."""
    async with AsyncKayse(KEY, base_url=emulator.url, quota=MemoryQuota(limit=10_000), max_retries=2) as kayse:
        kayse._transport._sleep = no_sleep
        once = kayse.with_options(max_retries=0)
        emulator.set_faults(1.0, ["500"])
        before = emulator.stats()["requests"]
        with pytest.raises(errors.InternalServerError) as info:
            await once.metadata.objects()
        assert emulator.stats()["requests"] - before == 1
        assert "attempts" not in str(info.value)
        with pytest.raises(errors.InternalServerError, match=r"after 3 attempts over"):
            await kayse.metadata.objects()
        assert emulator.stats()["requests"] - before == 4
        emulator.set_faults(1.0, ["latency"], latency_ms=100)  # each answer 300 ms late
        with pytest.raises(errors.RequestTimeoutError, match=r"within 0\.1 s"):
            await kayse.with_options(timeout=0.1, max_retries=0).metadata.objects()
        objects = await kayse.metadata.objects()
        assert {"clients", "cases"} <= {o.name for o in objects}


async def test_a_derived_client_shares_the_session_and_the_budget() -> None:
    """Requests through a derived client use the original's connections and count in its budget."""
    async with (
        Emulator(api_key=KEY, calls_api_key=CALLS_KEY, limit=50, period=3600.0) as emulator,
        AsyncKayse(KEY, base_url=emulator.url, quota=MemoryQuota(limit=50, period=3600.0)) as kayse,
    ):
        derived = kayse.with_options(timeout=5.0, max_wait=1.0)
        await derived.metadata.objects()
        await kayse.metadata.objects()
        await derived.clients.create(external_source="m", external_source_id="e", first_name="A", last_name="B")
        assert kayse.quota.remaining == 47
        assert (derived.quota.limit, derived.quota.remaining) == (kayse.quota.limit, 47)
        assert derived._transport._route("main").session is kayse._transport._route("main").session
        assert emulator.stats()["requests"] == 3


async def test_closing_a_derived_client_leaves_the_original_open(emulator: Emulator, kayse: AsyncKayse) -> None:
    """The original owns the session: closing a derived client stops it alone; closing the original stops both."""
    derived = kayse.with_options(max_retries=0)
    await derived.metadata.objects()
    session = kayse._transport._route("main").session
    async with derived:
        pass
    assert derived.closed
    assert not kayse.closed
    assert not session.closed
    with pytest.raises(errors.KayseError, match="closed"):
        await derived.metadata.objects()
    await kayse.metadata.objects()
    other = kayse.with_options(timeout=3.0)
    await kayse.aclose()
    assert session.closed
    assert other.closed
    with pytest.raises(errors.KayseError, match="closed"):
        await other.metadata.objects()


async def test_a_base_url_ending_in_v1_reaches_the_same_routes(emulator: Emulator) -> None:
    """base_url=.../v1 is taken without its /v1: every route is reached once, not under /v1/v1."""
    async with AsyncKayse(
        KEY,
        base_url=emulator.url + "/v1",
        calls_base_url=emulator.url + "/v1/",
        calls_api_key=CALLS_KEY,
        quota=MemoryQuota(limit=10_000),
    ) as kayse:
        assert kayse.base_url == emulator.url
        objects = await kayse.metadata.objects()
    assert objects
    assert emulator.stats()["by_status"] == {"200": 1}
