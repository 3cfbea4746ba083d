"""Hypothesis: the scheduler's invariants under any timing, order of answers and cancellation."""

from __future__ import annotations

import asyncio

import hypothesis.strategies as st
import looptime
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from quota_sim import KINDS, Server, Wire, make_server

from kayse_async._wire.ratelimit import RateLimitInfo
from kayse_async.quota import MemoryQuota
from kayse_async.quota._state import BucketState, LeaseRecord


class SchedulerMachine(RuleBasedStateMachine):
    """Grants, sends, answers in any order, releases and time passing, against a simulated server.

    Requests reach the server in the order they are sent (each is handled when
    sent); their answers come back in any order, at any later time, or never.
    The client's prior (limit, period) is drawn apart from the server's.
    """

    @initialize(
        kind=st.sampled_from(KINDS),
        limit=st.integers(1, 12),
        period=st.sampled_from([1.0, 5.0, 60.0]),
        origin=st.floats(0.0, 60.0),
        form=st.sampled_from(["delta", "epoch", "exact"]),
        prior=st.tuples(st.integers(1, 600), st.sampled_from([1.0, 60.0, 3600.0])),
    )
    def setup(self, kind: str, limit: int, period: float, origin: float, form: str, prior: tuple[int, float]) -> None:
        self.now = 1000.0
        self.server: Server = make_server(kind, limit, period, origin=self.now - origin)
        self.wire = Wire(form, skew=origin)
        self.state = BucketState(limit=prior[0], period=prior[1])
        self.reserved: list[LeaseRecord] = []
        self.out: list[tuple[LeaseRecord, int, RateLimitInfo]] = []
        self.lost = 0

    @rule(count=st.integers(1, 5))
    def grant(self, count: int) -> None:
        for _ in range(count):
            if self.state.allowance(self.now) <= 0:
                break
            self.reserved.append(self.state.grant(self.now))

    @precondition(lambda self: self.reserved)
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        record = self.reserved.pop(data.draw(st.integers(0, len(self.reserved) - 1)))
        self.state.sent(record, self.now)
        decision = self.server.handle(self.now)
        self.out.append((record, 200 if decision.ok else 429, self.wire.info(decision, self.now)))

    @precondition(lambda self: self.reserved)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        record = self.reserved.pop(data.draw(st.integers(0, len(self.reserved) - 1)))
        before = self.state.allowance(self.now)
        assert self.state.release(record, self.now)
        assert self.state.allowance(self.now) >= before

    @precondition(lambda self: self.out)
    @rule(data=st.data(), lost=st.booleans())
    def answer(self, data: st.DataObject, lost: bool) -> None:
        record, status, answer = self.out.pop(data.draw(st.integers(0, len(self.out) - 1)))
        if lost:
            self.lost += 1
            self.state.complete(record, None, None, self.now)
        else:
            self.state.complete(record, answer, status, self.now)

    @rule(dt=st.floats(0.001, 30.0))
    def wait(self, dt: float) -> None:
        self.now += dt

    @rule()
    def wait_for_next_event(self) -> None:
        nxt = self.state.next_event(self.now)
        if nxt is not None:
            self.now = nxt

    @invariant()
    def never_past_the_limit(self) -> None:
        # A lost answer leaves the scheduler ignorant: the probe after its back-off may be refused.
        assert self.server.rejected <= self.lost

    @invariant()
    def nothing_leaks(self) -> None:
        assert self.state.reserved == len(self.reserved)
        assert self.state.in_flight == len(self.out)
        assert self.state.probing == any(r.probe for r in [*self.reserved, *(r for r, _, _ in self.out)])

    @invariant()
    def an_idle_bucket_always_recovers(self) -> None:
        if not self.reserved and not self.out:
            # Nothing out: the budget must come back by itself at some point.
            assert self.state.allowance(self.now) > 0 or self.state.next_event(self.now) is not None


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


async def _cancel_everywhere(steps: list[float]) -> tuple[int, int, bool]:
    loop = asyncio.get_running_loop()
    quota = MemoryQuota(3, 10.0, clock=loop.time)

    async def worker() -> None:
        while True:
            lease = await quota.acquire("k:test")
            try:
                await asyncio.sleep(0.01)
            except BaseException:
                lease.release()
                raise
            lease.sent()
            try:
                await asyncio.sleep(0.1)
            except BaseException:
                lease.complete(None, None)
                raise
            lease.complete(RateLimitInfo(limit=3, remaining=1, reset_after=5), 200)

    tasks = [asyncio.create_task(worker()) for _ in steps]
    for task, delay in zip(tasks, steps, strict=True):
        await asyncio.sleep(delay)
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    state = quota._buckets["k:test"].state
    return state.reserved, state.in_flight, state.probing


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=8))
def test_cancelling_callers_at_any_point_leaks_nothing(steps: list[float]) -> None:
    """Callers cancelled at any moment (waiting, holding, sending): no reservation or probe is left behind."""
    loop = looptime.new_event_loop(start=0)
    try:
        reserved, in_flight, probing = loop.run_until_complete(_cancel_everywhere(steps))
    finally:
        loop.close()
    assert (reserved, in_flight, probing) == (0, 0, False)
