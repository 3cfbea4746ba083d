"""Every default of kayse_async, named, in one place."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("kayse-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    VERSION = "0.0.0"
"""The installed version of kayse-async, sent in the User-Agent."""

BASE_URL = "https://api.kayse.com"
CALLS_BASE_URL = "https://public-api.kayse.ai"
ENV_API_KEY = "KAYSE_API_KEY"
ENV_BASE_URL = "KAYSE_BASE_URL"
ENV_CALLS_BASE_URL = "KAYSE_CALLS_BASE_URL"
ENV_CALLS_API_KEY = "KAYSE_PUBLIC_API_KEY"

TIMEOUT = 30.0
"""Seconds per request attempt (the wait for budget is not part of it)."""
MAX_RETRIES = 3
"""Retries of one request, on top of the first attempt."""

PAGE_SIZE = 25
"""Case lists per page when walking ``/v1/case_lists``."""

CHUNK_SIZE = 500
"""Items per bulk request: at 500 requests an hour, items per request is what counts."""
CONCURRENCY = 4
"""Bulk requests in flight at once."""
BULK_DELETE_CHUNK = 500
"""Ids per ``bulk_delete`` request: the reference's maximum."""
