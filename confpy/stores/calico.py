"""``-backend calico``: Calico 3 resources in etcd, served as the v1 keys of the templates.

A store around another store (etcd's v3 API in practice): it reads the resource
prefixes and this node's block affinities from it, at one revision and then by one
watch, and answers ``snapshot`` and ``watch`` with the v1 keys Calico's confd computes
(:class:`confpy.calico.v3.view.V1View`), so the templates, units and the typed model
see what they see with ``-backend etcd`` on a v1 layout. Every revision of the inner
store becomes one batch of v1 changes (empty when it changes none of the keys asked
for): a render sees one consistent revision, and the revision read is never behind.

Bad input: a resource that does not parse keeps its last good version and the error,
naming the etcd key and the field, is logged. Before any good version exists (the
first snapshot) the read fails instead, so that nothing is written from a view that
leaves the resource out; the daemon retries until it is fixed, -onetime exits 3.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence

from confpy.calico.v3.view import Change as RawChange
from confpy.calico.v3.view import V1View, source_prefixes
from confpy.errors import DataError
from confpy.keys import covered_by_any
from confpy.stores.base import Change, Changes, Resync, Snapshot, Store, StoreError, WatchEvent

log = logging.getLogger("confpy.calico")


class ResourceError(StoreError):
    """Calico resources that do not parse, in a first snapshot: there is no good version."""

    def __init__(self, errors: Sequence[DataError]) -> None:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"bad Calico resource: {errors[0]}{more}")
        self.errors = list(errors)


class CalicoStore:
    """The v1 view of the Calico 3 resources held by ``inner``, for node ``node_name``."""

    name = "calico"

    def __init__(self, inner: Store, node_name: str) -> None:
        self._inner = inner
        self._node_name = node_name
        self._sources = source_prefixes(node_name)
        self._view: V1View | None = None
        self._raw: dict[str, str] = {}  # the resources as read: a resync is diffed against them
        self._revision = 0  # the inner revision the view is at

    @property
    def connected_to(self) -> str | None:
        return self._inner.connected_to

    @property
    def endpoints(self) -> list[str]:
        return self._inner.endpoints

    @property
    def down_since(self) -> float | None:
        return self._inner.down_since

    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        self._resync(await self._inner.snapshot(self._sources))
        return self._select(prefixes)

    async def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        """v1 changes from inner revision ``after + 1`` on. When the view is elsewhere (a
        watch resumed after the consumer missed nothing the view saw, but the numbers
        differ), it starts with a Resync of the view as it is."""
        if self._view is None or after != self._revision:
            yield Resync(await self.snapshot(prefixes))
        async for event in self._inner.watch(self._sources, self._revision):
            if isinstance(event, Resync):
                self._resync(event.snapshot)
                yield Resync(self._select(prefixes))
                continue
            assert isinstance(event, Changes)
            changed = self._apply((c.key, c.value) for c in event.changes)
            # A resumed inner watch may replay a revision already applied: it changes nothing.
            self._revision = max(self._revision, event.revision)
            mine = tuple(Change(k, v) for k, v in sorted(changed.items()) if covered_by_any(prefixes, k))
            # Yielded even when empty (a label no selector reads, another node's block):
            # the consumer's revision then is the one read (/status, confpy_store_revision).
            yield Changes(event.revision, mine)

    async def close(self) -> None:
        await self._inner.close()

    def _select(self, prefixes: Sequence[str]) -> Snapshot:
        assert self._view is not None
        values = {k: v for k, v in self._view.values.items() if covered_by_any(prefixes, k)}
        return Snapshot(self._revision, values)

    def _resync(self, snap: Snapshot) -> None:
        """Bring the view to ``snap``: built from it the first time, else by the difference."""
        if self._view is None:
            view = V1View(self._node_name)
            _, errors = view.apply(sorted(snap.values.items()))
            if errors:
                raise ResourceError(errors)
            self._view, self._raw = view, dict(snap.values)
            log.debug("derived %d v1 keys from %d resource keys", len(view.values), len(snap.values))
        else:
            old, new = self._raw, snap.values
            self._apply(sorted((k, new.get(k)) for k in old.keys() | new.keys() if old.get(k) != new.get(k)))
        self._revision = snap.revision

    def _apply(self, changes: Iterable[RawChange]) -> dict[str, str | None]:
        assert self._view is not None
        batch = list(changes)
        for key, value in batch:
            if value is None:
                self._raw.pop(key, None)
            else:
                self._raw[key] = value
        changed, errors = self._view.apply(batch)
        for exc in errors:
            log.error("%s; keeping its last good version", exc)
        return changed
