"""The etcd v3 store: one consistent snapshot, one watch stream, nothing lost.

Built on aetcd's generated gRPC stubs and messages (``aetcd.rpc``) over a channel of
our own, rather than on ``aetcd.Client``: the client cannot read a range at a given
revision, has no TLS client certificates, and its watcher hands events over one by
one, which loses where a transaction ends. The stubs give all three in little code.

Keys and values are bytes in etcd. They are decoded as UTF-8 with ``surrogateescape``:
every byte string maps to a distinct ``str`` and back, so keys never merge, and a
value that is not UTF-8 makes the writer (which encodes strictly) fail loudly instead
of installing a file with U+FFFD in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from aetcd import rpc

from confpy.backoff import Backoff
from confpy.keys import byte_range, collapse, covered_by_any
from confpy.stores.base import Resync, Snapshot, StoreError, StoreUnreachable, WatchEvent
from confpy.stores.etcd_connection import Connection, Connector, EtcdRefused, Lost, reason, refused
from confpy.stores.etcd_watch import Compacted, follow

__all__ = ["EtcdRefused", "EtcdStore"]

log = logging.getLogger("confpy.etcd")

_ENCODING_ERRORS = "surrogateescape"
# A range read grows with the data, so its deadline is generous; a dead or frozen
# member is caught sooner by the keepalive.
_REQUEST_TIMEOUT = 30.0
_BACKOFF_FIRST = 0.25
_BACKOFF_CAP = 4.0
# etcd reports a compacted revision on a pinned range read with this status code.
_COMPACTED = grpc.StatusCode.OUT_OF_RANGE


def _decode(b: bytes) -> str:
    return b.decode("utf-8", _ENCODING_ERRORS)


def _encode(s: str) -> bytes:
    return s.encode("utf-8", _ENCODING_ERRORS)


class EtcdStore:
    """Keys from an etcd v3 cluster, over gRPC, failing over between ``endpoints``.

    One gRPC connection at a time, shared by snapshots and the watch. TLS is used
    for ``https://`` endpoints and whenever a CA or a client certificate is given.
    """

    name = "etcd"

    def __init__(self, endpoints: Sequence[str], **connection: Any) -> None:
        """``connection``: the TLS, authentication and timeout settings of
        :class:`~confpy.stores.etcd_connection.Connector`."""
        self._connector = Connector(endpoints, **connection)

    @property
    def connected_to(self) -> str | None:
        return self._connector.connected_to

    @property
    def endpoints(self) -> list[str]:
        return [ep.url for ep in self._connector.endpoints]

    @property
    def down_since(self) -> float | None:
        return self._connector.down_since

    # -- snapshot -------------------------------------------------------------------
    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        """Every key under ``prefixes`` at one revision.

        Tries the current connection, then each endpoint once (bounded by about
        ``connect_timeout`` per endpoint), then raises :class:`StoreUnreachable`.
        """
        wanted = collapse(prefixes)
        last = "no attempt"
        for _ in range(len(self._connector.endpoints) + 1):
            conn = await self._connector.connect()
            try:
                return await self._read(conn, wanted)
            except grpc.aio.AioRpcError as e:
                if refused(e):
                    raise EtcdRefused(f"etcd at {conn.endpoint.url} refused to read: {reason(e)}") from e
                last = f"{conn.endpoint.url}: {reason(e)}"
                if e.code() == _COMPACTED:
                    continue  # compacted between two of our reads: read again, same member
                await self._connector.drop(conn, reason(e))
        raise StoreUnreachable(f"no consistent etcd snapshot after trying every endpoint; last error {last}")

    async def _read(self, conn: Connection, prefixes: Sequence[str]) -> Snapshot:
        """The first range read fixes the revision; the others are read at that revision."""
        if not prefixes:
            status = await conn.maintenance.Status(
                rpc.StatusRequest(), metadata=conn.metadata, timeout=_REQUEST_TIMEOUT
            )
            return Snapshot(int(status.header.revision), {})
        values: dict[str, str] = {}
        revision = 0  # 0: the latest, until the first answer fixes it
        for prefix in prefixes:
            start, end = byte_range(_encode(prefix))
            resp = await conn.kv.Range(
                rpc.RangeRequest(key=start, range_end=end, revision=revision),
                metadata=conn.metadata,
                timeout=_REQUEST_TIMEOUT,
            )
            revision = revision or int(resp.header.revision)
            for kv in resp.kvs:
                key = _decode(kv.key)
                if covered_by_any(prefixes, key):  # the range also holds siblings such as K-b
                    values[key] = _decode(kv.value)
        return Snapshot(revision, values)

    # -- watch ----------------------------------------------------------------------
    async def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefixes`` from revision ``after + 1`` on, one batch per revision.

        One watcher per collapsed prefix, all on one gRPC stream; a transaction that
        spans several prefixes is put back together (etcd_watch.py). Keys between the
        prefixes (other components' churn) are never sent.

        On a lost connection the watch resumes at the revision after the last complete
        one, on any endpoint, with backoff. A compacted start revision yields a
        :class:`Resync` with a new snapshot and continues from there. Raises only
        :class:`EtcdRefused`; ends when the store is closed.
        """
        wanted = collapse(prefixes)
        if not wanted:
            await self._connector.closed.wait()  # nothing to watch: nothing will ever change
            return
        ranges = [byte_range(_encode(p)) for p in wanted]
        next_rev = after + 1
        cluster: int | None = None  # the cluster id the watch has followed so far
        backoff = Backoff(_BACKOFF_FIRST, _BACKOFF_CAP)
        while not self._connector.closed.is_set():
            conn: Connection | None = None
            try:
                conn = await self._connector.connect()
                status = await conn.maintenance.Status(
                    rpc.StatusRequest(), metadata=conn.metadata, timeout=_REQUEST_TIMEOUT
                )
                now, cluster_id = int(status.header.revision), int(status.header.cluster_id)
                if now < next_rev - 1 or cluster not in (None, cluster_id):
                    # Data dir wiped or restored from a snapshot: a watch from next_rev
                    # would wait for revisions that mean something else, or never come.
                    log.warning(
                        "etcd at %s is at revision %d, below revision %d already seen%s: "
                        "its data was replaced; taking a new snapshot",
                        conn.endpoint.url, now, next_rev - 1,
                        "" if cluster in (None, cluster_id) else ", and its cluster id changed",
                    )  # fmt: skip
                    snapshot = await self.snapshot(prefixes)
                    next_rev, cluster = snapshot.revision + 1, cluster_id
                    yield Resync(snapshot)
                    continue
                cluster = cluster_id
                log.debug(
                    "watching %d prefixes from revision %d at %s", len(wanted), next_rev, conn.endpoint.url
                )
                async for batch, safe in follow(
                    conn, ranges, wanted, next_rev, self._connector.connect_timeout
                ):
                    backoff.reset()
                    next_rev = safe + 1
                    yield batch
                raise Lost("the watch ended")
            except Compacted as c:
                log.warning(
                    "etcd compacted revision %d (history now starts at %d): taking a new snapshot",
                    next_rev, c.compact_revision,
                )  # fmt: skip
                snapshot = await self.snapshot(prefixes)
                next_rev = snapshot.revision + 1
                yield Resync(snapshot)
            except EtcdRefused:
                raise
            except asyncio.CancelledError:
                # gRPC cancels the calls of a channel that close() closed: the end of the
                # watch, unless this task itself is being cancelled.
                task = asyncio.current_task()
                if self._connector.closed.is_set() and task is not None and not task.cancelling():
                    return
                raise
            except (StoreError, grpc.aio.AioRpcError, TimeoutError, Lost) as e:
                if self._connector.closed.is_set():
                    return
                if refused(e):
                    raise EtcdRefused(f"etcd refused the watch: {reason(e)}") from e
                if conn is not None and not isinstance(e, StoreError):
                    await self._connector.drop(conn, reason(e))
                else:
                    self._connector.mark_unreachable(e)
                await backoff.sleep()

    async def close(self) -> None:
        await self._connector.close()
