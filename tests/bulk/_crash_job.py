"""A bulk import run as a child process by the crash-and-resume test (it gets killed mid-job).

Usage: python -m tests.bulk._crash_job URL JOURNAL COUNT. Prints one line per chunk done.
"""

from __future__ import annotations

import asyncio
import sys

from kayse_async import AsyncKayse
from kayse_async.models import BulkProgress


def report(progress: BulkProgress) -> None:
    print(progress.items_done, flush=True)


async def main(url: str, journal: str, count: int) -> None:
    items = (
        {"external_source": "crm", "external_source_id": f"ext-{i}", "first_name": "Ann", "last_name": f"L{i}"}
        for i in range(count)
    )
    async with AsyncKayse("k", base_url=url, calls_base_url=url) as kayse:
        await kayse.clients.bulk_upsert(items, chunk_size=50, concurrency=4, journal=journal, progress=report)
    print("finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
