"""The Coalescer: what arrives while a batch runs goes together in the next, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from adapters.runtime.coalescing import Coalescer


class Recorder:
    """Work that records its batches and holds each until released."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.fail_on = fail_on

    async def __call__(self, key: str, items: list[int]) -> None:
        self.batches.append((key, items))
        await self.release.wait()
        if key == self.fail_on:
            raise RuntimeError(f"{key} failed")


async def _until(condition: Callable[[], object]) -> None:
    """Yield to the tasks under test until ``condition`` holds (bounded): they run only
    while this coroutine waits, on the same loop."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - nothing to wait on but the other tasks
            await asyncio.sleep(0)


async def test_what_arrives_during_a_batch_goes_in_the_next_one_in_order() -> None:
    work = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(work)
    first = asyncio.create_task(coalescer.submit("gp", 1))
    await _until(lambda: work.batches)
    later = [asyncio.create_task(coalescer.submit("gp", n)) for n in (2, 3, 4)]
    await _until(lambda: coalescer.waiting("gp") == 3)
    assert not first.done(), "a caller returns only once its own item is done"
    work.release.set()
    await asyncio.gather(first, *later)
    assert work.batches == [("gp", [1]), ("gp", [2, 3, 4])]


async def test_keys_do_not_wait_for_each_other() -> None:
    work = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(work)
    tasks = [asyncio.create_task(coalescer.submit(key, 1)) for key in ("a", "b")]
    await _until(lambda: len(work.batches) == 2)
    work.release.set()
    await asyncio.gather(*tasks)
    assert sorted(work.batches) == [("a", [1]), ("b", [1])]


async def test_a_failed_batch_raises_in_each_of_its_callers_and_the_next_batch_still_runs() -> None:
    work = Recorder(fail_on="bad")
    coalescer: Coalescer[str, int] = Coalescer(work)
    failing = [asyncio.create_task(coalescer.submit("bad", n)) for n in (1, 2)]
    fine = asyncio.create_task(coalescer.submit("good", 3))
    await _until(lambda: len(work.batches) == 2)
    work.release.set()
    results = await asyncio.gather(*failing, fine, return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError, type(None)]
    work.fail_on = None
    await coalescer.submit("bad", 4)  # the key is usable again
    assert work.batches[-1] == ("bad", [4])


async def test_batches_are_at_most_the_limit() -> None:
    work = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(work, limit=2)
    tasks = [asyncio.create_task(coalescer.submit("gp", n)) for n in range(5)]
    await _until(lambda: work.batches)
    work.release.set()
    await asyncio.gather(*tasks)
    assert [items for _, items in work.batches] == [[0, 1], [2, 3], [4]]


async def test_a_caller_that_gave_up_is_left_out_of_its_batch() -> None:
    work = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(work)
    first = asyncio.create_task(coalescer.submit("gp", 1))
    await _until(lambda: work.batches)
    gone = asyncio.create_task(coalescer.submit("gp", 2))
    kept = asyncio.create_task(coalescer.submit("gp", 3))
    await _until(lambda: coalescer.waiting("gp") == 2)
    gone.cancel()
    work.release.set()
    await asyncio.gather(first, kept)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert work.batches == [("gp", [1]), ("gp", [3])]
