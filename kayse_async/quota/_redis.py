"""RedisQuota: one budget per key across processes and machines, kept in Redis."""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs

from .. import errors
from .._wire.ratelimit import RateLimitInfo
from ..models import QuotaSnapshot
from ._base import (
    DEFAULT_LIMIT,
    DEFAULT_PERIOD,
    Scheduler,
    Turn,
    WaitCallback,
    check_seconds,
    enqueue,
    logger,
    too_late,
)

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

__all__ = ["RedisLease", "RedisQuota"]

DEFAULT_LEASE_TTL = 120.0
"""Seconds a lease may stay out before Redis counts it as spent by a crashed worker."""

_ANSWER_POLL = 0.02
"""Seconds between looks while only an answer still to come can open room."""

_SCRIPT = importlib.resources.files("kayse_async.quota").joinpath("_redis.lua").read_text(encoding="utf-8")


def _seconds(ms: int) -> float | None:
    """Milliseconds from the script in seconds; -1 (unknown) as None."""
    return None if ms < 0 else ms / 1000.0


def _import_redis() -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError:
        raise errors.ConfigurationError(
            "RedisQuota needs the redis package: install the redis extra, pip install 'kayse-async[redis]'"
        ) from None
    return aioredis


class _LoopState:
    """What RedisQuota holds for one event loop: its client, script, lines and background calls."""

    def __init__(self, client: aioredis.Redis, owned: bool) -> None:
        self.client = client
        self.owned = owned
        self.script: AsyncScript = client.register_script(_SCRIPT)
        self.lines: dict[str, deque[Turn[int]]] = {}
        self.pending: set[asyncio.Task[Any]] = set()


@attrs.define(eq=False, repr=False)
class RedisLease:
    """One unit of a ``RedisQuota`` bucket (see ``Lease``). Its methods return at once; the Redis update
    runs in the background on its loop (``aclose`` waits for it), the unit counting as out until then."""

    _quota: RedisQuota
    _state: _LoopState
    _bucket: str
    _id: int
    _sent: bool = False
    _done: bool = False

    @property
    def bucket(self) -> str:
        """The bucket this unit belongs to."""
        return self._bucket

    def sent(self) -> None:
        """The request is going on the wire: the unit can no longer come back."""
        self._sent = True

    def complete(self, info: RateLimitInfo | None, status: int | None) -> None:
        """The sent request ended; ``info``/``status`` from its response, or None when none came."""
        if not self._done:
            self._done = True
            self._quota._background(self._state, self._bucket, self._quota._complete_args(self._id, info, status))

    def release(self) -> None:
        """Abandon the attempt before sending: the unit goes back (after ``sent()``, it is completed)."""
        if self._sent:
            self.complete(None, None)
        elif not self._done:
            self._done = True
            self._quota._release(self._state, self._bucket, self._id)

    def __repr__(self) -> str:
        return f"<RedisLease bucket={self._bucket!r} id={self._id}>"


class RedisQuota(Scheduler):
    """A scheduler whose state lives in Redis, shared by every process and machine on a key.

    ``url_or_client`` is a Redis URL (a client is then made in each running loop, and closed by
    ``aclose()`` on that loop) or a ``redis.asyncio.Redis`` client (used as is, never closed here).

    ``limit`` and ``period`` are the prior, as for ``MemoryQuota``, whose rules apply
    (``docs/quota.md``). Each bucket is one hash, ``key_prefix + bucket``, changed only by one atomic
    Lua script on Redis's own clock (``TIME``): the machines' clocks never matter. A lease carries an
    expiry (``lease_ttl`` seconds): a worker that dies with one holds no budget longer (the unit
    counts as spent).

    Waiting is by polling: callers look again when the script says the budget can change, or after
    ``poll_interval`` seconds at most (default: 1% of the server's window, 20 ms to 1 s). The head
    of a process's line takes units for the callers behind it in one call (at most half the room).
    Within a loop callers are served first come, first served; across processes the first to look
    wins, except that a priority retry holds the others back while it waits (best effort).

    ``snapshot()`` does no I/O: it shows what the last script call in this process reported.
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        limit: int = DEFAULT_LIMIT,
        period: float = DEFAULT_PERIOD,
        key_prefix: str = "kayse:quota:",
        lease_ttl: float = DEFAULT_LEASE_TTL,
        safety_margin: float | None = None,
        poll_interval: float | None = None,
        on_wait: WaitCallback | None = None,
    ) -> None:
        self._redis = _import_redis()
        super().__init__(limit, period, safety_margin, on_wait)
        check_seconds("lease_ttl", lease_ttl)
        check_seconds("poll_interval", poll_interval, none=True)
        if not isinstance(key_prefix, str):
            raise errors.ConfigurationError("key_prefix: must be a string")
        if isinstance(url_or_client, str):
            self._url: str | None = url_or_client
            self._client: aioredis.Redis | None = None
        elif isinstance(url_or_client, self._redis.Redis):
            self._url = None
            self._client = url_or_client
        else:
            raise errors.ConfigurationError("url_or_client: must be a redis:// URL or a redis.asyncio.Redis client")
        self._prefix = key_prefix
        self._ttl = float(lease_ttl)
        self._poll_option = poll_interval
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._cache: dict[str, QuotaSnapshot] = {}
        self._warned: set[str] = set()
        self._spans: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"RedisQuota(limit={self._limit}, period={self._period}, key_prefix={self._prefix!r})"

    # -- internals ----------------------------------------------------------------------

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                if self._client is not None:
                    state = _LoopState(self._client, owned=False)
                else:
                    assert self._url is not None
                    state = _LoopState(self._redis.Redis.from_url(self._url), owned=True)
                self._loops[loop] = state
            return state

    def _config(self) -> list[Any]:
        margin = -1.0 if self._margin is None else self._margin * 1000.0
        return [self._limit, self._period * 1000.0, margin, self._ttl * 1000.0]

    def _complete_args(self, lease_id: int, info: RateLimitInfo | None, status: int | None) -> list[Any]:
        i = RateLimitInfo() if info is None else info
        counts = [-1 if v is None else v for v in (status, int(i.present), i.limit, i.remaining)]
        times = [-1 if v is None else v * 1000.0 for v in (i.reset_after, i.retry_after, i.window, i.server_date)]
        return ["complete", *self._config(), lease_id, *counts, *times]

    def _release(self, state: _LoopState, bucket: str, lease_id: int) -> None:
        """Give a unit never sent back, in the background."""
        self._background(state, bucket, ["release", *self._config(), lease_id])

    async def _call(self, state: _LoopState, bucket: str, args: list[Any]) -> list[int]:
        reply: list[Any] = await state.script(keys=[self._prefix + bucket], args=args)
        values = [int(v) for v in reply]
        limit, remaining, reset_in, window = values[4], values[5], values[6], values[7]
        snapshot = QuotaSnapshot(
            limit=limit,
            remaining=None if remaining < 0 else remaining,
            resets_at=None if reset_in < 0 else self._wall_in(reset_in / 1000.0),
            window=None if window < 0 else window / 1000.0,
        )
        with self._lock:
            self._cache[bucket] = snapshot
            self._spans[bucket] = values[9] / 1000.0
            warn = values[8] == 1 and bucket not in self._warned
            if warn:
                self._warned.add(bucket)
        if warn:
            self._warn_headerless(bucket)
        return values

    def _background(self, state: _LoopState, bucket: str, args: list[Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._call(state, bucket, args))
        state.pending.add(task)
        task.add_done_callback(functools.partial(self._finished, state))

    @staticmethod
    def _finished(state: _LoopState, task: asyncio.Task[Any]) -> None:
        state.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("quota update in Redis failed: %r", task.exception())

    async def _try(
        self, state: _LoopState, bucket: str, need: int, priority: bool, peek: bool, want: int = 1
    ) -> list[int]:
        op = "peek" if peek else "acquire"
        args = [op, *self._config(), need, 1 if priority else 0, 3000.0 * self._poll(bucket), want]
        call = asyncio.ensure_future(self._call(state, bucket, args))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            # The script may have granted a unit we will never hand out: give it back once it answers.
            def give_back(done: asyncio.Future[list[int]]) -> None:
                if not done.cancelled() and done.exception() is None:
                    granted, first = done.result()[:2]
                    for lease_id in range(first, first + granted):
                        self._release(state, bucket, lease_id)

            call.add_done_callback(give_back)
            raise

    # -- the Quota protocol ---------------------------------------------------------------

    async def acquire(self, bucket: str, *, max_wait: float | None = None, priority: bool = False) -> RedisLease:
        """Wait for one unit of ``bucket``'s budget (see ``Quota.acquire``)."""
        check_seconds("max_wait", max_wait, zero=True, none=True, inf=True)
        loop = asyncio.get_running_loop()
        state = self._loop_state()
        line = state.lines.setdefault(bucket, deque())
        turn: Turn[int] = Turn(loop, priority)
        ahead = enqueue(line, turn)
        start = loop.time()
        deadline = None if max_wait is None else start + max_wait
        reported = False

        def report(eta_ms: int, reason: str) -> None:
            nonlocal reported
            if not reported:
                reported = True
                self._report(bucket, _seconds(eta_ms), reason)

        try:
            if ahead:
                values = await self._try(state, bucket, ahead + 1, priority, peek=True)
                if max_wait is not None and too_late(_seconds(values[3]), max_wait):
                    raise self._refuse(bucket, _seconds(values[3]), max_wait)
                report(values[3], "queued")
                while line[0] is not turn and turn.grant is None:
                    if turn.fut.done():
                        # Woken, but a retry took the head meanwhile: wait again.
                        turn.fut = loop.create_future()
                    timeout = None if deadline is None else max(0.0, deadline - loop.time())
                    done, _ = await asyncio.wait((turn.fut,), timeout=timeout)
                    if not done and line[0] is not turn and turn.grant is None:
                        raise self._refuse(bucket, None, max_wait or 0.0)
            while turn.grant is None:
                # One call grants the callers in line behind this one too, as far as the budget goes.
                want = sum(1 for t in line if t.grant is None)
                values = await self._try(state, bucket, 1, priority, peek=False, want=want)
                if values[0] >= 1:
                    ids = list(range(values[1], values[1] + values[0]))
                    for taker in [turn, *(t for t in line if t.grant is None and t is not turn)][: len(ids)]:
                        taker.grant = ids.pop(0)
                        taker.wake()
                    for lease_id in ids:  # their callers left meanwhile
                        self._release(state, bucket, lease_id)
                    break
                wait_ms, eta_ms = values[2], values[3]
                if max_wait is not None:
                    left = max_wait - (loop.time() - start)
                    if too_late(_seconds(eta_ms), left):
                        raise self._refuse(bucket, _seconds(eta_ms), max_wait)
                report(eta_ms, self._reason(bucket))
                # No timer: an answer is to come (a probe is out), in another process maybe; look soon.
                delay = min(self._poll(bucket), _ANSWER_POLL if wait_ms < 0 else wait_ms / 1000.0)
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline - loop.time()))
                await asyncio.sleep(max(delay, 0.001))
        except BaseException:
            if turn.grant is not None:
                # Granted by the head, but this caller is gone: the unit goes back.
                self._release(state, bucket, turn.grant)
            raise
        finally:
            line.remove(turn)
            if line:
                line[0].wake()
        assert turn.grant is not None
        return RedisLease(self, state, bucket, turn.grant)

    def _poll(self, bucket: str) -> float:
        """How often a waiting caller looks again: the option, else 1% of the server's window (20 ms to 1 s)."""
        if self._poll_option is not None:
            return float(self._poll_option)
        return min(1.0, max(0.02, self._spans.get(bucket, self._period) / 100.0))

    def _reason(self, bucket: str) -> str:
        snap = self._cache.get(bucket)
        return "warmup" if snap is None or snap.remaining is None else "exhausted"

    def snapshot(self, bucket: str) -> QuotaSnapshot:
        """The last state of ``bucket`` that Redis reported to this process (no I/O)."""
        with self._lock:
            snap = self._cache.get(bucket)
        return QuotaSnapshot(limit=self._limit, remaining=None) if snap is None else snap

    async def aclose(self) -> None:
        """Wait for this loop's pending updates, then close the client this quota created on it. Idempotent."""
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.pop(loop, None)
        if state is None:
            return
        if state.pending:
            await asyncio.gather(*state.pending, return_exceptions=True)
        if state.owned:
            await state.client.aclose()
