"""The etcd v2 store (``-backend etcdv2``, confd's ``-backend etcd``): Calico 2.x's datastore.

Snapshot: a recursive GET of each prefix. The v2 API cannot read at an index, so the
reads count as one snapshot only when every answer carries the same ``X-Etcd-Index``;
after a few tries without that (a busy cluster), one GET of the prefixes' common
ancestor is the snapshot. Watch: one recursive long poll on that ancestor from index+1
(``?wait=true&recursive=true&waitIndex=``), one event per answer, events outside the
prefixes dropped; after a lost connection it resumes at the index after the last event,
on any endpoint. "Index cleared" (error 401: etcd keeps the last 1000 events) is
answered by a new snapshot, as the v3 store answers a compaction.

Directories are not keys. A deleted or expired directory is one event for all that was
under it, which this store does not keep: it is answered by a new snapshot too.
A long poll that stays quiet is sent again every :data:`POLL_SECONDS`, after ``/health``
proves the member alive and with a leader (a frozen member would never answer).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from confpy.backoff import Backoff
from confpy.keys import collapse, covered_by_any, covers
from confpy.stores.base import Change, Changes, Lost, Refused, Resync, Snapshot, StoreError, WatchEvent
from confpy.stores.endpoints import Access
from confpy.stores.http_client import HttpClient, reason
from confpy.stores.http_wire import Response

__all__ = ["EtcdV2Store", "Refused"]

log = logging.getLogger("confpy.etcdv2")

POLL_SECONDS = 10.0
_REQUEST_TIMEOUT = 30.0
_CONSISTENT_TRIES = 3
_BACKOFF_FIRST, _BACKOFF_CAP = 0.25, 4.0
_KEY_NOT_FOUND, _INDEX_CLEARED = 100, 401
_PUT_ACTIONS = frozenset({"set", "create", "update", "compareAndSwap"})
_DELETE_ACTIONS = frozenset({"delete", "expire", "compareAndDelete"})


class _SnapshotNeeded(Exception):
    """The events cannot say what changed: the index was cleared, a directory went."""


def common_ancestor(prefixes: Sequence[str]) -> str:
    """The deepest directory covering every prefix (``/`` at worst)."""
    parts = [p.strip("/").split("/") for p in prefixes]
    shared: list[str] = []
    for segments in zip(*parts, strict=False):
        if len(set(segments)) != 1 or not segments[0]:
            break
        shared.append(segments[0])
    return "/" + "/".join(shared)


def _flatten(node: Any, out: dict[str, str]) -> None:
    """The keys of a v2 node tree (directories are not keys)."""
    if not isinstance(node, dict):
        raise Lost(f"not an etcd node: {node!r:.80}")
    if node.get("dir"):
        for child in node.get("nodes") or ():
            _flatten(child, out)
    elif isinstance(node.get("key"), str):
        out[node["key"]] = str(node.get("value") or "")


def _error_code(response: Response) -> int | None:
    body = response.json()
    return body.get("errorCode") if isinstance(body, dict) else None


class EtcdV2Store:
    """Keys from etcd's v2 API over HTTP, failing over between ``endpoints``."""

    name = "etcdv2"

    def __init__(self, endpoints: Sequence[str], access: Access | None = None) -> None:
        access = access or Access()
        headers = {}
        if access.username is not None:  # the v2 API takes HTTP basic authentication
            token = base64.b64encode(f"{access.username}:{access.password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        self._client = HttpClient(
            access.endpoints(endpoints), access, label="etcd (v2 API)", log=log, headers=headers
        )

    @property
    def connected_to(self) -> str | None:
        return self._client.connected_to

    @property
    def endpoints(self) -> list[str]:
        return [ep.url for ep in self._client.endpoints]

    @property
    def down_since(self) -> float | None:
        return self._client.down_since

    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        wanted = collapse(prefixes)
        if not wanted:
            index, _ = await self._read("/")
            return Snapshot(index, {})
        for _ in range(_CONSISTENT_TRIES):
            reads = [await self._read(p) for p in wanted]
            if len({index for index, _ in reads}) == 1:
                return Snapshot(reads[0][0], {k: v for _, values in reads for k, v in values.items()})
        ancestor = common_ancestor(wanted)
        log.debug("etcd kept moving between reads: one read of %s", ancestor)
        index, values = await self._read(ancestor)
        return Snapshot(index, {k: v for k, v in values.items() if covered_by_any(wanted, k)})

    async def _read(self, prefix: str) -> tuple[int, dict[str, str]]:
        """Every key under ``prefix`` and the index it was read at. A quorum read: a
        member cut off from the others cannot answer with old data."""
        response = await self._client.request(
            "GET", "/v2/keys" + prefix, _REQUEST_TIMEOUT, query={"recursive": "true", "quorum": "true"}
        )
        assert response is not None
        values: dict[str, str] = {}
        if response.status == 200:
            body = response.json()  # not a JSON object: _flatten says it is not an etcd node
            _flatten(body.get("node") if isinstance(body, dict) else body, values)
        elif _error_code(response) != _KEY_NOT_FOUND:
            raise StoreError(f"etcd could not read {prefix}: HTTP {response.status} {response.body[:200]!r}")
        return response.etcd_index, {k: v for k, v in values.items() if covers(prefix, k)}

    async def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefixes`` from index ``after + 1`` on, one batch per index.

        Reconnects with backoff on any endpoint; raises only :class:`Refused`; ends
        when the store is closed.
        """
        wanted = collapse(prefixes)
        if not wanted:
            await self._client.closed.wait()
            return
        ancestor = common_ancestor(wanted)
        next_index = after + 1
        backoff = Backoff(_BACKOFF_FIRST, _BACKOFF_CAP)
        placed = False  # the member's index and cluster checked since the last failure
        cluster: str | None = None  # the cluster id followed so far
        while not self._client.closed.is_set():
            try:
                if not placed:
                    index, cluster_id = await self._position(ancestor)
                    known, placed, cluster = cluster, True, cluster_id
                    if index < next_index - 1 or known not in (None, cluster_id):
                        # Data dir wiped or restored from a backup: a watch from next_index
                        # would wait for events that mean something else (as the v3 store).
                        moved = "" if known in (None, cluster_id) else ", and its cluster id changed"
                        raise _SnapshotNeeded(
                            f"etcd is at index {index}, below index {next_index - 1} already seen{moved}: "
                            "its data was replaced"
                        )
                event = await self._poll(ancestor, next_index)
                backoff.reset()
                if event is None:
                    continue
                node = event.get("node") or {}
                index = int(node["modifiedIndex"])
                next_index = index + 1
                change = self._change(event, node, wanted)
                if change is not None:
                    yield Changes(index, (change,))
            except _SnapshotNeeded as why:
                log.warning("etcd v2 watch at index %d: %s; taking a new snapshot", next_index, why)
                snapshot = await self.snapshot(prefixes)
                next_index = snapshot.revision + 1
                yield Resync(snapshot)
            except Refused:
                raise
            # An event of the wrong shape (KeyError, ValueError, TypeError, AttributeError) is
            # handled as a lost connection. Lost is a StoreError.
            except (StoreError, KeyError, ValueError, TypeError, AttributeError) as e:
                if self._client.closed.is_set():
                    return
                placed = False
                self._client.mark_unreachable(reason(e))
                await backoff.sleep()

    async def _position(self, ancestor: str) -> tuple[int, str]:
        """The index and cluster id of the member answering now (a GET of one level)."""
        response = await self._client.request("GET", "/v2/keys" + ancestor, _REQUEST_TIMEOUT)
        assert response is not None
        return response.etcd_index, response.headers.get("x-etcd-cluster-id", "")

    async def _poll(self, ancestor: str, index: int) -> dict[str, Any] | None:
        """The first event under ``ancestor`` at ``index`` or later; None if none came
        within :data:`POLL_SECONDS` (and the member proved alive)."""
        query = {"wait": "true", "recursive": "true", "waitIndex": str(index)}
        response = await self._client.request(
            "GET", "/v2/keys" + ancestor, POLL_SECONDS, query=query, long_poll=True
        )
        if response is None:
            health = await self._client.request("GET", "/health", self._client.connect_timeout)
            if health is None or health.status != 200:
                raise Lost("etcd member unhealthy (no leader?)")
            return None
        body = response.json()
        if not isinstance(body, dict):
            raise Lost(f"not an etcd event: {response.body[:80]!r}")
        if body.get("errorCode") == _INDEX_CLEARED:
            raise _SnapshotNeeded(f"index cleared ({body.get('cause')})")
        if response.status != 200:
            raise Lost(f"etcd refused the watch: HTTP {response.status} {body.get('message')}")
        return body

    @staticmethod
    def _change(event: dict[str, Any], node: dict[str, Any], wanted: list[str]) -> Change | None:
        """The change an event makes under ``wanted``, None if nothing of ours."""
        key, action = node.get("key") or "/", event.get("action")
        if node.get("dir") or (event.get("prevNode") or {}).get("dir"):
            ours = covered_by_any(wanted, key) or any(covers(key, p) for p in wanted)
            if ours and action in _DELETE_ACTIONS:
                raise _SnapshotNeeded(f"directory {key} went with everything under it ({action})")
            return None
        if not covered_by_any(wanted, key):
            return None
        if action in _DELETE_ACTIONS:
            return Change(key, None)
        if action in _PUT_ACTIONS:
            return Change(key, str(node.get("value") or ""))
        return None

    async def close(self) -> None:
        await self._client.close()
