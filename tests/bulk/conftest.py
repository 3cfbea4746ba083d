"""Fixtures of the bulk engine tests: an emulator on a real socket and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from kayse_async import AsyncKayse
from kayse_async.testing import Emulator

KEY = "k"


def client_item(i: int, **extra: Any) -> dict[str, Any]:
    """A valid new client, unique by its external_source_id."""
    return {
        "external_source": "crm",
        "external_source_id": f"ext-{i}",
        "first_name": "Ann",
        "last_name": f"L{i}",
        **extra,
    }


def client_items(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` new clients from a generator (no len())."""
    for i in range(start, start + n):
        yield client_item(i)


def stored_external_ids(emu: Emulator) -> list[str]:
    """The external_source_id of every client the emulator holds."""
    return [record["external_source_id"] for record in emu.store.clients.values()]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator with a budget no test spends."""
    async with Emulator(api_key=KEY, limit=1_000_000, seed=7) as emulator:
        yield emulator


MakeClient = Callable[..., AsyncKayse]


@pytest.fixture
def make_client() -> MakeClient:
    """``async with make_client(emu) as kayse:`` a client of ``emu``, with the SDK's defaults unless told otherwise."""

    def make(emulator: Emulator, *, key: str = KEY, **options: Any) -> AsyncKayse:
        return AsyncKayse(key, base_url=emulator.url, calls_base_url=emulator.url, **options)

    return make
