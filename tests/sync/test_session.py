"""Kayse(session_factory=...): the aiohttp session is made inside the portal's loop, used, and closed by the client."""

from __future__ import annotations

import asyncio
import gc
import threading
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from kayse_async import Kayse, errors
from kayse_async.testing import ThreadedEmulator


class _Factory:
    """Makes traced sessions (trust_env, as for a proxy) and records where and how many requests each one sent."""

    def __init__(self) -> None:
        self.sessions: list[aiohttp.ClientSession] = []
        self.made_in: list[tuple[str, bool]] = []
        self.requests = 0

    def __call__(self) -> aiohttp.ClientSession:
        try:
            asyncio.get_running_loop()
            running = True
        except RuntimeError:
            running = False
        self.made_in.append((threading.current_thread().name, running))
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._ended)
        session = aiohttp.ClientSession(trust_env=True, trace_configs=[trace])
        self.sessions.append(session)
        return session

    async def _ended(self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
        self.requests += 1


def _kayse(emulator: ThreadedEmulator, factory: Any) -> Kayse:
    return Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, session_factory=factory)


def test_the_factory_session_serves_the_calls_and_close_closes_it(emulator: ThreadedEmulator) -> None:
    """The factory runs once, on the first call, in the portal's running loop; its session sends every request."""
    factory = _Factory()
    with _kayse(emulator, factory) as kayse:
        assert factory.sessions == []
        made = kayse.clients.create(external_source="s", external_source_id="1", first_name="A", last_name="B")
        assert kayse.clients.get(made.id) == made
        assert factory.made_in == [("kayse-portal", True)]
        assert factory.requests == 2
        (session,) = factory.sessions
        assert not session.closed
    assert session.closed


def test_a_client_never_closed_closes_its_factory_session_when_collected(emulator: ThreadedEmulator) -> None:
    """Dropped without close(): the session the factory made is closed with the client, nothing left open."""
    factory = _Factory()
    kayse = _kayse(emulator, factory)
    kayse.metadata.objects()
    del kayse
    gc.collect()
    (session,) = factory.sessions
    assert session.closed


def test_a_failing_factory_fails_the_call_and_is_tried_again(emulator: ThreadedEmulator) -> None:
    """The factory's error reaches the caller; the next call runs the factory again and goes through."""
    outcomes: list[Any] = [OSError("no proxy configuration"), "not a session"]
    factory = _Factory()

    def flaky() -> aiohttp.ClientSession:
        if outcomes:
            outcome = outcomes.pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome  # type: ignore[no-any-return]
        return factory()

    with _kayse(emulator, flaky) as kayse:
        with pytest.raises(OSError, match="no proxy configuration"):
            kayse.metadata.objects()
        with pytest.raises(errors.ConfigurationError, match=r"session_factory must return an aiohttp\.ClientSession"):
            kayse.metadata.objects()
        assert isinstance(kayse.metadata.objects(), list)
    assert factory.requests == 1
    assert factory.sessions[0].closed


def test_a_session_or_a_bad_factory_is_refused_in_the_constructor() -> None:
    """session= is refused (it belongs to another loop) with a pointer to session_factory; so is a non-callable."""
    with pytest.raises(errors.ConfigurationError, match="session_factory"):
        Kayse("k", session=object())  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="session_factory must be a callable"):
        Kayse("k", session_factory=object())  # type: ignore[arg-type]
