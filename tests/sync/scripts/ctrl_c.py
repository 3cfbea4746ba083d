"""Wait in a blocking call the server never answers, until SIGINT; then show the client still works.

Prints "waiting" before the call, then, once KeyboardInterrupt came up, "interrupted" and how
many quota leases were still open (granted, neither completed nor released) at that moment;
then reads one line of stdin (the test's go-ahead) and makes one more call.
"""

from __future__ import annotations

import sys
from typing import Any

from kayse_async import Kayse
from kayse_async.models import QuotaSnapshot
from kayse_async.quota import MemoryQuota


class Counting:
    """A quota that counts its open leases."""

    def __init__(self) -> None:
        self.inner = MemoryQuota(limit=1_000_000_000)
        self.open = 0

    async def acquire(self, bucket: str, **options: Any) -> Any:
        lease = await self.inner.acquire(bucket, **options)
        self.open += 1
        return Lease(self, lease)

    def snapshot(self, bucket: str) -> QuotaSnapshot:
        return self.inner.snapshot(bucket)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Lease:
    def __init__(self, owner: Counting, inner: Any) -> None:
        self.owner, self.inner = owner, inner

    def sent(self) -> None:
        self.inner.sent()

    def complete(self, info: Any, status: int | None) -> None:
        self.owner.open -= 1
        self.inner.complete(info, status)

    def release(self) -> None:
        self.owner.open -= 1
        self.inner.release()


url = sys.argv[1]
quota = Counting()
kayse = Kayse("test-key", base_url=url, calls_base_url=url, quota=quota, timeout=3600, max_retries=0)
print("waiting", flush=True)
try:
    kayse.metadata.objects()
except KeyboardInterrupt:
    print("interrupted, open leases:", quota.open, flush=True)
else:
    print("the call returned", flush=True)
    sys.exit(1)
sys.stdin.readline()
print("objects:", kayse.metadata.objects(), flush=True)
kayse.close()
