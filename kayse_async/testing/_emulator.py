"""Running the emulator: in the current event loop, or in a thread of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Self, TypeVar

from aiohttp import web

from ._app import ResetForm, Service, Settings
from ._faults import FAULT_KINDS
from ._ratelimit import Window
from ._store import Store

_T = TypeVar("_T")

SHUTDOWN_TIMEOUT = 2.0
"""Seconds a stopping emulator waits for requests still being served."""


class _Controls:
    """What both runners offer: the keys, the settings, the data, the stats, and changes while running."""

    service: Service

    def _call(self, function: Callable[[], _T]) -> _T:
        return function()

    @property
    def api_key(self) -> str:
        """The key the main routes accept in ``X-API-KEY``."""
        return self.service.settings.api_key

    @property
    def calls_api_key(self) -> str:
        """The key ``/v1/calls`` accepts in ``X-Public-Api-Key``."""
        return self.service.settings.calls_api_key

    @property
    def settings(self) -> Settings:
        """The current settings."""
        return self.service.settings

    @property
    def store(self) -> Store:
        """The data: ``clients``, ``cases``, ``case_lists``, ``campaigns`` by id, and ``outbox``."""
        return self.service.store

    def stats(self) -> dict[str, Any]:
        """What ``GET /_emulator/stats`` returns."""
        return self._call(self.service.stats.as_dict)

    def reset_stats(self, *, store: bool = False, limits: bool = False) -> None:
        """Empty the stats; with ``store`` all data too; with ``limits`` every rate budget."""
        self._call(lambda: self.service.reset(store=store, limits=limits))

    def configure(self, **changes: Any) -> None:
        """Change any settings by name (see :class:`Settings`); ValueError if one is bad."""
        self._call(lambda: self.service.configure(**changes))

    def set_faults(
        self,
        rate: float,
        kinds: Iterable[str] | None = None,
        *,
        latency_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Inject faults into ``rate`` (0 to 1) of the requests, of the given kinds (None: unchanged)."""
        kinds = None if kinds is None else tuple(kinds)
        self._configure_given(fault_rate=rate, fault_kinds=kinds, latency_ms=latency_ms, seed=seed)

    def set_rate_limit(
        self, limit: int, period: float | None = None, window: Window | None = None, reset: ResetForm | None = None
    ) -> None:
        """Change the rate limit (``limit`` 0: off; None: unchanged); every budget starts afresh."""
        self._configure_given(limit=limit, period=period, window=window, reset=reset)

    def _configure_given(self, **changes: Any) -> None:
        self.configure(**{name: value for name, value in changes.items() if value is not None})


class Emulator(_Controls):
    """A local Kayse API server on a real socket, run in the current event loop (``async with``).

    ``port=0`` picks a free port. ``clock``, the rate limiter's monotonic clock, is by default the
    serving loop's ``time()``, so a fast-forwarded loop moves the windows too. See docs/emulator.md.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        calls_api_key: str | None = None,
        limit: int = 500,
        period: float = 3600.0,
        window: Window = "fixed",
        reset: ResetForm = "delta",
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        latency_ms: float = 0.0,
        seed: int | None = None,
        max_batch: int | None = None,
        clock_skew: float = 0.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        settings = Settings(
            api_key=api_key,
            calls_api_key=api_key if calls_api_key is None else calls_api_key,
            limit=limit,
            period=period,
            window=window,
            reset=reset,
            fault_rate=fault_rate,
            fault_kinds=tuple(fault_kinds),  # type: ignore[arg-type]  # checked by Settings.check
            latency_ms=latency_ms,
            seed=seed,
            max_batch=max_batch,
            clock_skew=clock_skew,
        )
        self.service = Service(settings, clock=clock or time.monotonic)
        """The emulator's state and behaviour (settings, store, limiter, stats)."""
        self.host = host
        self._port = port
        self._follow_loop_time = clock is None
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"<Emulator {self.url if self._runner is not None else 'stopped'}>"

    @property
    def port(self) -> int:
        """The port served (the one picked, once started with ``port=0``)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL of the server, for both ``base_url`` and ``calls_base_url``."""
        if self._runner is None and self._port == 0:
            raise RuntimeError("the emulator is not started: its port is not known yet")
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Start serving; returns once the socket accepts connections."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        if self._follow_loop_time:
            self.service.clock = asyncio.get_running_loop().time
        runner = web.AppRunner(
            self.service.application(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


class ThreadedEmulator(_Controls):
    """The emulator for synchronous code (``with``): an :class:`Emulator` served by its own event loop in a
    daemon thread. Its methods run in that thread, safe from any thread; read ``store`` only while idle."""

    def __init__(self, api_key: str = "test-key", **options: Any) -> None:
        self.emulator = Emulator(api_key, **options)
        """The :class:`Emulator` the thread runs."""
        self.service = self.emulator.service
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<ThreadedEmulator {self.url if self._thread is not None else 'stopped'}>"

    def start(self) -> None:
        """Start the thread; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.emulator.start())
            except BaseException as error:
                ready.set_exception(error)
                loop.close()
                return
            ready.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.emulator.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="kayse-emulator", daemon=True)
        thread.start()
        try:
            ready.result()
        except BaseException:
            thread.join()
            raise
        self._loop, self._thread = loop, thread

    def stop(self) -> None:
        """Stop the server and its thread."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call(self, function: Callable[[], _T]) -> _T:
        loop = self._loop
        if loop is None:
            return function()

        async def run() -> _T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    @property
    def url(self) -> str:
        """The base URL of the server."""
        return self.emulator.url

    @property
    def port(self) -> int:
        """The port served."""
        return self.emulator.port

    @property
    def host(self) -> str:
        """The host served."""
        return self.emulator.host

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of all data, taken in the server's thread."""
        return self._call(self.emulator.store.snapshot)
