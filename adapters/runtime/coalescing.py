"""Group work that arrives while the same kind of work is under way (group commit).

Consumers handle one record at a time per partition, so for a serialised resource (one GP
practice's Subscriptions, locked while a notice is tried) every partition's handler would
queue on the database lock, each with its own transaction. A ``Coalescer`` lets the first
caller for a key do the work and gathers what the others bring meanwhile into the next
batch, done by one call: one transaction and one lock for all of them. Each caller still
returns only when its own item is done (or raises what the batch raised), so offsets are
committed after handling exactly as before, and a partition's items stay in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass
class Coalescer(Generic[K, T]):
    """``await submit(key, item)`` runs ``work(key, items)`` for ``item`` and whatever came
    for ``key`` while an earlier batch ran, in arrival order, at most ``limit`` at once."""

    work: Callable[[K, list[T]], Awaitable[None]]
    limit: int = 50
    _waiting: dict[K, list[tuple[T, asyncio.Future[None]]]] = field(default_factory=dict)
    _draining: dict[K, asyncio.Task[None]] = field(default_factory=dict)

    async def submit(self, key: K, item: T) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((item, done))
        if key not in self._draining:
            self._draining[key] = asyncio.create_task(self._drain(key))
        await done

    def waiting(self, key: K) -> int:
        """Items for ``key`` not yet taken into a batch."""
        return len(self._waiting.get(key, ()))

    async def _drain(self, key: K) -> None:
        batch: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while batch := self._take(key):
                try:
                    await self.work(key, [item for item, _ in batch])
                except Exception as error:  # each caller raises it: its record is retried
                    _settle(batch, error)
                else:
                    _settle(batch, None)
        finally:  # normally nothing is left; cancelled (shutdown), every caller is told
            del self._draining[key]
            for _, done in batch + self._waiting.pop(key, []):
                if not done.done():
                    done.cancel()

    def _take(self, key: K) -> list[tuple[T, asyncio.Future[None]]]:
        """The next batch, without callers that gave up meanwhile."""
        waiting = self._waiting.get(key, [])
        while waiting:
            batch, waiting = waiting[: self.limit], waiting[self.limit :]
            self._waiting[key] = waiting
            if live := [(item, done) for item, done in batch if not done.done()]:
                return live
        return []


def _settle(batch: list[tuple[T, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in batch:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
