"""The etcd v3 store: one consistent snapshot, one watch stream, nothing lost.

A snapshot is a range read per prefix, all at the first read's revision. The watch
is one stream with one watcher per prefix, put back together by revision
(etcd_watch.py). A heartbeat asks the watched member's status every few seconds: a
member that is frozen, or has lost its leader, is left for another within about 8 s.

The calls travel over etcd's JSON gateway (etcd_http.py); an endpoint that serves
none, such as an ``etcd grpc-proxy``, switches the store to gRPC (etcd_grpc.py,
imported only then), once, with a log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from confpy.backoff import Backoff
from confpy.keys import as_bytes, byte_range, collapse, covered_by_any
from confpy.stores.base import Lost, Refused, Resync, Snapshot, StoreError, StoreUnreachable, WatchEvent
from confpy.stores.endpoints import Access
from confpy.stores.etcd_http import HttpTransport
from confpy.stores.etcd_transport import Compacted, NoGateway, Transport, WatchQueue
from confpy.stores.etcd_watch import follow
from confpy.stores.http_client import reason

__all__ = ["EtcdStore", "Refused"]

log = logging.getLogger("confpy.etcd")

_BACKOFF_FIRST = 0.25
_BACKOFF_CAP = 4.0
#: How often the watched member is asked whether it is alive and has a leader, and
#: how long it has to answer.
HEARTBEAT_EVERY, HEARTBEAT_TIMEOUT = 5.0, 2.5


class EtcdStore:
    """Keys from an etcd v3 cluster, failing over between ``endpoints``. TLS is used for
    ``https://`` endpoints and whenever a CA or a client certificate is given."""

    name = "etcd"

    def __init__(self, endpoints: Sequence[str], access: Access | None = None) -> None:
        self._access = access = access or Access()
        self._endpoints = access.endpoints(endpoints)
        self._transport: Transport = HttpTransport(self._endpoints, access)
        self._closed = asyncio.Event()

    @property
    def connected_to(self) -> str | None:
        return self._transport.connected_to

    @property
    def endpoints(self) -> list[str]:
        return self._transport.endpoints

    @property
    def down_since(self) -> float | None:
        return self._transport.down_since

    async def _use_grpc(self, why: NoGateway) -> None:
        """An endpoint without a gateway: gRPC from now on, for every endpoint."""
        from confpy.stores.etcd_grpc import GrpcTransport  # loads gRPC: only when needed

        log.info("%s: speaking gRPC to etcd from now on", why)
        old, self._transport = self._transport, GrpcTransport(self._endpoints, self._access)
        await old.close()

    # -- snapshot -------------------------------------------------------------------
    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        """Every key under ``prefixes`` at one revision (the first read's).

        Read again from the start when etcd compacts between two reads, or the
        connection is lost (then from the next endpoint): a few tries, each bounded by
        about ``connect_timeout`` per endpoint, then :class:`StoreUnreachable`.
        """
        wanted = collapse(prefixes)
        last = "no attempt"
        for _ in range(len(self._endpoints) + 2):
            try:
                return await self._read(wanted)
            except NoGateway as e:
                await self._use_grpc(e)
            except (Compacted, Lost) as e:
                last = reason(e) if isinstance(e, Lost) else "compacted while reading"
        raise StoreUnreachable(f"no consistent etcd snapshot after trying every endpoint; last: {last}")

    async def _read(self, wanted: list[str]) -> Snapshot:
        if not wanted or self._transport.connected_to is None:
            # Not connected: a member is found within connect_timeout (its status), not
            # within a range read's deadline.
            status = await self._transport.status()
            if not wanted:
                return Snapshot(status.revision, {})
        values: dict[str, str] = {}
        revision = 0  # 0: the latest, until the first answer fixes it
        for prefix in wanted:
            start, end = byte_range(as_bytes(prefix))
            read_at, kvs = await self._transport.range(start, end, revision)
            revision = revision or read_at
            for key, value in kvs:
                if covered_by_any(wanted, key):  # the range also holds siblings such as K-b
                    values[key] = value
        return Snapshot(revision, values)

    # -- watch ----------------------------------------------------------------------
    async def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefixes`` from revision ``after + 1`` on, one batch per revision.

        One watcher per collapsed prefix, all on one stream; a transaction that spans
        several prefixes is put back together (etcd_watch.py). Keys between the
        prefixes (other components' churn) are never sent.

        On a lost connection the watch resumes at the revision after the last complete
        one, on any endpoint, with backoff. A compacted start revision, or a member
        whose revision is below one already seen (its data replaced), yields a
        :class:`Resync` with a new snapshot and continues from there. Raises only
        :class:`Refused`; ends when the store is closed.
        """
        wanted = collapse(prefixes)
        if not wanted:
            await self._closed.wait()  # nothing to watch: nothing will ever change
            return
        ranges = [byte_range(as_bytes(p)) for p in wanted]
        next_rev = after + 1
        cluster: int | None = None  # the cluster id the watch has followed so far
        backoff = Backoff(_BACKOFF_FIRST, _BACKOFF_CAP)
        while not self._closed.is_set():
            url: str | None = None
            try:
                status = await self._transport.status()
                url = status.url
                if status.revision < next_rev - 1 or cluster not in (None, status.cluster_id):
                    # Data dir wiped or restored from a snapshot: a watch from next_rev
                    # would wait for revisions that mean something else, or never come.
                    log.warning(
                        "etcd at %s is at revision %d, below revision %d already seen%s: "
                        "its data was replaced; taking a new snapshot",
                        url, status.revision, next_rev - 1,
                        "" if cluster in (None, status.cluster_id) else ", and its cluster id changed",
                    )  # fmt: skip
                    snapshot = await self.snapshot(prefixes)
                    next_rev, cluster = snapshot.revision + 1, status.cluster_id
                    yield Resync(snapshot)
                    continue
                cluster = status.cluster_id
                log.debug("watching %d prefixes from revision %d at %s", len(wanted), next_rev, url)
                async with self._transport.watch(url, ranges, next_rev) as answers:
                    beat = asyncio.create_task(self._heartbeat(url, answers))
                    try:
                        async for batch, safe in follow(
                            answers, len(ranges), wanted, next_rev, self._transport.connect_timeout
                        ):
                            backoff.reset()
                            next_rev = safe + 1
                            yield batch
                    finally:
                        beat.cancel()
                        await asyncio.gather(beat, return_exceptions=True)
            except NoGateway as e:
                await self._use_grpc(e)
            except Compacted as c:
                log.warning(
                    "etcd compacted revision %d (history now starts at %d): taking a new snapshot",
                    next_rev, c.compact_revision,
                )  # fmt: skip
                snapshot = await self.snapshot(prefixes)
                next_rev = snapshot.revision + 1
                yield Resync(snapshot)
            except Refused:
                raise
            except (StoreError, OSError, TimeoutError, ValueError, KeyError, TypeError) as e:
                if self._closed.is_set():
                    return
                if url is not None and not isinstance(e, StoreUnreachable):
                    await self._transport.failed(url, reason(e))
                else:
                    self._transport.mark_unreachable(reason(e))
                await backoff.sleep()

    async def _heartbeat(self, url: str, answers: WatchQueue) -> None:
        """Ends the watch on ``url`` (with :class:`Lost` among its answers) once its
        member stops answering in time, or loses its leader."""
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            try:
                await self._transport.heartbeat(url, HEARTBEAT_TIMEOUT)
            except (StoreError, OSError, TimeoutError, ValueError) as exc:
                answers.put_nowait(Lost(f"the watched member stopped answering its heartbeat: {reason(exc)}"))
                return

    async def close(self) -> None:
        self._closed.set()
        await self._transport.close()
