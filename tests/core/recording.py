"""A quota that records what the transport does with each lease."""

from __future__ import annotations

import attrs

from kayse_async._wire.ratelimit import RateLimitInfo
from kayse_async.models import QuotaSnapshot


@attrs.define
class RecordingLease:
    """A lease that records what the transport did with it."""

    bucket: str
    priority: bool = False
    events: list[str] = attrs.field(factory=list)
    statuses: list[int | None] = attrs.field(factory=list)

    def sent(self) -> None:
        self.events.append("sent")

    def complete(self, info: RateLimitInfo | None, status: int | None) -> None:
        self.events.append("complete")
        self.statuses.append(status)

    def release(self) -> None:
        self.events.append("release")


@attrs.define
class RecordingQuota:
    """A Quota with an unbounded budget that keeps every lease it granted."""

    leases: list[RecordingLease] = attrs.field(factory=list)

    async def acquire(self, bucket: str, *, max_wait: float | None = None, priority: bool = False) -> RecordingLease:
        lease = RecordingLease(bucket, priority=priority)
        self.leases.append(lease)
        return lease

    def snapshot(self, bucket: str) -> QuotaSnapshot:
        return QuotaSnapshot(limit=500, remaining=500 - len(self.leases))

    async def aclose(self) -> None:
        return None
