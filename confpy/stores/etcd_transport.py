"""What the etcd v3 store needs from a way of talking to etcd, whichever it is.

Two transports carry the same v3 API: JSON over HTTP/1.1 through etcd's gateway
(etcd_http.py: no gRPC stack to load, the default) and gRPC (etcd_grpc.py: for an
endpoint that serves no gateway, such as ``etcd grpc-proxy``). The store's logic (one
revision per snapshot, the watch, failover, compaction, data replaced) is theirs in
common (etcd.py); a transport carries requests and answers, in these shapes, and
raises only the exceptions below and those of stores/base.py.

Keys and values are bytes in etcd; a transport hands them on decoded by
:func:`confpy.keys.as_text`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from confpy.stores.base import Lost

__all__ = [
    "Compacted",
    "NoGateway",
    "Status",
    "Transport",
    "WatchQueue",
    "WatchResponse",
    "pump",
]


class Compacted(Exception):
    """etcd no longer has the revision asked for."""

    def __init__(self, compact_revision: int = 0) -> None:
        super().__init__(compact_revision)
        self.compact_revision = compact_revision


class NoGateway(Exception):
    """The endpoint serves no JSON gateway (an ``etcd grpc-proxy``, or an etcd run with
    ``--enable-grpc-gateway=false``): gRPC is the way to it."""


@dataclass(frozen=True, slots=True)
class Status:
    url: str  # the endpoint that answered
    revision: int
    cluster_id: int


@dataclass(frozen=True, slots=True)
class WatchResponse:
    """One answer on a watch stream."""

    created: bool = False
    canceled: bool = False
    cancel_reason: str = ""
    compact_revision: int = 0
    events: tuple[tuple[int, str, str | None], ...] = ()  # (revision, key, value; None: deleted)


#: What a watch hands on: its answers, or the exception that ended it.
WatchQueue = asyncio.Queue[WatchResponse | BaseException]


class Transport(Protocol):
    """One etcd cluster behind several endpoints, one of them in use at a time."""

    connect_timeout: float
    closed: asyncio.Event

    @property
    def connected_to(self) -> str | None: ...

    @property
    def endpoints(self) -> list[str]: ...

    @property
    def down_since(self) -> float | None: ...

    async def status(self) -> Status:
        """The status of the first endpoint that answers, each tried within the connect
        timeout; :class:`Lost` if its member has no leader."""
        ...

    async def heartbeat(self, url: str, timeout: float) -> None:
        """``url`` itself answers within ``timeout`` and its member has a leader, or
        :class:`Lost`."""
        ...

    async def range(self, start: bytes, end: bytes, revision: int) -> tuple[int, list[tuple[str, str]]]:
        """The revision read and the keys in ``[start, end)`` at ``revision`` (0: the
        latest); :class:`Compacted` if etcd no longer has it."""
        ...

    def watch(
        self, url: str, ranges: Sequence[tuple[bytes, bytes]], start: int
    ) -> AbstractAsyncContextManager[WatchQueue]:
        """One watcher per range from revision ``start``, on one stream to ``url``
        that ends when its member loses the leader."""
        ...

    async def failed(self, url: str, why: str) -> None:
        """A watch on ``url`` failed: the next attempt starts with another endpoint."""
        ...

    def mark_unreachable(self, why: object) -> None:
        """No endpoint answered (logged once, until one does again)."""
        ...

    async def close(self) -> None: ...


async def pump(answers: AsyncIterator[WatchResponse], queue: WatchQueue) -> None:
    """Put a stream's answers on ``queue`` until it ends, then what ended it."""
    try:
        async for answer in answers:
            queue.put_nowait(answer)
        queue.put_nowait(Lost("etcd ended the watch stream"))
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # gRPC cancels the calls of a channel being closed: the stream is lost.
        queue.put_nowait(Lost("the watch stream was cancelled"))
    except Exception as exc:  # handed to the watch, which raises it
        queue.put_nowait(exc)
