"""The portal under the blocking client: one event loop per ``Kayse``, run by whichever thread calls.

A call from a thread finds the loop idle in the common case (one thread calling
at a time): that thread runs the loop itself for the length of its call, with
no thread hand-off at all, as ``asyncio.run`` would but on a loop that lives on
(its connection pool kept between calls). A call that finds the loop busy (run
by another calling thread, or by the portal thread) hands itself to the loop
with ``call_soon_threadsafe`` and waits on a plain lock that the task's
done-callback releases. When the thread running the loop is done with its own
call and handed-off calls remain, the portal thread (``kayse-portal``, started
on the first call) takes the loop over until they are done, then lets it go
idle again. A thread that already runs an event loop (a notebook, code under
``asyncio.run``) cannot run a second one and always hands its calls off.
Everything the async client does still happens on one loop, one thread at a
time, so ``Kayse`` adds no logic of its own.

What this module guarantees, and why:

- The portal thread starts on the first call, not in ``Kayse()``: clients that
  are made and dropped cost no thread. It makes the client and closes it, and
  runs the loop only for calls handed off with nobody else running it.
- A thread that runs the loop for its call first polls the loop's I/O once, so
  that what came while the loop was idle (a server closing a kept-alive
  connection) is seen before the call picks a connection.
- The ``AsyncKayse`` is built inside the portal's loop (by a factory), so
  anything it binds to a loop binds to the right one.
- A call from code running on the loop (a progress callback, a quota
  callback), in whatever thread runs it, raises at once instead of waiting for
  itself forever; so does a call from another client's loop that would close a
  cycle of loops waiting for each other.
- Each call runs in a copy of the caller's ``contextvars`` context, as a task
  does in asyncio: context variables set by the caller are seen in the loop,
  and nothing set there leaks back.
- Ctrl-C during a call cancels the task underneath, waits briefly for the
  cancellation to finish (the connection is dropped, the quota lease settled),
  then lets ``KeyboardInterrupt`` through: whether the calling thread was
  waiting for a hand-off or running the loop itself.
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

from ..errors import KayseError

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
    """A started portal: its event loop, the async client made inside it, and who drives the loop now.

    At most one thread runs the loop at a time: its ``driver``. A caller that
    finds the loop idle drives it itself for the length of its call; a caller
    that finds it busy (or cannot run it: its thread already runs a loop) hands
    its call to the driver and waits. When a calling driver's call is done and
    handed-off calls remain, the portal thread takes over until they are done.
    """

    __slots__ = (
        "client",
        "closing",
        "cond",
        "driver",
        "error",
        "loop",
        "pending",
        "pid",
        "shutting_down",
        "started",
        "thread",
        "thread_id",
        "wake",
    )

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.thread_id = -1
        self.client: C | None = None
        self.error: BaseException | None = None
        self.closing = False
        self.shutting_down = False
        self.started = threading.Event()
        # Guards driver, pending and closing; notified whenever the driver lets go.
        self.cond = threading.Condition(threading.Lock())
        self.driver: int | None = None
        # Calls handed to the loop by waiting threads, not finished yet: failed with a clear error
        # if the loop closes under them, so no caller waits forever.
        self.pending: set[_Call] = set()
        # Set when the portal thread has work: handed-off calls nobody drives, or the close.
        self.wake = threading.Event()

    # -- the portal thread ---------------------------------------------------

    def main(self, factory: Callable[[], C], close: Callable[[C], Awaitable[None]]) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        self.thread_id = threading.get_ident()
        try:
            self.client = loop.run_until_complete(_build(factory))
        except BaseException as exc:  # the factory failed: hand the error to the first caller
            self.error = exc
            self.closing = True
            self.started.set()
            loop.close()
            return
        self.started.set()
        try:
            self._serve()
        finally:
            try:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(self._shut_down(close))
                _cancel_all(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                with self.cond:
                    self.driver = None
                    _driving.discard(self.thread_id)
                    left = list(self.pending)
                for call in left:
                    self._finish(call, None, KayseError(_CLOSED_MESSAGE))

    def _serve(self) -> None:
        """Drive the loop whenever handed-off calls wait with nobody driving; return on close, holding the loop."""
        loop = self.loop
        assert loop is not None
        me = self.thread_id
        while True:
            self.wake.wait()
            with self.cond:
                self.wake.clear()
                if self.closing:
                    # A calling thread may drive still: the close cancelled its call; wait for it to let go.
                    while self.driver is not None:
                        self.cond.wait()
                    self._take(me)
                    self.shutting_down = True
                    return
                if self.driver is not None or not self.pending:
                    continue  # a calling driver hands over when its own call is done
                self._take(me)
            loop.run_forever()  # stopped by _finish once nothing is pending
            with self.cond:
                self._let_go(me)

    async def _shut_down(self, close: Callable[[C], Awaitable[None]]) -> None:
        # Calls still running when close() came fail with a clear error rather than
        # with whatever the closing session would make of them.
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        if others:
            await asyncio.gather(*others, return_exceptions=True)
        assert self.client is not None
        await close(self.client)
        # Let the transports' connection_lost callbacks run before the loop goes.
        await asyncio.sleep(0)

    def _take(self, me: int) -> None:
        """Become the loop's driver (``cond`` held, nobody driving)."""
        self.driver = me
        _driving.add(me)

    def _let_go(self, me: int) -> None:
        """Give up the loop (``cond`` held); the portal thread takes over if calls still wait."""
        self.driver = None
        _driving.discard(me)
        if self.pending or self.closing:
            self.wake.set()
        self.cond.notify_all()

    def _finish(self, call: _Call, value: Any, error: BaseException | None) -> None:
        with self.cond:
            if call not in self.pending:
                return
            self.pending.discard(call)
            if not self.pending and self.driver == self.thread_id and self.loop is not None:
                self.loop.stop()  # the portal thread drove for handed-off calls only: all done
        call.value = value
        call.error = error
        call.lock.release()

    # -- any caller thread ---------------------------------------------------

    def run(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, awaitable: bool) -> Any:
        """Run ``func(*args, **kwargs)`` on the loop (awaiting it if ``awaitable``) and wait for the result."""
        me = threading.get_ident()
        if me not in _driving:
            return self._dispatch(me, func, args, kwargs, awaitable)
        if self.driver == me:
            raise KayseError(_OWN_THREAD_MESSAGE)
        # A callback on another client's loop: that loop now waits for this one. Refuse a call
        # that would close a cycle of loops waiting for each other.
        with _blocked_lock:
            target: _Running[Any] | None = self
            while target is not None:
                driver = target.driver
                if driver == me:
                    raise KayseError(_CYCLE_MESSAGE)
                target = _blocked_on.get(driver) if driver is not None else None
            _blocked_on[me] = self
        try:
            return self._dispatch(me, func, args, kwargs, awaitable)
        finally:
            with _blocked_lock:
                del _blocked_on[me]

    def _dispatch(
        self, me: int, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], awaitable: bool
    ) -> Any:
        with self.cond:
            if self.closing:
                raise KayseError(_CLOSED_MESSAGE)
            # Drive the loop here when nobody does and this thread runs no loop of its own:
            # no thread hand-off at all, the common case of one thread calling at a time.
            if self.driver is None and asyncio._get_running_loop() is None:
                self._take(me)
                call = None
            else:
                call = _Call()
                self.pending.add(call)
        if call is None:
            return self._drive(me, func, args, kwargs, awaitable)
        return self._submit(call, func, args, kwargs, awaitable)

    def _drive(
        self, me: int, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], awaitable: bool
    ) -> Any:
        """Run the call on the loop in this thread (the driver), then let the loop go."""
        loop = self.loop
        assert loop is not None
        task: asyncio.Task[Any] | None = None
        try:
            # One pass over the I/O first: what came while nobody ran the loop (a server closing an
            # idle kept-alive connection) is seen before the call picks a connection. Stopping the
            # loop before running it polls the selector once and runs what that schedules.
            loop.stop()
            loop.run_forever()
            task = loop.create_task(_invoke(func, args, kwargs, awaitable))
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            if self.closing:
                raise KayseError(f"{_CLOSED_MESSAGE} (the call was cancelled)") from None
            raise
        except BaseException:
            # Ctrl-C (or another error) raised in this thread while it ran the loop: cancel the call
            # underneath (its connection dropped, its budget settled) before letting the error up.
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(asyncio.wait((task,), timeout=INTERRUPT_GRACE))
            raise
        finally:
            with self.cond:
                self._let_go(me)

    def _submit(
        self, call: _Call, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], awaitable: bool
    ) -> Any:
        loop = self.loop
        assert loop is not None
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

        try:
            loop.call_soon_threadsafe(start, context=context)
        except RuntimeError:  # the loop is closed
            with self.cond:
                self.pending.discard(call)
            raise KayseError(_CLOSED_MESSAGE) from None
        with self.cond:
            if self.driver is None:
                self.wake.set()  # nobody drives (this thread could not): the portal thread will
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
        """Ask for the client to be closed and the loop stopped (by the portal thread); does not wait."""
        with self.cond:
            self.closing = True
            driver = self.driver
            self.wake.set()
        loop = self.loop
        if driver is not None and loop is not None:
            # Someone drives: cancel what runs, so that the driver lets go and the portal thread can close.
            with contextlib.suppress(RuntimeError):  # already closed
                loop.call_soon_threadsafe(self._cancel_calls)

    def _cancel_calls(self) -> None:
        # On the loop. Not once the shutdown runs: it cancels what is left itself, and must not cancel itself.
        if not self.shutting_down and self.loop is not None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()

    def driven_by(self, ident: int) -> bool:
        """True when thread ``ident`` runs this portal's loop right now (a call from it would wait for itself)."""
        return self.driver == ident


async def _build(factory: Callable[[], C]) -> C:
    # Inside the running loop: anything the client binds to a loop binds to this one.
    return factory()


async def _invoke(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], awaitable: bool) -> Any:
    result = func(*args, **kwargs)
    if awaitable:
        result = await result
    return result


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


# Threads running a portal's loop right now, and which portal each of them is blocked on (a
# callback on one client's loop calling another client): enough to refuse a call that would
# close a cycle of loops waiting for each other.
_driving: set[int] = set()
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
        if state is not None and state.driven_by(threading.get_ident()):
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
        if state is not None and (state.driven_by(threading.get_ident()) or threading.get_ident() == state.thread_id):
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
    _driving.clear()
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
            and not state.driven_by(threading.get_ident())
        ):
            with contextlib.suppress(Exception):
                state.run(_aclose, (aclose,), {}, awaitable=True)


async def _anext(iterator: AsyncIterator[T]) -> T:
    # __anext__ may return any awaitable; a task needs a coroutine.
    return await iterator.__anext__()


async def _aclose(aclose: Callable[[], Awaitable[object]]) -> None:
    await aclose()
