"""Environment variables as a store, with confd's mapping: ``/database/host`` <-> ``DATABASE_HOST``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence

from confpy.keys import covered_by_any
from confpy.stores.base import Snapshot, WatchEvent, poll_for_changes


def key_of(name: str) -> str:
    """The key a variable stands for: ``DATABASE_HOST`` -> ``/database/host``."""
    return "/" + name.lower().replace("_", "/")


class EnvStore:
    """Reads ``os.environ`` (or a given mapping). It cannot push changes: ``watch`` polls."""

    name = "env"

    def __init__(self, environ: Mapping[str, str] | None = None, poll_interval: float = 1.0) -> None:
        self.environ = environ if environ is not None else os.environ
        self.poll_interval = poll_interval
        self._revision = 0
        self._digest = b""

    @property
    def connected_to(self) -> str | None:
        return "environment"

    @property
    def endpoints(self) -> list[str]:
        return ["environment"]

    @property
    def down_since(self) -> float | None:
        return None

    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        return self.read(prefixes)

    def read(self, prefixes: Sequence[str]) -> Snapshot:
        # DATABASE_HOST is key /database/host, read for prefix /database (not /data).
        values = {key: v for n, v in self.environ.items() if covered_by_any(prefixes, key := key_of(n))}
        digest = hashlib.sha256(repr(sorted(values.items())).encode()).digest()
        if digest != self._digest:
            self._digest, self._revision = digest, self._revision + 1
        return Snapshot(self._revision, values)

    def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        return poll_for_changes(lambda: self.snapshot(prefixes), after, self.poll_interval)

    async def close(self) -> None:
        return None
