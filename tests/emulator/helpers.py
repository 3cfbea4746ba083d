"""Helpers of the emulator's tests: a fake clock and a plain aiohttp client.

These tests talk to the emulator through real sockets with aiohttp; they
never use the SDK client, so the emulator is checked on its own terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import attrs

from kayse_async.testing import Emulator

KEY = "emu-key"
CALLS_KEY = "calls-key"


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.frozen
class Reply:
    """One response: status, parsed JSON body (None if not JSON) and headers."""

    status: int
    body: Any
    headers: Mapping[str, str]


_UNSET: Any = object()


class Api:
    """Requests to an emulator with the right key header unless told otherwise."""

    def __init__(self, session: aiohttp.ClientSession, emulator: Emulator) -> None:
        self.session = session
        self.emulator = emulator

    async def call(
        self,
        method: str,
        path: str,
        json: Any = _UNSET,
        *,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = _UNSET,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one request; ``key=None`` sends no key, a string sends that key."""
        sent: dict[str, str] = {}
        header = "X-Public-Api-Key" if path.startswith("/v1/calls") else "X-API-KEY"
        if key is _UNSET:
            key = self.emulator.calls_api_key if header == "X-Public-Api-Key" else self.emulator.api_key
        if key is not None:
            sent[header] = key
        sent.update(headers or {})
        kwargs: dict[str, Any] = {"headers": sent, "params": params}
        if json is not _UNSET:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self.session.request(method, self.emulator.url + path, **kwargs) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            return Reply(response.status, body, dict(response.headers))

    async def ok(self, method: str, path: str, json: Any = _UNSET, **kwargs: Any) -> Any:
        """Send a request that must succeed; return its body."""
        reply = await self.call(method, path, json, **kwargs)
        assert reply.status == 200, reply
        return reply.body

    async def client(self, n: int, **fields: Any) -> dict[str, Any]:
        """Create client number ``n`` with the required fields (and any others)."""
        body = {"external_source": "test", "external_source_id": f"cl-{n}", "first_name": f"F{n}", "last_name": "L"}
        result: dict[str, Any] = await self.ok("POST", "/v1/clients", {**body, **fields})
        return result

    async def case(self, n: int, **fields: Any) -> dict[str, Any]:
        """Create case number ``n`` with the required fields (and any others)."""
        body = {
            "case_number": f"N-{n}",
            "external_source": "test",
            "external_source_id": f"ca-{n}",
            "status": "open",
            "type": "civil",
        }
        result: dict[str, Any] = await self.ok("POST", "/v1/cases", {**body, **fields})
        return result
