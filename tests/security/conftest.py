"""Fixtures of the security tests: every logger at DEBUG, captured; clients of the SDK's defaults."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from kayse_async import AsyncKayse

from .helpers import CALLS_KEY, KEY, Capture


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Every log record of every logger (root at DEBUG, the SDK's and aiohttp's loggers too)."""
    handler = Capture()
    root = logging.getLogger()
    names = ("kayse_async", "kayse_async.quota", "aiohttp", "aiohttp.client", "aiohttp.internal", "asyncio")
    saved = {name: logging.getLogger(name).level for name in names}
    saved_root = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_root)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def make_client(url: str, calls_url: str | None = None, **options: Any) -> AsyncKayse:
    """A client of ``url`` with both keys set."""
    options.setdefault("max_retries", 1)
    options.setdefault("timeout", 5.0)
    return AsyncKayse(KEY, base_url=url, calls_base_url=calls_url or url, calls_api_key=CALLS_KEY, **options)
