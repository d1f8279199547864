"""etcd for the benchmarks: a member on loopback (tests/support/etcd_server.py) and a fast writer.

The writer talks gRPC directly (aetcd's generated stubs, as confpy's store does): one
``etcdctl`` process per put costs ~20 ms of process start and would make the writer,
not confpy, the thing measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from aetcd import rpc

from tests.support.etcd_proxy import GrpcProxy
from tests.support.etcd_server import (
    ELECTION_MS,
    HEARTBEAT_MS,
    EtcdCluster,
    EtcdServer,
)

MAX_TXN_OPS = 128  # etcd's default --max-txn-ops


@contextlib.contextmanager
def etcd_server(workdir: Path) -> Iterator[EtcdServer]:
    """A single-member etcd on free loopback ports with its data dir under ``workdir``;
    stopped by its PID and its data dir removed on exit."""
    server = EtcdServer(workdir / "etcd")
    try:
        server.start()
        yield server
    finally:
        server.close()


class KV:
    """A minimal asyncio etcd v3 client: put, put many (transactions), delete a prefix."""

    def __init__(self, endpoint: str) -> None:
        self.target = endpoint.split("://", 1)[-1]
        self.channel: Any = None
        self.kv: Any = None

    async def __aenter__(self) -> KV:
        self.channel = grpc.aio.insecure_channel(self.target)
        self.kv = rpc.KVStub(self.channel)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.channel.close()

    async def put(self, key: str, value: str) -> int:
        """Put one key; returns the revision etcd committed it at."""
        resp = await self.kv.Put(rpc.PutRequest(key=key.encode(), value=value.encode()), timeout=30)
        return int(resp.header.revision)

    async def put_many(self, items: Mapping[str, str] | Iterable[tuple[str, str]]) -> int:
        """Load keys in transactions of etcd's maximum size; returns the last revision."""
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        revision = 0
        for i in range(0, len(pairs), MAX_TXN_OPS):
            ops = [
                rpc.RequestOp(request_put=rpc.PutRequest(key=k.encode(), value=v.encode()))
                for k, v in pairs[i : i + MAX_TXN_OPS]
            ]
            resp = await self.kv.Txn(rpc.TxnRequest(success=ops), timeout=60)
            revision = int(resp.header.revision)
        return revision

    async def delete_prefix(self, prefix: str) -> int:
        key = prefix.encode()
        end = key[:-1] + bytes([key[-1] + 1])
        resp = await self.kv.DeleteRange(rpc.DeleteRangeRequest(key=key, range_end=end), timeout=60)
        return int(resp.header.revision)


@contextlib.contextmanager
def etcd_cluster(
    workdir: Path, size: int = 3, *, heartbeat_ms: int = HEARTBEAT_MS, election_ms: int = ELECTION_MS
) -> Iterator[EtcdCluster]:
    """``size`` etcd members on free loopback ports (data dirs under ``workdir``), all
    stopped by their PIDs on exit; raft timers as given (default: the tests' short ones)."""
    cluster = EtcdCluster(size, workdir / "etcd", heartbeat_ms=heartbeat_ms, election_ms=election_ms)
    try:
        cluster.start(timeout=30)
        yield cluster
    finally:
        cluster.close()


@contextlib.contextmanager
def grpc_proxy(workdir: Path, endpoints: list[str], **kw: Any) -> Iterator[GrpcProxy]:
    proxy = GrpcProxy(workdir, endpoints, **kw)
    try:
        yield proxy.start()
    finally:
        proxy.stop()


def metrics(url: str, timeout: float = 5.0) -> dict[str, float]:
    """A Prometheus text page as {series (name with labels): value}; loopback, no proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def load(endpoint: str, data: Mapping[str, str], *, clear: str | None = None) -> None:
    """Put ``data`` into etcd (transactions of etcd's maximum size), after deleting every
    key under the prefix ``clear`` if given. Synchronous: runs its own event loop."""

    async def go() -> None:
        async with KV(endpoint) as kv:
            if clear is not None:
                await kv.delete_prefix(clear)
            await kv.put_many(data)

    asyncio.run(go())
