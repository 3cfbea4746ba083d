"""RedisQuota against a real redis-server: shared budget, crashed workers, 429s, max_wait, cancellation."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from quota_sim import FixedServer, Load, SlidingServer

from kayse_async import errors
from kayse_async._wire.ratelimit import RateLimitInfo
from kayse_async.quota import Quota, RedisQuota
from kayse_async.quota._state import BucketState, LeaseRecord

BUCKET = "k:redis"
SEEDS = int(os.environ.get("KAYSE_LUA_SEEDS", "8"))


def info(remaining: int, reset: float, *, limit: int = 10, retry_after: float | None = None) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, reset_after=reset, retry_after=retry_after)


async def out_leases(q: RedisQuota, prefix: str) -> list[bytes]:
    client = q._loop_state().client
    fields: list[bytes] = await client.hkeys(prefix + BUCKET)
    return [f for f in fields if f.startswith(b"L:")]


def test_without_the_redis_package_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """No redis installed: ConfigurationError naming the redis extra, and kayse_async.quota still imports."""
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(errors.ConfigurationError, match=r"kayse-async\[redis\]"):
        RedisQuota("redis://127.0.0.1:6379/15")


def test_the_quota_package_imports_without_redis() -> None:
    """kayse_async.quota (and MemoryQuota) work in an interpreter where redis cannot be imported."""
    code = (
        "import sys; sys.modules['redis'] = None; sys.modules['redis.asyncio'] = None\n"
        "import kayse_async.quota as q; q.MemoryQuota(); print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "ok", done.stderr


def test_bad_options_are_refused_naming_the_field() -> None:
    """lease_ttl and url_or_client are checked when the quota is made."""
    with pytest.raises(errors.ConfigurationError, match="lease_ttl"):
        RedisQuota("redis://127.0.0.1:6379/15", lease_ttl=0)
    with pytest.raises(errors.ConfigurationError, match="url_or_client"):
        RedisQuota(42)  # type: ignore[arg-type]


@pytest.mark.redis
async def test_redis_quota_satisfies_the_protocol_and_snapshots_without_io(redis_url: str, key_prefix: str) -> None:
    """A RedisQuota is a Quota; snapshot() reports the last state Redis returned."""
    q = RedisQuota(redis_url, limit=10, period=5.0, key_prefix=key_prefix)
    assert isinstance(q, Quota)
    assert q.snapshot(BUCKET).remaining is None
    lease = await q.acquire(BUCKET)
    lease.sent()
    lease.complete(info(7, 4), 200)
    await q.aclose()
    snap = q.snapshot(BUCKET)
    assert (snap.limit, snap.remaining) == (10, 7)
    assert snap.resets_at is not None


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["fixed", "sliding"])
async def test_two_instances_sharing_a_bucket_never_pass_the_limit(redis_url: str, key_prefix: str, kind: str) -> None:
    """Two RedisQuota instances (two processes' worth) with 4 workers each: no 429, most of the budget used."""
    loop = asyncio.get_running_loop()
    server = FixedServer(10, 1.0, origin=loop.time()) if kind == "fixed" else SlidingServer(10, 1.0)
    quotas = [RedisQuota(redis_url, limit=10, period=1.0, key_prefix=key_prefix) for _ in range(2)]
    loads = [Load(q, server, workers=4, latency=0.005, bucket=BUCKET) for q in quotas]
    await asyncio.gather(*(load.run(2.95) for load in loads))
    for q in quotas:
        await q.aclose()
    assert server.rejected == 0
    assert server.max_in_any_window() <= 10
    served = sum(len(load.served) for load in loads)
    assert served >= 0.8 * 30
    assert all(load.served for load in loads)


@pytest.mark.redis
async def test_a_crashed_workers_lease_expires(redis_url: str, key_prefix: str) -> None:
    """A worker that dies holding the probe blocks the others only until its lease expires."""
    crashed = RedisQuota(redis_url, limit=10, period=5.0, key_prefix=key_prefix, lease_ttl=0.4)
    survivor = RedisQuota(redis_url, limit=10, period=5.0, key_prefix=key_prefix, lease_ttl=0.4)
    loop = asyncio.get_running_loop()
    lost = await crashed.acquire(BUCKET)
    lost.sent()  # ... and the process dies: no complete(), ever.
    start = loop.time()
    lease = await survivor.acquire(BUCKET, max_wait=3.0)
    waited = loop.time() - start
    assert 0.3 <= waited < 2.0
    assert len(await out_leases(survivor, key_prefix)) == 1  # only the survivor's own
    lease.sent()
    lease.complete(info(8, 5), 200)
    await survivor.aclose()
    await crashed.aclose()
    assert survivor.snapshot(BUCKET).remaining == 8


@pytest.mark.redis
async def test_a_429_holds_every_instance_until_retry_after(redis_url: str, key_prefix: str) -> None:
    """A 429 seen by one instance blocks the other until Retry-After (+ margin)."""
    a = RedisQuota(redis_url, limit=10, period=5.0, key_prefix=key_prefix, safety_margin=0.0)
    b = RedisQuota(redis_url, limit=10, period=5.0, key_prefix=key_prefix, safety_margin=0.0)
    loop = asyncio.get_running_loop()
    lease = await a.acquire(BUCKET)
    lease.sent()
    lease.complete(info(0, 5, retry_after=0.6), 429)
    await a.aclose()
    start = loop.time()
    other = await b.acquire(BUCKET)
    assert loop.time() - start >= 0.5
    other.release()
    await b.aclose()


@pytest.mark.redis
async def test_max_wait_raises_at_once_with_the_reset_time(redis_url: str, key_prefix: str) -> None:
    """Budget spent until a Reset 30 s away: max_wait=1 raises at once with resets_at about 30 s ahead."""
    q = RedisQuota(redis_url, limit=10, period=60.0, key_prefix=key_prefix)
    loop = asyncio.get_running_loop()
    lease = await q.acquire(BUCKET)
    lease.sent()
    lease.complete(info(0, 30), 200)
    await q.aclose()
    start = loop.time()
    with pytest.raises(errors.QuotaExhaustedError) as caught:
        await q.acquire(BUCKET, max_wait=1.0)
    assert loop.time() - start < 0.5
    assert caught.value.resets_at is not None
    await q.aclose()


@pytest.mark.redis
async def test_release_refunds_and_cancellation_leaks_nothing(redis_url: str, key_prefix: str) -> None:
    """release() before sending gives the unit back in Redis; a cancelled waiter leaves no lease behind."""
    q = RedisQuota(redis_url, limit=10, period=5.0, key_prefix=key_prefix)
    first = await q.acquire(BUCKET)
    first.sent()
    first.complete(info(3, 5), 200)
    held = await q.acquire(BUCKET)
    assert q.snapshot(BUCKET).remaining == 2
    held.release()
    await q.aclose()
    assert await out_leases(q, key_prefix) == []
    # Spend the rest, then cancel callers while they poll.
    leases = [await q.acquire(BUCKET) for _ in range(3)]
    waiters = [asyncio.create_task(q.acquire(BUCKET)) for _ in range(3)]
    await asyncio.sleep(0.1)
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    for lease in leases:
        lease.release()
    await q.aclose()
    assert await out_leases(q, key_prefix) == []
    await q.aclose()


@pytest.mark.redis
async def test_the_head_of_the_line_takes_units_for_the_callers_behind_it(redis_url: str, key_prefix: str) -> None:
    """Callers waiting in one process are granted in line order, several per script call (at most half
    the room each): a burst costs a few round trips to Redis, not one per caller."""
    q = RedisQuota(redis_url, limit=10, period=60.0, key_prefix=key_prefix, poll_interval=0.05)
    calls: list[int] = []
    try_ = q._try

    async def counting(*args: Any, **kwargs: Any) -> list[int]:
        values = await try_(*args, **kwargs)
        calls.append(values[0])
        return values

    q._try = counting  # type: ignore[method-assign]
    probe = await q.acquire(BUCKET)  # out: the others wait for its answer
    order: list[int] = []

    async def caller(n: int) -> None:
        (await q.acquire(BUCKET)).release()
        order.append(n)

    callers = [asyncio.create_task(caller(n)) for n in range(6)]
    await asyncio.sleep(0.1)
    calls.clear()
    probe.sent()
    probe.complete(info(7, 60), 200)
    await asyncio.wait_for(asyncio.gather(*callers), timeout=10)
    assert order == list(range(6))
    granted = [n for n in calls if n]
    assert granted[0] == 4, calls  # half the room of 7, rounded up
    assert sum(granted) >= 6, calls
    assert len(granted) < 6, calls
    await q.aclose()
    assert await out_leases(q, key_prefix) == []
    await q.aclose()


@pytest.mark.redis
async def test_an_injected_client_is_used_and_not_closed(redis_url: str, key_prefix: str) -> None:
    """A redis.asyncio client passed in is used as is, and still works after aclose()."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    q = RedisQuota(client, limit=10, period=5.0, key_prefix=key_prefix)
    lease = await q.acquire(BUCKET)
    lease.release()
    await q.aclose()
    assert await client.ping()
    await client.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("seed", range(SEEDS))
async def test_the_lua_script_follows_the_python_rules(redis_url: str, key_prefix: str, seed: int) -> None:
    """Random grants, answers (any order, lost, 429, a later window, no headers) and releases: Redis and
    BucketState agree at each step, the model driven by Redis's own clock."""
    rng = random.Random(seed)
    limit = rng.randint(1, 8)
    # A margin longer than a script call: the back-off after a lost answer never ends a microsecond from
    # the next call, where the two clocks' last digit would decide.
    q = RedisQuota(redis_url, limit=limit, period=1000.0, key_prefix=key_prefix, safety_margin=0.05)
    state = q._loop_state()
    model = BucketState(limit=limit, period=1000.0, safety_margin=0.05)
    try:
        await _differential(q, state, model, rng, seed)
    finally:
        await q.aclose()


async def _differential(q: RedisQuota, state: Any, model: BucketState, rng: random.Random, seed: int) -> None:
    reserved: list[tuple[int, LeaseRecord, float]] = []
    out: list[tuple[int, LeaseRecord]] = []
    limit = model.limit
    base: list[int] = []

    def clock(values: list[int]) -> float:
        # Redis's clock in microseconds, from the first call: small floats keep every microsecond.
        base[:] = base or [values[10]]
        return (values[10] - base[0]) / 1e6

    for step in range(80):
        op = rng.choice(["acquire", "acquire", "send", "answer", "answer", "release"])
        if op == "acquire":
            values = await q._try(state, BUCKET, 1, False, peek=False)
            now = clock(values)
            assert (values[0] == 1) == (model.allowance(now) > 0), (seed, step)
            if values[0] == 1:
                reserved.append((values[1], model.grant(now), now))
        elif op == "send" and reserved:
            lease_id, record, granted = reserved.pop(0)  # sent in grant order, as Redis assumes
            model.sent(record, granted)  # Redis counts a lease's time from its grant
            out.append((lease_id, record))
            continue
        elif op == "release" and reserved:
            lease_id, record, _ = reserved.pop(rng.randrange(len(reserved)))
            values = await q._call(state, BUCKET, ["release", *q._config(), lease_id])
            model.release(record, clock(values))
        elif op == "answer" and out:
            lease_id, record = out.pop(rng.randrange(len(out)))
            kind = rng.choice(["ok", "ok", "ok", "later", "policy", "epoch", "relimit", "bare", "lost", "429"])
            answer: RateLimitInfo | None
            if kind in ("ok", "later"):
                reset = 500.0 if kind == "ok" else rng.choice([800.0, 900.0])
                answer, status = info(rng.randint(0, limit), reset, limit=limit), 200
            elif kind == "policy":
                answer = RateLimitInfo(limit=limit, remaining=rng.randint(0, limit), reset_after=400.0, window=600.0)
                status = 200
            elif kind == "epoch":
                date = 1_800_000_000.0 + step + rng.choice([0.0, 0.3])
                answer = RateLimitInfo(
                    limit=limit, remaining=rng.randint(0, limit), reset_after=450.0, server_date=date
                )
                status = 200
            elif kind == "relimit":
                limit += 1
                answer, status = info(rng.randint(0, limit), 300.0, limit=limit), 200
            elif kind == "bare":
                answer, status = RateLimitInfo(), 200
            elif kind == "lost":
                answer, status = None, None
            else:
                answer, status = info(0, 500.0, limit=limit, retry_after=rng.choice([0.0, 500.0])), 429
            values = await q._call(state, BUCKET, q._complete_args(lease_id, answer, status))
            model.complete(record, answer, status, clock(values))
        else:
            continue
        now = clock(values)
        assert q.snapshot(BUCKET).remaining == model.remaining(now), (seed, step, op)


@pytest.mark.redis
async def test_a_retry_keeps_its_place_across_instances(redis_url: str, key_prefix: str) -> None:
    """After a 429 the retry (priority) of one instance is served before a fresh call of another."""
    a = RedisQuota(redis_url, limit=10, period=5.0, key_prefix=key_prefix, safety_margin=0.0, poll_interval=0.05)
    b = RedisQuota(redis_url, limit=10, period=5.0, key_prefix=key_prefix, safety_margin=0.0, poll_interval=0.05)
    order: list[str] = []
    lease = await a.acquire(BUCKET)
    lease.sent()
    lease.complete(info(0, 5, retry_after=0.5), 429)
    await a.aclose()

    async def caller(q: RedisQuota, name: str, priority: bool) -> None:
        got = await q.acquire(BUCKET, priority=priority)
        order.append(name)
        got.sent()
        got.complete(info(5, 5), 200)

    retry = asyncio.create_task(caller(a, "retry", True))
    await asyncio.sleep(0.1)
    fresh = asyncio.create_task(caller(b, "fresh", False))
    await asyncio.wait_for(asyncio.gather(retry, fresh), timeout=10)
    await a.aclose()
    await b.aclose()
    assert order == ["retry", "fresh"]


@pytest.mark.redis
def test_one_redis_quota_on_two_loops_in_two_threads(redis_url: str, key_prefix: str) -> None:
    """One RedisQuota used from two threads' loops: a client per loop, one budget, each closed on its loop."""
    q = RedisQuota(redis_url, limit=10, period=60.0, key_prefix=key_prefix)

    async def seed() -> None:
        lease = await q.acquire(BUCKET)
        lease.sent()
        lease.complete(info(6, 60), 200)
        await q.aclose()

    async def spend() -> int:
        got = 0
        for _ in range(5):
            try:
                lease = await q.acquire(BUCKET, max_wait=0)
            except errors.QuotaExhaustedError:
                continue
            lease.sent()
            lease.complete(None, None)
            got += 1
        await q.aclose()
        return got

    def in_thread(factory: Any, results: list[Any]) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.append(_run_loop(factory)))
        thread.start()
        return thread

    seeded: list[Any] = []
    in_thread(seed, seeded).join(timeout=30)
    results: list[Any] = []
    threads = [in_thread(spend, results) for _ in range(2)]
    for thread in threads:
        thread.join(timeout=30)
    assert sum(results) == 6


def _run_loop(factory: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(factory())
    finally:
        loop.close()


async def _four_processes(
    redis_url: str, prefix: str, window: Any, start_at: float, duration: float
) -> tuple[int, list[int]]:
    from kayse_async.testing import Emulator

    async with Emulator(api_key="k", limit=10, period=1.0, window=window, clock=time.monotonic) as emu:
        worker = str(Path(__file__).with_name("_redis_worker.py"))
        args = [emu.url, redis_url, prefix, str(start_at), str(duration)]
        procs = [
            await asyncio.create_subprocess_exec(sys.executable, worker, *args, stdout=asyncio.subprocess.PIPE)
            for _ in range(4)
        ]
        outputs = [(await proc.communicate())[0] for proc in procs]
        return emu.stats()["rate_limited"], [int(out.decode().strip()) for out in outputs]


@pytest.mark.redis
async def test_four_processes_with_the_defaults_learn_the_window_and_earn_no_429(
    redis_url: str, key_prefix: str
) -> None:
    """Four processes on RedisQuota(url) (no limit or period: the hour prior) against 10 per second, in each window
    mode: no 429, every process served, most of the budget used (the hour's 1 s margin would halve it)."""
    duration = 4.0
    for window in ("fixed", "sliding", "token"):
        # One mode at a time: three emulators on this test's loop and twelve workers on a small machine
        # would measure the machine's load, not the scheduler.
        start_at = time.time() + 3.0
        rate_limited, served = await _four_processes(redis_url, f"{key_prefix}{window}:", window, start_at, duration)
        assert rate_limited == 0
        assert all(served), served
        assert sum(served) >= 0.7 * 10 * duration, served
