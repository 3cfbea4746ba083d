"""Faults on demand, reproducible with a seed."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Final, Literal

FaultKind = Literal["500", "503", "drop", "latency", "lost"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = ("500", "503", "drop", "latency", "lost")
"""Every fault kind, in the order a seeded draw picks from (what each does: docs/emulator.md)."""

MIN_SPIKE_MS: Final = 200.0


def parse_kinds(kinds: Iterable[str]) -> tuple[FaultKind, ...]:
    """Check fault kind names; keep the canonical order, drop repeats."""
    wanted = set(kinds)
    unknown = wanted - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(sorted(unknown))}; known: {', '.join(FAULT_KINDS)}")
    if not wanted:
        raise ValueError("at least one fault kind is needed")
    return tuple(kind for kind in FAULT_KINDS if kind in wanted)


class FaultInjector:
    """Decides per request whether to inject a fault and which: two draws from one ``random.Random(seed)``."""

    def __init__(self, rate: float = 0.0, kinds: Iterable[str] = FAULT_KINDS, *, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self.rate = rate
        """Share of requests given a fault, 0 to 1 (the emulator's settings check it)."""
        self.kinds = parse_kinds(kinds)

    def reseed(self, seed: int | None) -> None:
        """Start the random sequence again from ``seed``."""
        self._random.seed(seed)

    def draw(self) -> FaultKind | None:
        """The fault for the next request, or None."""
        if self.rate <= 0.0:
            return None
        roll = self._random.random()
        pick = self._random.randrange(len(self.kinds))
        return self.kinds[pick] if roll < self.rate else None
