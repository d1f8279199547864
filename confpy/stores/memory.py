"""An in-memory store with etcd's revision semantics, for tests and embedding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence

from confpy.keys import covered_by_any
from confpy.stores.base import Change, Changes, Snapshot, WatchEvent


class MemoryStore:
    """Keys in a dict; every :meth:`commit` is one revision, replayable by ``watch``."""

    name = "memory"

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values: dict[str, str] = dict(values or {})
        self.revision = 1
        self._history: list[Changes] = []
        self._changed = asyncio.Condition()

    @property
    def connected_to(self) -> str | None:
        return "memory"

    @property
    def endpoints(self) -> list[str]:
        return ["memory"]

    @property
    def down_since(self) -> float | None:
        return None

    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        return self.read(prefixes)

    def read(self, prefixes: Sequence[str]) -> Snapshot:
        picked = {k: v for k, v in self.values.items() if covered_by_any(prefixes, k)}
        return Snapshot(self.revision, picked)

    async def commit(self, puts: Mapping[str, str] | None = None, deletes: Sequence[str] = ()) -> int:
        """Apply puts and deletes as one transaction; returns its revision."""
        changes = [Change(k, v) for k, v in (puts or {}).items()]
        changes += [Change(k, None) for k in deletes if k in self.values]
        if not changes:
            return self.revision
        self.revision += 1
        for c in changes:
            if c.value is None:
                del self.values[c.key]
            else:
                self.values[c.key] = c.value
        self._history.append(Changes(self.revision, tuple(changes)))
        async with self._changed:
            self._changed.notify_all()
        return self.revision

    async def put(self, key: str, value: str) -> int:
        return await self.commit({key: value})

    async def delete(self, key: str) -> int:
        return await self.commit(deletes=[key])

    async def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        seen = after
        while True:
            for batch in self._history:
                if batch.revision <= seen:
                    continue
                seen = batch.revision
                mine = tuple(c for c in batch.changes if covered_by_any(prefixes, c.key))
                if mine:
                    yield Changes(batch.revision, mine)
            async with self._changed:
                if self.revision == seen:
                    await self._changed.wait()

    async def close(self) -> None:
        return None
