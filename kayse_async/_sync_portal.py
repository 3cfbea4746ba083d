"""The portal under the blocking client: one event-loop thread per ``Kayse``, started on first use.

A caller thread hands a call to the portal's loop with ``call_soon_threadsafe``
and waits on a plain lock that the task's done-callback releases: two thread
hand-offs per call and nothing more (an ``anyio`` blocking portal spends several
times that per call on task groups and cancel scopes). Everything the async
client does still happens on one loop, in one thread, so ``Kayse`` adds no
logic of its own.

What this module guarantees, and why:

- The portal thread starts on the first call, not in ``Kayse()``: clients that
  are made and dropped cost no thread.
- The ``AsyncKayse`` is built inside the portal's loop (by a factory), so
  anything it binds to a loop binds to the right one.
- A call from the portal's own thread (a progress callback, a quota callback)
  raises at once instead of waiting for itself forever; so does a call from
  another portal's thread that would close a cycle of loops waiting for each
  other.
- Each call runs in a copy of the caller's ``contextvars`` context, as a task
  does in asyncio: context variables set by the caller are seen in the loop,
  and nothing set there leaks back.
- Ctrl-C while a call waits cancels the task underneath, waits briefly for the
  cancellation to finish (the connection is dropped, the quota lease handed
  back), then lets ``KeyboardInterrupt`` through.
- After ``os.fork()`` the child forgets the parent's loop without touching it:
  the old loop, session and sockets are shared with the parent (the epoll
  instance too), so closing or even garbage-collecting them in the child would
  unregister or shut down the parent's connections. They are kept alive for the
  child's whole life instead, and a fresh portal starts on the child's first call.
- A portal nobody closed is closed when it is garbage-collected or at
  interpreter exit (``weakref.finalize``): the session is closed on its own loop
  and the thread joined, so nothing is reported unclosed. The thread is a daemon
  so that interpreter shutdown, which joins non-daemon threads before running
  ``atexit`` hooks, reaches the hook that stops it.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import contextvars
import os
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from .errors import KayseError

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C")

INTERRUPT_GRACE = 5.0
"""Seconds a Ctrl-C waits for the cancelled call to unwind before ``KeyboardInterrupt`` goes up anyway."""

_CLOSED_MESSAGE = "this Kayse client is closed"
_OWN_THREAD_MESSAGE = (
    "a blocking Kayse call was made from the client's own event-loop thread (for example from a "
    "progress or quota callback, or from an iterable that bulk_upsert is reading); it would wait for "
    "itself forever. Do the call after the outer call returns, or use AsyncKayse inside async code"
)
_CYCLE_MESSAGE = (
    "a blocking Kayse call from one client's event-loop thread to another client whose loop is "
    "itself waiting for the first one (callbacks calling each other's clients); it would wait forever"
)
_FORKED_ITERATOR_MESSAGE = "this iterator was started before os.fork() or before the client was closed; start a new one"


class _Call:
    """One blocking call: the caller waits on ``lock``; the loop thread releases it exactly once."""

    __slots__ = ("error", "lock", "task", "value")

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.lock.acquire()
        self.task: asyncio.Task[Any] | None = None
        self.value: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.value


class _Running(Generic[C]):
    """A started portal: its loop thread, and the async client made inside it."""

    __slots__ = ("client", "closing", "error", "loop", "pending", "pid", "started", "stop", "thread", "thread_id")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.thread_id = -1
        self.client: C | None = None
        self.error: BaseException | None = None
        self.closing = False
        self.started = threading.Event()
        self.stop: asyncio.Event | None = None
        # Calls handed to the loop whose start may never run (the loop stopping
        # under them): failed after the loop closes, so no caller waits forever.
        self.pending: set[_Call] = set()

    # -- the loop thread ---------------------------------------------------

    def main(self, factory: Callable[[], C], close: Callable[[C], Awaitable[None]]) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        self.thread_id = threading.get_ident()
        _loop_threads.add(self.thread_id)
        try:
            loop.run_until_complete(self._serve(factory, close))
        except BaseException as exc:  # the factory failed: hand the error to the first caller
            self.error = exc
        finally:
            self.closing = True
            self.started.set()
            try:
                _cancel_all(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                for call in list(self.pending):
                    self._finish(call, None, KayseError(_CLOSED_MESSAGE))
                _loop_threads.discard(self.thread_id)

    async def _serve(self, factory: Callable[[], C], close: Callable[[C], Awaitable[None]]) -> None:
        self.stop = asyncio.Event()
        client = factory()
        self.client = client
        self.started.set()
        try:
            await self.stop.wait()
        finally:
            self.closing = True
            # Calls still running when close() came fail with a clear error rather than
            # with whatever the closing session would make of them.
            current = asyncio.current_task()
            others = [task for task in asyncio.all_tasks() if task is not current]
            for task in others:
                task.cancel()
            if others:
                await asyncio.gather(*others, return_exceptions=True)
            await close(client)
            # Let the transports' connection_lost callbacks run before the loop goes.
            await asyncio.sleep(0)

    def _finish(self, call: _Call, value: Any, error: BaseException | None) -> None:
        if call not in self.pending:
            return
        self.pending.discard(call)
        call.value = value
        call.error = error
        call.lock.release()

    # -- any caller thread ---------------------------------------------------

    def run(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, awaitable: bool) -> Any:
        """Run ``func(*args, **kwargs)`` on the loop (awaiting it if ``awaitable``) and wait for the result."""
        me = threading.get_ident()
        if me == self.thread_id:
            raise KayseError(_OWN_THREAD_MESSAGE)
        if me not in _loop_threads:
            return self._submit(func, args, kwargs, awaitable)
        # A callback on another client's loop: that loop now waits for this one. Refuse a call
        # that would close a cycle of loops waiting for each other.
        with _blocked_lock:
            target: _Running[Any] | None = self
            while target is not None:
                if target.thread_id == me:
                    raise KayseError(_CYCLE_MESSAGE)
                target = _blocked_on.get(target.thread_id)
            _blocked_on[me] = self
        try:
            return self._submit(func, args, kwargs, awaitable)
        finally:
            with _blocked_lock:
                del _blocked_on[me]

    def _submit(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], awaitable: bool) -> Any:
        loop = self.loop
        assert loop is not None
        call = _Call()
        # The call runs in a copy of the caller's context, so that context variables (a request
        # id in a logging filter, a tracing span) cross into the loop thread with it. Explicit,
        # so that the task and the callback that makes it share that one copy.
        context = contextvars.copy_context()

        def start() -> None:
            if self.closing:
                self._finish(call, None, KayseError(_CLOSED_MESSAGE))
                return
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._finish(call, None, exc)
                return
            if not awaitable:
                self._finish(call, result, None)
                return
            task: asyncio.Task[Any] = loop.create_task(result, context=context)
            call.task = task
            task.add_done_callback(done)

        def done(task: asyncio.Task[Any]) -> None:
            if task.cancelled():
                self._finish(call, None, KayseError(f"{_CLOSED_MESSAGE} (the call was cancelled)"))
                return
            error = task.exception()
            self._finish(call, None if error is not None else task.result(), error)

        self.pending.add(call)
        try:
            loop.call_soon_threadsafe(start, context=context)
        except RuntimeError:  # the loop is closed
            self.pending.discard(call)
            raise KayseError(_CLOSED_MESSAGE) from None
        try:
            call.lock.acquire()
        except BaseException:
            self._interrupt(call)
            raise
        return call.outcome()

    def _interrupt(self, call: _Call) -> None:
        """Cancel ``call``'s task after an exception (Ctrl-C) in the waiting thread, then wait a little for it."""
        loop = self.loop
        assert loop is not None

        def cancel() -> None:
            # Runs after start() (callbacks run in order), so the task exists if it was made.
            if call.task is not None:
                call.task.cancel()
            else:
                self._finish(call, None, None)

        try:
            loop.call_soon_threadsafe(cancel)
        except RuntimeError:
            return
        # A second Ctrl-C here goes straight up: the user asked twice.
        if call.lock.acquire(timeout=INTERRUPT_GRACE):
            call.error = None

    def request_stop(self) -> None:
        """Ask the loop thread to close the client and stop; does not wait."""
        loop, stop = self.loop, self.stop
        if loop is None or stop is None:
            return
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(stop.set)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


# Loop threads of every portal, and which portal each of them is blocked on (a callback on one
# client's loop calling another client): enough to refuse a call that would close a cycle.
_loop_threads: set[int] = set()
_blocked_on: dict[int, _Running[Any]] = {}
_blocked_lock = threading.Lock()


# Objects of a portal that the parent process owned: kept for the child's whole life.
_INHERITED: list[object] = []


def _keep_forever(obj: object) -> None:
    """Never let the child finalize ``obj``: its sockets and epoll instance are the parent's too.

    A reference held by a module list would be dropped at interpreter shutdown,
    and finalizing an aiohttp connector closes its transports (unregistering
    their sockets from the shared epoll, sending TLS close_notify on the
    parent's connections). One extra reference count that is never given back
    keeps the object, and all it holds, out of reach of shutdown.
    """
    _INHERITED.append(obj)
    # Without the C API (not CPython) the list is the best that can be done.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


class _Core(Generic[C]):
    """What a portal's finalizer needs: everything but the public handle."""

    __slots__ = ("__weakref__", "_close", "_closed", "_factory", "_lock", "_state", "_thread_name")

    def __init__(self, factory: Callable[[], C], close: Callable[[C], Awaitable[None]], thread_name: str) -> None:
        self._factory = factory
        self._close = close
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self._state: _Running[C] | None = None
        self._closed = False

    def running(self) -> _Running[C]:
        state = self._state
        if state is not None and state.pid == os.getpid():
            return state
        return self._start()

    def _start(self) -> _Running[C]:
        with self._lock:
            if self._closed:
                raise KayseError(_CLOSED_MESSAGE)
            state = self._state
            if state is not None and state.pid == os.getpid():
                return state
            if state is not None:  # forked without the at-fork hook having run
                _keep_forever(state)
                self._state = None
            state = _Running[C]()
            thread = threading.Thread(
                target=state.main, args=(self._factory, self._close), name=self._thread_name, daemon=True
            )
            state.thread = thread
            thread.start()
            try:
                state.started.wait()
            except BaseException:
                # Interrupted while the thread starts: stop it once it has, from the side.
                threading.Thread(target=_stop_when_started, args=(state,), daemon=True).start()
                raise
            if state.error is not None:
                thread.join()
                error, state.error = state.error, None
                raise error
            self._state = state
            return state

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def thread(self) -> threading.Thread | None:
        state = self._state
        return state.thread if state is not None and state.pid == os.getpid() else None

    def close(self) -> None:
        state = self._state
        if state is not None and threading.get_ident() == state.thread_id:
            raise KayseError("close() was called from the client's own event-loop thread; call it from another thread")
        with self._lock:
            self._closed = True
            state, self._state = self._state, None
        if state is None or state.pid != os.getpid():
            return
        state.request_stop()
        if state.thread is not None:
            state.thread.join()

    def finalize(self) -> None:
        """The finalizer: like close(), but never raises and never joins its own thread."""
        state = self._state
        if state is not None and threading.get_ident() == state.thread_id:
            # The last reference went away inside the loop: close from another thread.
            threading.Thread(target=self.finalize, name=f"{self._thread_name}-closer").start()
            return
        with contextlib.suppress(Exception):
            self.close()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's portal without touching it."""
        self._lock = threading.Lock()
        state, self._state = self._state, None
        if state is not None:
            _keep_forever(state)


def _stop_when_started(state: _Running[Any]) -> None:
    state.started.wait()
    state.request_stop()
    if state.thread is not None:
        state.thread.join()


_cores: weakref.WeakSet[_Core[Any]] = weakref.WeakSet()
_cores_lock = threading.Lock()


def _before_fork() -> None:
    _cores_lock.acquire()


def _after_fork_in_parent() -> None:
    _cores_lock.release()


def _after_fork_in_child() -> None:
    global _blocked_lock, _cores_lock
    _cores_lock = threading.Lock()
    # The parent's loop threads do not exist here, and their idents may be reused.
    _blocked_lock = threading.Lock()
    _loop_threads.clear()
    _blocked_on.clear()
    for core in list(_cores):
        core.forget_after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


class Portal(Generic[C]):
    """Runs calls on one client of type ``C`` living in its own event-loop thread; blocking, thread-safe.

    ``factory`` makes the client inside the loop (and again in a forked child);
    ``close`` closes it there. The resource wrappers hold the portal, so the
    thread lives while any of them does.
    """

    __slots__ = ("__weakref__", "_core")

    def __init__(
        self, factory: Callable[[], C], close: Callable[[C], Awaitable[None]], *, thread_name: str = "kayse-portal"
    ) -> None:
        core = _Core(factory, close, thread_name)
        self._core = core
        with _cores_lock:
            _cores.add(core)
        weakref.finalize(self, core.finalize)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._core.closed

    @property
    def thread(self) -> threading.Thread | None:
        """The loop thread, if started (in this process)."""
        return self._core.thread

    def close(self) -> None:
        """Close the client on its loop, stop the loop and join its thread; idempotent."""
        self._core.close()

    def call(
        self, attr: str | None, func: Callable[Concatenate[Any, P], Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``func(client.<attr>, *args, **kwargs)`` on the loop and return its result."""
        state = self._core.running()
        target = state.client if attr is None else getattr(state.client, attr)
        result: T = state.run(func, (target, *args), kwargs, awaitable=True)
        return result

    def call_sync(
        self, attr: str | None, func: Callable[Concatenate[Any, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run the plain function ``func(client.<attr>, *args, **kwargs)`` on the loop and return its result."""
        state = self._core.running()
        target = state.client if attr is None else getattr(state.client, attr)
        result: T = state.run(func, (target, *args), kwargs, awaitable=False)
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

        The call itself happens now, so that bad arguments raise here and not
        at the first ``next()``. Closing the generator (breaking out of a
        ``for`` loop drops it) closes the async iterator on the loop.
        """
        state = self._core.running()
        target = state.client if attr is None else getattr(state.client, attr)
        iterator: AsyncIterator[T] = state.run(func, (target, *args), kwargs, awaitable=False)
        return _walk(self, state, iterator)


def _walk(portal: Portal[Any], state: _Running[Any], iterator: AsyncIterator[T]) -> Generator[T, None, None]:
    # ``portal`` is an argument only to keep the loop alive as long as the generator.
    finished = False
    try:
        while True:
            if state.pid != os.getpid() or state.closing:
                raise KayseError(_FORKED_ITERATOR_MESSAGE)
            try:
                item: T = state.run(_anext, (iterator,), {}, awaitable=True)
            except StopAsyncIteration:
                finished = True
                return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if (
            not finished
            and aclose is not None
            and state.pid == os.getpid()
            and not state.closing
            and threading.get_ident() != state.thread_id
        ):
            with contextlib.suppress(Exception):
                state.run(_aclose, (aclose,), {}, awaitable=True)


async def _anext(iterator: AsyncIterator[T]) -> T:
    # __anext__ may return any awaitable; a task needs a coroutine.
    return await iterator.__anext__()


async def _aclose(aclose: Callable[[], Awaitable[object]]) -> None:
    await aclose()
