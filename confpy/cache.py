"""The revisioned local copy of the watched keys.

Updated from the store's watch stream, never re-read per change. Tells which keys a
batch changed, and hands each resource a key view of just its keys. A resource's view
is built once and then kept up to date change by change, so a change under a prefix
of 10,000 keys costs a dictionary update, not a rebuild.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from confpy.keys import keys_under
from confpy.keyview import KeyView, StoreValue
from confpy.resource import TemplateResource
from confpy.stores.base import Changes, Resync, Snapshot, WatchEvent


class Cache:
    def __init__(self, snapshot: Snapshot) -> None:
        self.revision = 0
        self.values: dict[str, StoreValue] = {}
        self._keys: list[str] = []
        self._views: dict[TemplateResource, KeyView] = {}
        self._resync(snapshot)

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
                self.values[c.key] = StoreValue(c.value, c.key)
            self._update_views(c.key)
        self.revision = max(self.revision, event.revision)
        return changed

    def _update_views(self, key: str) -> None:
        value = self.values.get(key)
        for resource, view in self._views.items():
            if resource.reads(key):
                if value is None:
                    view.remove(key)
                else:
                    view.put(key, value)

    def _resync(self, snap: Snapshot) -> set[str]:
        old, new = self.values, snap.values
        changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)} if old else set(new)
        # Unchanged values keep their objects (and what json() parsed of them).
        self.values = {k: old[k] if k not in changed else StoreValue(v, k) for k, v in new.items()}
        self._keys = sorted(self.values)
        self._views.clear()
        self.revision = snap.revision
        return changed

    def forget_views(self) -> None:
        """Drop the kept views (the resources were reloaded)."""
        self._views.clear()

    def items_under(self, prefix: str) -> Iterable[tuple[str, StoreValue]]:
        values = self.values
        return ((k, values[k]) for k in keys_under(self._keys, prefix))

    def view(self, resource: TemplateResource) -> KeyView:
        """The keys ``resource`` reads, with its prefix cut off (kept, and kept current)."""
        view = self._views.get(resource)
        if view is None:
            values: dict[str, StoreValue] = {}
            for k in resource.keys:
                values.update(self.items_under(k))
            view = self._views[resource] = KeyView(resource.prefix, values)
        return view
