"""A program that uses Kayse from two threads, leaves an iterator half-read and never closes anything.

Run with warnings as errors; it must exit 0 with nothing at all on stderr.
"""

from __future__ import annotations

import sys
import threading

from kayse_async import Kayse
from kayse_async.quota import MemoryQuota

url = sys.argv[1]
kayse = Kayse("test-key", base_url=url, calls_base_url=url, quota=MemoryQuota(limit=1_000_000_000))
for n in range(3):
    kayse.case_lists.create(name=f"list {n}")
pages = kayse.case_lists.list(page_size=1)
print(next(pages).name)
worker = threading.Thread(target=kayse.metadata.objects)
worker.start()
worker.join()
second = Kayse("test-key", base_url=url, calls_base_url=url, quota=MemoryQuota(limit=1_000_000_000))
second.metadata.objects()
print("exiting", flush=True)
