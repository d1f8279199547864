"""The Store protocol: what every key-value backend offers confpy.

A store has two operations, as in confd: read every key under some prefixes at one
revision (:meth:`Store.snapshot`), and follow changes from a revision on
(:meth:`Store.watch`). A prefix covers a key path and what lies below it
(:func:`confpy.keys.covers`); every store returns exactly the keys its prefixes cover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every key under the requested prefixes, read at ``revision``."""

    revision: int
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class Change:
    """One put (``value`` is the new value) or delete (``value`` is None)."""

    key: str
    value: str | None


@dataclass(frozen=True, slots=True)
class Changes:
    """Changes that became visible together, up to and including ``revision``.

    One etcd transaction is never split across two batches.
    """

    revision: int
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Resync:
    """The store could not replay history (etcd compaction, a file reloaded):
    here is the complete current state; the consumer computes the difference."""

    snapshot: Snapshot


WatchEvent = Changes | Resync


class StoreError(Exception):
    """A store failed in a way worth retrying (connection lost, timeout)."""


class StoreUnreachable(StoreError):
    """No endpoint answered within the configured time."""


class Lost(StoreError):
    """An endpoint, or a watch on it, is unusable: try again, maybe elsewhere."""


class Refused(StoreError):
    """The store refused the request itself (credentials, permissions): no retry would help."""


@runtime_checkable
class Store(Protocol):
    """A key-value backend. Implementations: file, env, memory, etcd."""

    #: Short name used in logs ("etcd", "file", ...).
    name: str

    @property
    def connected_to(self) -> str | None:
        """Where the store is connected now (an endpoint, the data files), None while it is not."""
        ...

    @property
    def endpoints(self) -> list[str]:
        """Every place the store may be connected to (what ``connected_to`` names)."""
        ...

    @property
    def down_since(self) -> float | None:
        """When (``time.monotonic()``) the store was lost, or first tried and not
        reached; None while it is connected."""
        ...

    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        """All keys under ``prefixes``, read at one revision."""
        ...

    def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        """Yield changes under ``prefixes`` from revision ``after + 1`` on, none lost.

        Reconnects by itself; raises :class:`StoreError` only when it gives up.
        """
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class Reader(Protocol):
    """A store that can also read synchronously, without an event loop (one-shot modes)."""

    def read(self, prefixes: Sequence[str]) -> Snapshot:
        """All keys under ``prefixes``, read at one revision."""
        ...


async def poll_for_changes(
    read: Callable[[], Awaitable[Snapshot]], after: int, interval: float
) -> AsyncIterator[WatchEvent]:
    """``watch`` for stores that cannot push changes: read every ``interval`` seconds,
    and yield a :class:`Resync` whenever the revision moved past ``after``."""
    import asyncio  # only the daemon polls; a one-shot read never loads asyncio

    seen = after
    while True:
        await asyncio.sleep(interval)
        snap = await read()
        if snap.revision > seen:
            seen = snap.revision
            yield Resync(snap)
