"""etcd's v3 API over gRPC, for an endpoint that serves no JSON gateway (an ``etcd
grpc-proxy``, or an etcd run with ``--enable-grpc-gateway=false``).

aetcd's generated stubs and messages (``aetcd.rpc``) on a channel of our own, rather
than ``aetcd.Client``: the client cannot read a range at a given revision, has no TLS
client certificates, and hands watch events over one by one, which loses where a
transaction ends. One channel at a time, shared by reads and the watch. No HTTP/2
keepalive pings: the store's heartbeat finds a frozen member, and pings more frequent
than a server's ``--grpc-keepalive-min-time`` (which an ``etcd grpc-proxy`` does not
let one set) end in GOAWAY ``too_many_pings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from aetcd import rpc

from confpy.keys import as_text
from confpy.stores.base import Lost, Refused, StoreError, StoreUnreachable
from confpy.stores.endpoints import Access, Endpoint
from confpy.stores.etcd_transport import Compacted, Status, WatchQueue, WatchResponse, pump

log = logging.getLogger("confpy.etcd")

_REQUEST_TIMEOUT = 30.0  # as etcd_http.py's
# A snapshot, or a catch-up batch after a reconnect, can exceed the 4 MiB default.
_CHANNEL_OPTIONS = (("grpc.max_receive_message_length", -1),)
_REQUIRE_LEADER = (("hasleader", "true"),)  # see etcd_http.py


@dataclass(eq=False, slots=True)
class _Connection:
    endpoint: Endpoint
    channel: Any
    kv: Any
    watch: Any
    maintenance: Any
    metadata: tuple[tuple[str, str], ...]


def _reason(e: BaseException) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    if isinstance(e, TimeoutError):
        return "no answer in time"
    return str(e) or type(e).__name__


def _failure(e: grpc.aio.AioRpcError, what: str) -> StoreError:
    """An answer another try would only repeat is a refusal; any other, a lost connection."""
    if e.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,  # includes "authentication failed" and "user name is empty"
        grpc.StatusCode.PERMISSION_DENIED,
    ):
        return Refused(f"{what}: {_reason(e)}")
    return Lost(_reason(e))


class GrpcTransport:
    """The v3 API over gRPC (see etcd_transport.Transport)."""

    def __init__(self, endpoints: Sequence[Endpoint], access: Access) -> None:
        self._endpoints = list(endpoints)
        self._ca, self._cert, self._key = access.tls_files()
        self._username, self._password = access.username, access.password
        self.connect_timeout = access.connect_timeout
        self._conn: _Connection | None = None
        self._next = 0  # the endpoint the next connection attempt starts with
        self._lock = asyncio.Lock()
        self.closed = asyncio.Event()
        self._state: Literal["new", "up", "down"] = "new"
        self._ever_up = False
        self.down_since: float | None = time.monotonic()

    @property
    def connected_to(self) -> str | None:
        conn = self._conn
        return conn.endpoint.url if conn is not None and self._state == "up" else None

    @property
    def endpoints(self) -> list[str]:
        return [ep.url for ep in self._endpoints]

    # -- connection -----------------------------------------------------------------
    def _channel(self, ep: Endpoint) -> Any:
        if ep.tls:
            creds = grpc.ssl_channel_credentials(
                root_certificates=self._ca, private_key=self._key, certificate_chain=self._cert
            )
            return grpc.aio.secure_channel(ep.target, creds, options=_CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(ep.target, options=_CHANNEL_OPTIONS)

    async def _open(self, ep: Endpoint) -> _Connection:
        channel = self._channel(ep)
        try:
            async with asyncio.timeout(self.connect_timeout):
                metadata = await self._authenticate(channel)
                maintenance = rpc.MaintenanceStub(channel)
                status = await maintenance.Status(rpc.StatusRequest(), metadata=metadata)
            if not status.leader:
                raise Lost("member has no leader")
        except BaseException:
            await channel.close()
            raise
        return _Connection(ep, channel, rpc.KVStub(channel), rpc.WatchStub(channel), maintenance, metadata)

    async def _authenticate(self, channel: Any) -> tuple[tuple[str, str], ...]:
        if self._username is None:
            return ()
        try:
            resp = await rpc.AuthStub(channel).Authenticate(
                rpc.AuthenticateRequest(name=self._username, password=self._password)
            )
        except grpc.aio.AioRpcError as e:
            # As etcd's own client does: credentials for an etcd without auth are ignored.
            if e.code() == grpc.StatusCode.FAILED_PRECONDITION and "not enabled" in (e.details() or ""):
                return ()
            raise
        return (("token", resp.token),)

    async def _connect(self) -> _Connection:
        """The current connection, or a new one: each endpoint tried once, starting
        after the one that failed last, each within ``connect_timeout``."""
        async with self._lock:
            if self._conn is not None:
                return self._conn
            if self.closed.is_set():
                raise StoreError("the etcd store is closed")
            failures: list[str] = []
            who = f"user {self._username!r}" if self._username else "the connection"
            n = len(self._endpoints)
            for ep in (self._endpoints[(self._next + i) % n] for i in range(n)):
                try:
                    conn = await self._open(ep)
                except grpc.aio.AioRpcError as e:
                    failure = _failure(e, f"etcd at {ep.url} refused {who}")
                    if isinstance(failure, Refused):
                        raise failure from e
                    failures.append(f"{ep.url} ({_reason(e)})")
                    continue
                except (TimeoutError, Lost) as e:  # a member without a leader is not used
                    failures.append(f"{ep.url} ({_reason(e)})")
                    continue
                if self.closed.is_set():
                    await conn.channel.close()
                    raise StoreError("the etcd store is closed")
                self._conn, self._next = conn, ep.index
                if self._state != "up":
                    log.info("%s etcd at %s", "reconnected to" if self._ever_up else "connected to", ep.url)
                    self._state, self._ever_up = "up", True
                self.down_since = None
                return conn
            raise StoreUnreachable(
                f"no etcd endpoint answered within {self.connect_timeout:g} s; tried " + ", ".join(failures)
            )

    async def _drop(self, conn: _Connection, why: str) -> None:
        """Forget a connection that failed; the next attempt starts with the next endpoint."""
        if self._conn is conn:
            self._conn = None
            self._next = (conn.endpoint.index + 1) % len(self._endpoints)
            if self._state == "up":
                log.warning("lost connection to etcd at %s: %s", conn.endpoint.url, why)
                self._state = "down"
                self.down_since = time.monotonic()
        await conn.channel.close()

    def _current(self, url: str) -> _Connection:
        conn = self._conn
        if conn is None or conn.endpoint.url != url:
            raise Lost(f"no connection to {url} any more")
        return conn

    async def _ask(self, conn: _Connection, call: Any, request: Any, timeout: float, what: str) -> Any:
        try:
            return await call(request, metadata=conn.metadata, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.OUT_OF_RANGE:
                raise Compacted() from e
            failure = _failure(e, f"etcd at {conn.endpoint.url} refused {what}")
            if isinstance(failure, Lost):
                await self._drop(conn, failure.args[0])
            raise failure from e

    # -- calls ----------------------------------------------------------------------
    async def status(self) -> Status:
        conn = await self._connect()
        status = await self._ask(
            conn, conn.maintenance.Status, rpc.StatusRequest(), self.connect_timeout, "status"
        )
        if not status.leader:
            await self._drop(conn, "member has no leader")
            raise Lost("member has no leader")
        return Status(conn.endpoint.url, int(status.header.revision), int(status.header.cluster_id))

    async def heartbeat(self, url: str, timeout: float) -> None:
        conn = self._current(url)
        try:
            status = await conn.maintenance.Status(
                rpc.StatusRequest(), metadata=conn.metadata, timeout=timeout
            )
        except grpc.aio.AioRpcError as e:
            raise Lost(_reason(e)) from e
        if not status.leader:
            raise Lost("member has no leader")

    async def range(self, start: bytes, end: bytes, revision: int) -> tuple[int, list[tuple[str, str]]]:
        conn = await self._connect()
        request = rpc.RangeRequest(key=start, range_end=end, revision=revision)
        resp = await self._ask(conn, conn.kv.Range, request, _REQUEST_TIMEOUT, "to read")
        return int(resp.header.revision), [(as_text(kv.key), as_text(kv.value)) for kv in resp.kvs]

    @contextlib.asynccontextmanager
    async def watch(
        self, url: str, ranges: Sequence[tuple[bytes, bytes]], start: int
    ) -> AsyncIterator[WatchQueue]:
        conn = self._current(url)
        call = conn.watch.Watch(metadata=conn.metadata + _REQUIRE_LEADER)
        queue: WatchQueue = asyncio.Queue()
        reader = asyncio.create_task(pump(_answers(call), queue))
        try:
            try:
                for key, end in ranges:
                    create = rpc.WatchCreateRequest(key=key, range_end=end, start_revision=start)
                    await call.write(rpc.WatchRequest(create_request=create))
            except grpc.aio.AioRpcError as e:
                raise Lost(_reason(e)) from e
            yield queue
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            call.cancel()

    async def failed(self, url: str, why: str) -> None:
        conn = self._conn
        if conn is not None and conn.endpoint.url == url:
            await self._drop(conn, why)
        else:
            self._next = next((ep.index + 1 for ep in self._endpoints if ep.url == url), 0) % len(
                self._endpoints
            )

    def mark_unreachable(self, why: object) -> None:
        if self._state != "down":
            log.warning("etcd unreachable, retrying with backoff: %s", why)
            self._state = "down"
        if self.down_since is None:
            self.down_since = time.monotonic()

    async def close(self) -> None:
        self.closed.set()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.channel.close()


async def _answers(call: Any) -> AsyncIterator[WatchResponse]:
    while True:
        try:
            resp = await call.read()
        except grpc.aio.AioRpcError as e:
            raise Lost(_reason(e)) from e
        if resp is grpc.aio.EOF:
            return
        yield WatchResponse(
            created=resp.created,
            canceled=resp.canceled,
            cancel_reason=resp.cancel_reason,
            compact_revision=int(resp.compact_revision),
            events=tuple(
                (
                    int(ev.kv.mod_revision),
                    as_text(ev.kv.key),
                    None if ev.type == rpc.Event.DELETE else as_text(ev.kv.value),
                )
                for ev in resp.events
            ),
        )
