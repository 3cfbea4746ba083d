"""A program that uses Kayse from two threads, leaves an iterator half-read and never closes anything.

Run with warnings as errors; it must exit 0 with nothing at all on stderr.
"""

from __future__ import annotations

import sys
import threading

from kayse_async import Kayse

url = sys.argv[1]
kayse = Kayse("test-key", base_url=url, calls_base_url=url)
for n in range(3):
    kayse.case_lists.create(name=f"list {n}")
pages = kayse.case_lists.list(page_size=1)
print(next(pages).name)
worker = threading.Thread(target=kayse.metadata.objects)
worker.start()
worker.join()
second = Kayse("test-key", base_url=url, calls_base_url=url)
second.metadata.objects()
print("exiting", flush=True)
