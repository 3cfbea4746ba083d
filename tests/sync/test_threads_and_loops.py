"""Kayse where sync callers live: many threads, running event loops, clients made and dropped by the thousand."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

from kayse_async import Kayse, models
from kayse_async.testing import ThreadedEmulator

from .helpers import portal_threads

THREADS = 32


def test_32_threads_share_one_client(emulator: ThreadedEmulator) -> None:
    """32 threads at once on one Kayse: every answer is the caller's own, one portal, no thread after close()."""
    before = set(threading.enumerate())
    kayse = Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url)
    barrier = threading.Barrier(THREADS)
    results: dict[int, list[Any]] = {}
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait(10)
            made = kayse.clients.create(
                external_source="t", external_source_id=f"t{n}", first_name=f"N{n}", last_name="L"
            )
            again = kayse.clients.get(made.id)
            patched = kayse.clients.patch(made.id, city=f"city {n}")
            results[n] = [made, again, patched]
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert failures == []
    assert sorted(results) == list(range(THREADS))
    for n, (made, again, patched) in results.items():
        assert made.first_name == again.first_name == patched.first_name == f"N{n}"
        assert made.id == again.id == patched.id
        assert patched.city == f"city {n}"
    assert len({made.id for made, _, _ in results.values()}) == THREADS
    new_threads = set(threading.enumerate()) - before
    assert [t.name for t in new_threads if t.is_alive()] == ["kayse-portal"]
    kayse.close()
    assert [t for t in set(threading.enumerate()) - before if t.is_alive()] == []


def test_1000_clients_made_and_dropped_start_no_thread() -> None:
    """Kayse() costs no thread: 1,000 clients made and dropped leave the thread count as it was."""
    before = threading.active_count()
    for _ in range(1000):
        Kayse("k")
    gc.collect()
    assert threading.active_count() == before


def test_used_clients_dropped_without_close_stop_their_threads(emulator: ThreadedEmulator) -> None:
    """Clients used and dropped without close(): their loop threads end when they are collected."""
    before = len(portal_threads())
    for _ in range(10):
        kayse = Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url)
        kayse.metadata.objects()
        assert len(portal_threads()) == before + 1
        del kayse
    gc.collect()
    assert len(portal_threads()) == before


def test_a_resource_kept_alone_keeps_its_client_working(emulator: ThreadedEmulator) -> None:
    """Holding only kayse.metadata (the Kayse dropped) still works: the portal lives while anything uses it."""
    metadata = Kayse(emulator.api_key, base_url=emulator.url, calls_base_url=emulator.url).metadata
    gc.collect()
    assert isinstance(metadata.objects(), list)
    del metadata
    gc.collect()


async def test_called_inside_a_running_event_loop(kayse: Kayse) -> None:
    """A coroutine (a notebook cell, a handler) calling Kayse directly: no "event loop is already running"."""
    asyncio.get_running_loop()
    made = kayse.clients.create(external_source="l", external_source_id="loop", first_name="A", last_name="B")
    assert kayse.clients.get(made.id) == made
    assert [cl.name for cl in kayse.case_lists.list()] == []


def test_called_from_code_under_asyncio_runner(kayse: Kayse) -> None:
    """Code run by an asyncio runner (as asyncio.run does) calls Kayse, and from a thread of its executor too."""

    async def main() -> tuple[list[models.ObjectSchema], list[models.ObjectSchema]]:
        direct = kayse.metadata.objects()
        in_thread = await asyncio.to_thread(kayse.metadata.objects)
        return direct, in_thread

    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        direct, in_thread = runner.run(main())
    assert direct == in_thread
