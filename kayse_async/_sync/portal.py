"""The portal under ``Kayse``: an anyio blocking portal, in a thread of its own, running one async client.

Each call is a task on the portal's loop (see docs/sync.md). What this module adds to anyio's portal:

- the thread (``kayse-portal``, a daemon) starts on the first call; the client is opened and closed in the loop;
- a call from the loop itself, or closing a cycle of loops waiting for each other, raises at once;
- Ctrl-C cancels the task underneath and waits briefly for it to unwind before ``KeyboardInterrupt`` goes up;
- a forked child leaves the parent's loop, session and sockets alone (they share kernel objects with the
  parent): an idle daemon thread holds them for the child's life (its frames are never cleared at exit),
  and the child starts its own portal on its first call;
- a portal nobody closed is closed when collected or at exit (``weakref.finalize``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager
from inspect import isawaitable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from ..errors import KayseError

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C")

THREAD_NAME = "kayse-portal"
INTERRUPT_GRACE = 5.0
"""Seconds a Ctrl-C waits for the cancelled call to unwind before ``KeyboardInterrupt`` goes up anyway."""

_CLOSED = "this Kayse client is closed"
_OWN_THREAD = (
    "a blocking Kayse call was made from the client's own event-loop thread (for example from a "
    "progress or quota callback, or from an iterable that bulk_upsert is reading); it would wait for "
    "itself forever. Do the call after the outer call returns, or use AsyncKayse inside async code"
)
_CYCLE = (
    "a blocking Kayse call from one client's event-loop thread to another client whose loop is "
    "itself waiting for the first one (callbacks calling each other's clients); it would wait forever"
)
_STALE_ITERATOR = "this iterator was started before os.fork() or before the client was closed; start a new one"

# Which portal each portal thread is waiting for right now (a callback on one client's loop calling
# another client): enough to refuse a call that would close a cycle of loops waiting for each other.
_loop_threads: set[int] = set()
_waiting: dict[int, _Running[Any]] = {}
_waiting_lock = threading.Lock()


class _Running(Generic[C]):
    """A started portal: its thread, anyio's portal in it, and the client opened in its loop."""

    client: C
    portal: BlockingPortal
    loop: asyncio.AbstractEventLoop

    def __init__(self, open_client: Callable[[], AbstractAsyncContextManager[C]]) -> None:
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(open_client,), name=THREAD_NAME, daemon=True)
        self.thread.start()
        self.ident = self.thread.ident

    def _main(self, open_client: Callable[[], AbstractAsyncContextManager[C]]) -> None:
        _loop_threads.add(threading.get_ident())
        try:
            anyio.run(self._serve, open_client)
        except BaseException as exc:  # the client could not be opened: its first callers get the error
            self.error = exc
        finally:
            _loop_threads.discard(threading.get_ident())
            self.ready.set()

    async def _serve(self, open_client: Callable[[], AbstractAsyncContextManager[C]]) -> None:
        # The portal closes first (cancelling what still runs), then the client.
        async with open_client() as client, BlockingPortal() as portal:
            self.client, self.portal = client, portal
            self.loop = asyncio.get_running_loop()
            self.ready.set()
            await portal.sleep_until_stopped()

    def stop(self) -> None:
        """Cancel what runs, close the client on its loop and join the thread (not from the thread itself)."""
        self.ready.wait()
        if self.error is None:
            with contextlib.suppress(RuntimeError):  # stopped already
                self.portal.call(self.portal.stop, True)
        self.thread.join()


def _enter_wait(me: int, running: _Running[Any]) -> None:
    """Record that loop thread ``me`` waits for ``running``, unless that closes a cycle of waiting loops."""
    with _waiting_lock:
        target: _Running[Any] | None = running
        while target is not None:
            if target.ident == me:
                raise KayseError(_OWN_THREAD if target is running else _CYCLE)
            target = _waiting.get(target.ident or 0)
        _waiting[me] = running


class _Call:
    """One call handed to the loop: Ctrl-C cancels it through here, even before ``start_task_soon`` returned.

    That blocks until the loop spawned the task, which may already be sending.
    """

    __slots__ = ("cancelled", "done", "scope")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.scope: anyio.CancelScope | None = None
        self.cancelled = False

    def cancel(self) -> None:
        """On the loop: cancel the call, or keep it from starting."""
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


async def _guarded(call: _Call, function: Callable[[Any], Any], client: Any) -> Any:
    try:
        with anyio.CancelScope() as call.scope:
            if not call.cancelled:
                result = function(client)
                return await result if isawaitable(result) else result
        return None
    finally:
        call.done.release()


class _Core(Generic[C]):
    """What the finalizer of a ``Portal`` needs: everything but the handle that resources hold."""

    def __init__(self, open_client: Callable[[], AbstractAsyncContextManager[C]]) -> None:
        self.open_client = open_client
        self.running: _Running[C] | None = None
        self.closed = False
        # Guards running/closed, and counts the calls being handed over, which close() waits for:
        # anyio's hand-over would wait forever on a loop that stopped under it.
        self.cond = threading.Condition(threading.Lock())
        self.handing = 0

    def run(self, function: Callable[[C], Any], pinned: _Running[C] | None = None) -> Any:
        """``function(client)`` on the loop, awaited if it returns an awaitable; blocks for the result."""
        with self.cond:
            if self.closed or (pinned is not None and pinned is not self.running):
                raise KayseError(_CLOSED if pinned is None else _STALE_ITERATOR)
            if self.running is None:
                self.running = _Running(self.open_client)
            running = self.running
            self.handing += 1
        me = threading.get_ident()
        call: _Call | None = None
        try:
            try:
                running.ready.wait()
                if running.error is not None:
                    with self.cond:
                        if self.running is running:
                            self.running = None  # the next call tries again
                    running.thread.join()
                    raise running.error
                if me in _loop_threads:
                    _enter_wait(me, running)
                call = _Call()
                future = running.portal.start_task_soon(_guarded, call, function, running.client)
            finally:
                with self.cond:
                    self.handing -= 1
                    self.cond.notify_all()
            return future.result()
        except concurrent.futures.CancelledError:
            raise KayseError(f"{_CLOSED} (the call was cancelled)") from None
        except BaseException:
            if call is not None and not call.done.acquire(blocking=False):
                # Ctrl-C: cancel the call and let it unwind; a second Ctrl-C goes up at once.
                with contextlib.suppress(RuntimeError):  # the loop is gone
                    running.loop.call_soon_threadsafe(call.cancel)
                call.done.acquire(timeout=INTERRUPT_GRACE)
            raise
        finally:
            _waiting.pop(me, None)

    def close(self) -> None:
        running = self.running
        if running is not None and running.ident == threading.get_ident():
            raise KayseError("close() was called from the client's own event-loop thread; call it from another thread")
        with self.cond:
            self.closed = True
            running, self.running = self.running, None
            while self.handing:
                self.cond.wait()
        if running is not None:
            running.stop()

    def finalize(self) -> None:
        """The finalizer: close(), from another thread if the last reference went away on the loop."""
        running = self.running
        if running is not None and running.ident == threading.get_ident():
            threading.Thread(target=self.finalize, name=f"{THREAD_NAME}-closer").start()
            return
        with contextlib.suppress(Exception):
            self.close()

    def forget(self) -> _Running[C] | None:
        """In a forked child: drop the parent's portal without touching it, and return it."""
        self.cond = threading.Condition(threading.Lock())
        self.handing = 0
        running, self.running = self.running, None
        return running


class Portal(Generic[C]):
    """Runs calls on one client of type ``C``, opened in an anyio blocking portal's loop; blocking, thread-safe.

    ``open_client`` opens the client inside the loop (again in a forked child).
    Resources and iterators hold the portal, so its thread lives while any of them does.
    A view (:meth:`view`) runs its calls on the same loop, on a client derived from that one.
    """

    __slots__ = ("__weakref__", "_closed", "_core", "_derive", "_owner")

    def __init__(self, open_client: Callable[[], AbstractAsyncContextManager[C]]) -> None:
        self._core = _Core(open_client)
        self._derive: Callable[[C], C] | None = None
        self._owner: Portal[C] | None = None
        self._closed = False
        _cores.add(self._core)
        weakref.finalize(self, self._core.finalize)

    def view(self, derive: Callable[[C], C]) -> Portal[C]:
        """A portal on the same loop whose calls go to ``derive(client)``; closing it closes only the view."""
        view: Portal[C] = Portal.__new__(Portal)
        view._core, view._owner, view._closed = self._core, self, False
        parent = self._derive
        view._derive = derive if parent is None else lambda client: derive(parent(client))
        return view

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (on this view, or on the portal it was made from)."""
        return self._closed or self._core.closed

    @property
    def thread(self) -> threading.Thread | None:
        """The portal's thread, once started (in this process)."""
        running = self._core.running
        return running.thread if running is not None else None

    def close(self) -> None:
        """Cancel the calls still running, close the client on its loop, stop the loop and join its thread.

        On a view: only the view is closed; its further calls raise ``KayseError``.
        """
        if self._owner is None:
            self._core.close()
        self._closed = True

    def _on(self, client: C, attr: str | None) -> Any:
        if self._closed:
            raise KayseError(_CLOSED)
        if self._derive is not None:
            client = self._derive(client)
        return client if attr is None else getattr(client, attr)

    def call(
        self, attr: str | None, func: Callable[Concatenate[Any, P], Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``func(client.<attr>, *args, **kwargs)`` on the loop and return its result."""
        result: T = self._core.run(lambda client: func(self._on(client, attr), *args, **kwargs))
        return result

    def iterate(
        self,
        attr: str | None,
        func: Callable[Concatenate[Any, P], AsyncIterator[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Generator[T, None, None]:
        """``func(client.<attr>, ...)`` returns an async iterator: walk it as a plain generator.

        The call happens now (bad arguments raise here); closing the generator closes the iterator.
        """
        iterator: AsyncIterator[T] = self._core.run(lambda client: func(self._on(client, attr), *args, **kwargs))
        return _walk(self, self._core.running, iterator)


def _walk(portal: Portal[Any], running: _Running[Any] | None, iterator: AsyncIterator[T]) -> Generator[T, None, None]:
    # ``portal`` is an argument only to keep the loop alive as long as the generator.
    core = portal._core
    finished = False
    try:
        while True:
            try:
                item: T = core.run(lambda _: anext(iterator), running)
            except StopAsyncIteration:
                finished = True
                return
            yield item
    finally:
        if not finished and (aclose := getattr(iterator, "aclose", None)) is not None:
            # Refused when the client was closed or forked since (nothing to close here), or when this
            # runs on the loop's own thread (asyncio closes the async generator when it is collected).
            with contextlib.suppress(Exception):
                core.run(lambda _: aclose(), running)


_cores: weakref.WeakSet[_Core[Any]] = weakref.WeakSet()
_INHERITED: list[object] = []


def _hold(objects: list[object]) -> None:
    """Keep ``objects`` referenced from this thread's frame: never cleared, not even at interpreter exit."""
    threading.Event().wait()


def _after_fork_in_child() -> None:
    global _waiting_lock
    _waiting_lock = threading.Lock()
    _loop_threads.clear()
    _waiting.clear()
    _INHERITED.extend(running for core in list(_cores) if (running := core.forget()) is not None)
    if _INHERITED:  # no thread survives a fork: hold them in one of this process
        threading.Thread(target=_hold, args=(_INHERITED,), name="kayse-inherited", daemon=True).start()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
