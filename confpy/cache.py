"""The revisioned local copy of the watched keys.

Updated from the store's watch stream, never re-read per change. Tells which keys a
batch changed, and hands each resource a key view of just its keys.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from confpy.keyview import KeyView
from confpy.resource import TemplateResource
from confpy.stores.base import Changes, Resync, Snapshot, WatchEvent, under


class Cache:
    def __init__(self, snapshot: Snapshot) -> None:
        self.revision = snapshot.revision
        self.values: dict[str, str] = dict(snapshot.values)
        self._keys: list[str] = sorted(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def apply(self, event: WatchEvent) -> set[str]:
        """Apply a batch or a resync; returns the keys whose value changed."""
        if isinstance(event, Resync):
            return self._resync(event.snapshot)
        assert isinstance(event, Changes)
        changed: set[str] = set()
        for c in event.changes:
            old = self.values.get(c.key)
            if c.value == old:
                continue
            changed.add(c.key)
            if c.value is None:
                del self.values[c.key]
                del self._keys[bisect.bisect_left(self._keys, c.key)]
            else:
                if old is None:
                    bisect.insort(self._keys, c.key)
                self.values[c.key] = c.value
        self.revision = max(self.revision, event.revision)
        return changed

    def _resync(self, snap: Snapshot) -> set[str]:
        old = self.values
        changed = {k for k in old.keys() | snap.values.keys() if old.get(k) != snap.values.get(k)}
        self.values = dict(snap.values)
        self._keys = sorted(self.values)
        self.revision = snap.revision
        return changed

    def items_under(self, prefix: str) -> Iterable[tuple[str, str]]:
        keys = self._keys
        i = bisect.bisect_left(keys, prefix)
        while i < len(keys) and keys[i].startswith(prefix):
            if under(keys[i], prefix):
                yield keys[i], self.values[keys[i]]
            i += 1

    def view(self, resource: TemplateResource) -> KeyView:
        """The keys ``resource`` reads, with its prefix cut off."""
        values: dict[str, str] = {}
        for k in resource.keys:
            values.update(self.items_under(k))
        return KeyView(resource.prefix, values)
