"""No ``-backend``: etcd's v3 API, or its v2 API when only that one holds the keys.

The seed's command line (``confd ... -node=http://etcd1:4001``) names no backend, and
confd's default backend is etcd's v2 API, where Calico 2.x keeps its keys. confpy's
default is the v3 API; this store keeps it unless a snapshot finds no key under any
prefix there while the v2 API has some: then the v2 API is used from then on, and one
log line says so. The choice is made once, by the first snapshot that finds keys in
either, or by the start of the watch. An explicit ``-backend`` guesses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from confpy.stores.base import Snapshot, Store, StoreError, WatchEvent

log = logging.getLogger("confpy")


class DetectingEtcdStore:
    """``v3`` unless it is empty under the prefixes and ``v2`` is not."""

    def __init__(self, v3: Store, v2: Store) -> None:
        self._v3 = v3
        self._v2 = v2
        self._chosen: Store | None = None
        self.name = v3.name

    @property
    def connected_to(self) -> str | None:
        return (self._chosen or self._v3).connected_to

    @property
    def endpoints(self) -> list[str]:
        return (self._chosen or self._v3).endpoints

    @property
    def down_since(self) -> float | None:
        return (self._chosen or self._v3).down_since

    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        if self._chosen is not None:
            return await self._chosen.snapshot(prefixes)
        snap = await self._v3.snapshot(prefixes)
        if snap.values:
            self._chosen = self._v3
            return snap
        try:
            old = await self._v2.snapshot(prefixes)
        except StoreError as exc:  # no v2 API (etcd without --enable-v2): nothing to find there
            log.debug("etcd's v2 API cannot be read: %s", exc)
            return snap
        if not old.values:
            return snap
        log.info(
            "etcd's v3 API has no key under the resources' prefixes and its v2 API has %d: "
            "reading etcd's v2 API (Calico 2.x data; -backend etcd or etcdv2 decides instead)",
            len(old.values),
        )
        self._chosen, self.name = self._v2, self._v2.name
        await self._v3.close()
        return old

    def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        if self._chosen is None:
            self._chosen = self._v3
        return self._chosen.watch(prefixes, after)

    async def close(self) -> None:
        await self._v3.close()
        await self._v2.close()
