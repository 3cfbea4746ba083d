"""What ``Kayse`` adds to the generated twins: its portal, the session factory, ``close``, ``with`` and ``quota``."""

from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from functools import partial
from types import TracebackType
from typing import Any, ClassVar, Self

import aiohttp

from .._client import UNCHANGED, AsyncKayse, Unchanged
from ..errors import ConfigurationError
from ..models import QuotaSnapshot
from .portal import Portal


@contextlib.asynccontextmanager
async def _open(
    make: Callable[..., AsyncKayse], session_factory: Callable[[], aiohttp.ClientSession] | None
) -> AsyncIterator[AsyncKayse]:
    """The async client, opened inside the portal's loop; a session from ``session_factory`` is closed after it."""
    session = session_factory() if session_factory is not None else None
    try:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError(
                f"session_factory must return an aiohttp.ClientSession, got {type(session).__name__}"
            )
        async with make(session=session) as client:
            yield client
    finally:
        if isinstance(session, aiohttp.ClientSession):
            await session.close()


async def _quota_of(client: AsyncKayse) -> QuotaSnapshot:
    return client.quota


class _WithOptions:
    """``client.with_options(**options)``, made once per client on the portal's loop (a forked child makes its own)."""

    def __init__(self, options: Callable[[AsyncKayse], AsyncKayse]) -> None:
        self.options = options
        self.made: weakref.WeakKeyDictionary[AsyncKayse, AsyncKayse] = weakref.WeakKeyDictionary()

    def __call__(self, client: AsyncKayse) -> AsyncKayse:
        derived = self.made.get(client)
        if derived is None:
            derived = self.made[client] = self.options(client)
        return derived


class SyncResource:
    """Base of the generated resource twins: each holds the client's portal."""

    __slots__ = ("_portal",)
    _attr: ClassVar[str]
    """The async resource's attribute on the client (``clients``)."""

    def __init__(self, portal: Portal[AsyncKayse]) -> None:
        self._portal = portal

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class KayseBase:
    """The lifecycle half of ``Kayse``; the generated half adds the constructor's signature and the resources."""

    base_url: str
    """The main API's base URL, after the environment and defaults were applied."""
    calls_base_url: str
    """The calls API's base URL, after the environment and defaults were applied."""

    def __init__(
        self,
        *args: Any,
        session: aiohttp.ClientSession | None = None,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        **kwargs: Any,
    ) -> None:
        if session is not None:
            raise ConfigurationError(
                "session: an aiohttp session belongs to the event loop that created it, and a blocking Kayse "
                "runs its own; pass session_factory=... instead (it is called inside that loop)"
            )
        if session_factory is not None and not callable(session_factory):
            raise ConfigurationError("session_factory must be a callable that returns an aiohttp.ClientSession")
        make = partial(AsyncKayse, *args, **kwargs)
        # Built once here, outside any loop, only to check the arguments now rather than at the
        # first call; the client that serves calls is built inside the portal's loop.
        probe = self._probe = make()
        self.base_url = probe.base_url
        self.calls_base_url = probe.calls_base_url
        self._portal: Portal[AsyncKayse] = Portal(partial(_open, make, session_factory))

    def __repr__(self) -> str:
        state = " closed" if self._portal.closed else ""
        return f"<{type(self).__name__} {self.base_url}{state}>"

    @property
    def quota(self) -> QuotaSnapshot:
        """What the SDK knows of the key's budget now (``limit``, ``remaining``, ``resets_at``); no request."""
        return self._portal.call(None, _quota_of)

    @property
    def closed(self) -> bool:
        """True once the client is closed."""
        return self._portal.closed

    def with_options(
        self,
        *,
        timeout: float | Unchanged = UNCHANGED,
        max_retries: int | Unchanged = UNCHANGED,
        max_wait: float | Unchanged | None = UNCHANGED,
    ) -> Self:
        """A client that differs from this one only in the options given, for calls that need them.

        It shares this client's loop thread, session, quota, keys, base URLs and ``on_retry`` hook.
        Closing it only stops it; closing this client closes the loop for every client derived from it.
        """
        options = partial(AsyncKayse.with_options, timeout=timeout, max_retries=max_retries, max_wait=max_wait)
        derived = copy.copy(self)
        derived._probe = options(self._probe)  # checks the options here, in the caller
        derived._portal = self._portal.view(_WithOptions(options))
        for name, value in vars(self).items():
            if isinstance(value, SyncResource):
                setattr(derived, name, type(value)(derived._portal))
        return derived

    @property
    def portal_thread(self) -> threading.Thread | None:
        """The thread running the client's event loop (anyio's blocking portal), once the first call started it."""
        return self._portal.thread

    def close(self) -> None:
        """Close the client: cancel the calls still running, close its session on its loop, stop the loop. Idempotent.

        Calls still running fail with ``errors.KayseError``. Not from code on the client's loop (a callback).
        """
        self._portal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
