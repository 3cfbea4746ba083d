"""One of the processes sharing a key through RedisQuota with its defaults (no limit or period given).

``python _redis_worker.py URL REDIS_URL KEY_PREFIX START_AT DURATION``: waits
for the common start, then 8 callers call the API back to back until the run
ends; prints how many calls were served.
"""

from __future__ import annotations

import asyncio
import sys
import time

from kayse_async import AsyncKayse
from kayse_async.quota import RedisQuota


async def main(url: str, redis_url: str, prefix: str, start_at: float, duration: float) -> None:
    quota = RedisQuota(redis_url, key_prefix=prefix)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + duration
    served = 0

    async def caller() -> None:
        nonlocal served
        while time.monotonic() < deadline:
            await kayse.metadata.objects()
            if time.monotonic() < deadline:
                served += 1

    async with AsyncKayse("k", base_url=url, calls_base_url=url, quota=quota) as kayse:
        await asyncio.gather(*(caller() for _ in range(8)))
    await quota.aclose()
    print(served, flush=True)


if __name__ == "__main__":
    url, redis_url, prefix, start_at, duration = sys.argv[1:]
    asyncio.run(main(url, redis_url, prefix, float(start_at), float(duration)))
