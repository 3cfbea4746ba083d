"""Kayse.with_options: a blocking client that differs only in its options, on the same loop, session and budget."""

from __future__ import annotations

import pytest

from kayse_async import Kayse, errors
from kayse_async.testing import ThreadedEmulator


def _client(emulator: ThreadedEmulator, **options: object) -> Kayse:
    return Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url, **options)  # type: ignore[arg-type]


def test_a_derived_client_has_its_own_retries_and_time_out(emulator: ThreadedEmulator) -> None:
    """with_options(max_retries=1) retries where the original does not; with_options(timeout=0.1) times out alone."""
    with _client(emulator, max_retries=0) as kayse:
        kayse.metadata.objects()
        twice = kayse.with_options(max_retries=1)
        emulator.set_faults(1.0, ["500"])
        before = emulator.stats()["requests"]
        with pytest.raises(errors.InternalServerError):
            kayse.metadata.objects()
        assert emulator.stats()["requests"] - before == 1
        with pytest.raises(errors.InternalServerError, match="after 2 attempts"):
            twice.metadata.objects()
        assert emulator.stats()["requests"] - before == 3
        emulator.set_faults(1.0, ["latency"], latency_ms=100)
        with pytest.raises(errors.RequestTimeoutError, match=r"within 0\.1 s"):
            twice.with_options(timeout=0.1, max_retries=0).metadata.objects()
        emulator.set_faults(0.0)
        assert {"clients", "cases"} <= {o.name for o in kayse.metadata.objects()}


def test_a_derived_client_shares_the_loop_and_the_budget(emulator: ThreadedEmulator) -> None:
    """Calls through a derived client run on the original's portal thread and count in its budget."""
    with _client(emulator) as kayse:
        kayse.metadata.objects()
        derived = kayse.with_options(timeout=5.0, max_wait=1.0)
        derived.metadata.objects()
        assert derived.portal_thread is kayse.portal_thread
        derived.metadata.objects()
        ours, theirs = kayse.quota, derived.quota
        assert (theirs.limit, theirs.remaining) == (ours.limit, ours.remaining)
        assert emulator.stats()["requests"] == 3


def test_closing_a_derived_client_leaves_the_original_open(emulator: ThreadedEmulator) -> None:
    """Closing a derived client stops it alone; closing the original stops every client derived from it."""
    kayse = _client(emulator)
    derived = kayse.with_options(max_retries=0)
    derived.metadata.objects()
    derived.close()
    assert derived.closed
    assert not kayse.closed
    with pytest.raises(errors.KayseError, match="closed"):
        derived.metadata.objects()
    kayse.metadata.objects()
    other = kayse.with_options(timeout=3.0)
    kayse.close()
    assert other.closed
    assert kayse.portal_thread is None or not kayse.portal_thread.is_alive()
    with pytest.raises(errors.KayseError, match="closed"):
        other.metadata.objects()


def test_bad_options_are_refused_in_the_caller(emulator: ThreadedEmulator) -> None:
    """A bad option is a ConfigurationError at once, before any thread starts."""
    with _client(emulator) as kayse:
        with pytest.raises(errors.ConfigurationError, match="timeout"):
            kayse.with_options(timeout=-1)
        assert kayse.portal_thread is None
