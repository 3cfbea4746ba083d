"""The scheduler against simulated servers of every kind, driven by hypothesis: safety, liveness, utilisation.

Deterministic: a fast-forwarded loop, no sockets (``quota_sim.simulate``).
Servers: fixed windows (aligned to a clock, or opened by the first request),
sliding windows, token buckets (Reset: the next token, or whole again);
periods of whole seconds from 1 s to 3,600 s; Reset as a delta or as an
epoch against a ``Date`` from a skewed clock; latency with jitter (answers
overtake one another); lost answers; another consumer on the key; and a
client whose configured limit and period (the prior) are anything at all.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from quota_sim import KINDS, Scenario, simulate

SIMULATION = settings(
    max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)


@st.composite
def scenarios(draw: st.DrawFn, *, alone: bool) -> Scenario:
    period = float(draw(st.one_of(st.sampled_from([1, 2, 10, 60, 3600]), st.integers(1, 3600))))
    limit = draw(st.integers(1 if alone else 2, 30))
    # One way; the round trip stays under 1% of the window (a sliding window lends each unit out that long).
    latency = draw(st.floats(0.0, 1.0)) * min(0.1, period / 400)
    jitter = draw(st.floats(0.0, 1.0)) * latency
    return Scenario(
        kind=draw(st.sampled_from(KINDS)),
        limit=limit,
        period=period,
        form=draw(st.sampled_from(["delta", "epoch"])),
        skew=draw(st.floats(-86_400.0, 86_400.0)),
        origin=draw(st.floats(0.0, 1.0)),
        latency=latency,
        jitter=jitter,
        lost=draw(st.sampled_from([0.0, 0.0, 0.05, 0.2])),
        timeout=min(period, max(0.05, 4 * (latency + jitter)) * draw(st.floats(1.0, 20.0))),
        workers=draw(st.integers(1, 64)),
        other=0 if alone else draw(st.integers(1, max(1, limit // 2))),
        prior=(draw(st.integers(1, 1000)), float(draw(st.integers(1, 7200)))),
        windows=16,
        seed=draw(st.integers(0, 2**16)),
    )


def saturated(sc: Scenario) -> bool:
    """Demand at least four times the budget: the workers could send that much between answers."""
    return sc.workers * sc.period >= 4 * sc.limit * max(2 * (sc.latency + sc.jitter), sc.period / 1000)


@SIMULATION
@given(sc=scenarios(alone=True))
def test_alone_on_the_key_safe_live_and_the_budget_used(sc: Scenario) -> None:
    """Alone: no 429, no idle wait past the server's Reset, >= 97% use when saturated.

    With lost answers, a 429 is allowed only where the scheduler could not know better (docs/quota.md):
    before its first answer, or while the window it learned (+ margin) is shorter than the server's.
    """
    out = simulate(sc)
    assert out.unexplained_429 == 0, out
    assert out.rejected <= out.lost_answers, out
    assert out.beyond_reset <= 1e-3, out
    if saturated(sc) and not sc.lost:
        # An epoch Reset is whole seconds against a whole-second Date: it may name a moment up to
        # two seconds late, and a scheduler that follows the server waits that long.
        resolution = 2.0 if sc.form == "epoch" else 0.0
        assert out.use >= 0.97 * sc.period / (sc.period + resolution), out


@SIMULATION
@given(sc=scenarios(alone=False))
def test_beside_another_consumer_still_live(sc: Scenario) -> None:
    """Another consumer spends the key too (nothing is safe then): still no idle wait past the server's Reset."""
    out = simulate(sc)
    assert out.beyond_reset <= 1e-3, out
