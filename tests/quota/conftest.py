"""Fixtures for the quota tests: a real redis-server when there is one, the simulated servers' path."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REDIS_URL = os.environ.get("KAYSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_required() -> bool:
    return os.environ.get("KAYSE_REQUIRE_REDIS", "") == "1"


@pytest.fixture
async def redis_url() -> str:
    """The test Redis URL, after checking a server answers there (skip, or fail under KAYSE_REQUIRE_REDIS=1)."""
    try:
        import redis.asyncio as aioredis
    except ImportError:  # pragma: no cover - the test extra installs redis
        if _redis_required():
            pytest.fail("KAYSE_REQUIRE_REDIS=1 but the redis package is not installed")
        pytest.skip("the redis package is not installed")
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        if _redis_required():
            pytest.fail(f"KAYSE_REQUIRE_REDIS=1 but no redis-server answers at {REDIS_URL}: {exc}")
        pytest.skip(f"no redis-server answers at {REDIS_URL} ({exc}); set KAYSE_TEST_REDIS_URL or start one")
    await client.aclose()
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix of this test's own, so tests never share state."""
    return f"kayse:test:{uuid.uuid4().hex[:12]}:"
