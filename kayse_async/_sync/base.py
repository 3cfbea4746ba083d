"""What ``Kayse`` adds to the generated wrappers: its portal, ``close``, the context manager, ``quota``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from .._client import AsyncKayse
from ..errors import ConfigurationError
from ..models import QuotaSnapshot
from .portal import Portal


async def _close_client(client: AsyncKayse) -> None:
    await client.aclose()


def _quota_of(client: AsyncKayse) -> QuotaSnapshot:
    return client.quota


class KayseBase:
    """The lifecycle half of ``Kayse``; the generated half adds the constructor and the resources."""

    base_url: str
    """The main API's base URL, after the environment and defaults were applied."""
    calls_base_url: str
    """The calls API's base URL, after the environment and defaults were applied."""

    def __init__(self, factory: Callable[[], AsyncKayse], *, session: object = None) -> None:
        if session is not None:
            raise ConfigurationError(
                "session: a blocking Kayse runs its own event loop, and an aiohttp session belongs to the "
                "loop that created it; pass no session (use AsyncKayse to bring your own)"
            )
        # Built once here, outside any loop, only to check the arguments now rather than at
        # the first call; the client that serves calls is built inside the portal's loop.
        probe = factory()
        self.base_url = probe.base_url
        self.calls_base_url = probe.calls_base_url
        self._portal: Portal[AsyncKayse] = Portal(factory, _close_client, thread_name="kayse-portal")

    def __repr__(self) -> str:
        state = " closed" if self._portal.closed else ""
        return f"<{type(self).__name__} {self.base_url}{state}>"

    @property
    def quota(self) -> QuotaSnapshot:
        """What the SDK knows of the key's budget now (``limit``, ``remaining``, ``resets_at``); no request."""
        return self._portal.call_sync(None, _quota_of)

    @property
    def closed(self) -> bool:
        """True once the client is closed."""
        return self._portal.closed

    @property
    def portal_thread(self) -> threading.Thread | None:
        """The client's helper thread (it makes and closes the client, and runs its loop for handed-off calls
        when no calling thread does), once the first call started it; None before."""
        return self._portal.thread

    def close(self) -> None:
        """Close the client: its session on its own loop, then the loop and its thread. Idempotent.

        Calls still running in other threads fail with ``errors.KayseError``.
        Must not be called from code running on the client's loop (a callback).
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
