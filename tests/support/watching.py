"""Following an etcd store's watch in a test: a recorder in the background, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from confpy.stores.base import Changes, Resync, Store, WatchEvent

T = TypeVar("T")


async def off(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking etcdctl/process helper without stopping the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


class Recorder:
    """Consumes a watch in the background and keeps what it yields."""

    def __init__(self, store: Store, prefixes: Sequence[str], after: int) -> None:
        self.events: list[WatchEvent] = []
        self.task = asyncio.create_task(self._consume(store.watch(prefixes, after)))

    async def _consume(self, events: AsyncIterator[WatchEvent]) -> None:
        async for ev in events:
            self.events.append(ev)

    def revisions(self) -> list[int]:
        return [ev.revision for ev in self.events if isinstance(ev, Changes)]

    def state(self, start: dict[str, str]) -> dict[str, str]:
        out = dict(start)
        for ev in self.events:
            if isinstance(ev, Resync):
                out = dict(ev.snapshot.values)
                continue
            for ch in ev.changes:
                if ch.value is None:
                    out.pop(ch.key, None)
                else:
                    out[ch.key] = ch.value
        return out

    async def wait(self, until: Callable[[], object], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if self.task.done():
                self.task.result()
                raise AssertionError(f"the watch ended; events: {self.events}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s; events: {self.events}")
            await asyncio.sleep(0.02)

    async def wait_revision(self, revision: int, timeout: float = 10.0) -> None:
        await self.wait(lambda: any(r >= revision for r in self.revisions()), timeout)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
