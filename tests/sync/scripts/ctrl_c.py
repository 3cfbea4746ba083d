"""Wait in a blocking call the server never answers, until SIGINT; then show the client still works.

Prints "waiting" before the call and "interrupted after S s" once KeyboardInterrupt
came up; then reads one line of stdin (the test's go-ahead) and makes one more call.
"""

from __future__ import annotations

import sys
import time

from kayse_async import Kayse

url = sys.argv[1]
kayse = Kayse("test-key", base_url=url, calls_base_url=url, timeout=3600, max_retries=0)
print("waiting", flush=True)
try:
    kayse.metadata.objects()
except KeyboardInterrupt:
    print("interrupted", flush=True)
else:
    print("the call returned", flush=True)
    sys.exit(1)
started = time.monotonic()
sys.stdin.readline()
print("objects:", kayse.metadata.objects(), flush=True)
kayse.close()
