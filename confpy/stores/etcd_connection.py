"""The etcd v3 store's connection: endpoints, TLS, authentication, failover.

One gRPC channel at a time, shared by snapshots and the watch. Each endpoint is
tried in turn, starting after the one that failed last, each within the connect
timeout; a member without a leader is not used. Only changes of state are logged
(connected, lost, reconnected), never each retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from aetcd import rpc

from confpy.stores.base import StoreError, StoreUnreachable
from confpy.stores.endpoints import Endpoint, parse_endpoints, read_file

log = logging.getLogger("confpy.etcd")

# etcd answers pings more frequent than its --grpc-keepalive-min-time (5 s by
# default) with GOAWAY "too_many_pings", so ping a little above it. A frozen member
# is then noticed within time + timeout, about 8 s.
_KEEPALIVE_TIME_MS = 5500
_KEEPALIVE_TIMEOUT_MS = 2500
_CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", _KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
    # gRPC (1.85) waits for a keepalive ping's answer this long, not keepalive_timeout_ms.
    ("grpc.http2.ping_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
    # etcd counts pings on a connection without a call as abuse too.
    ("grpc.keepalive_permit_without_calls", 0),
    # An idle watch sends no data; keep pinging regardless.
    ("grpc.http2.max_pings_without_data", 0),
    # A snapshot or a catch-up batch after a reconnect can exceed the 4 MiB default.
    ("grpc.max_receive_message_length", -1),
)


class EtcdRefused(StoreError):
    """etcd refused the request itself (wrong credentials, no permission, invalid
    request): trying again or on another endpoint would not help."""


class Lost(Exception):
    """An endpoint or a watch is unusable for a reason that came without a gRPC error."""


@dataclass(eq=False, slots=True)
class Connection:
    endpoint: Endpoint
    channel: Any
    kv: Any
    watch: Any
    maintenance: Any
    metadata: tuple[tuple[str, str], ...]


def reason(e: BaseException) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    if isinstance(e, TimeoutError):
        return "no answer in time"
    return str(e) or type(e).__name__


def refused(e: BaseException) -> bool:
    """An answer from etcd that another try would only repeat."""
    return isinstance(e, grpc.aio.AioRpcError) and e.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,  # includes "authentication failed" and "user name is empty"
        grpc.StatusCode.PERMISSION_DENIED,
    )


class Connector:
    """Hands out the current connection, or opens one on the next endpoint that answers."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        client_cert: str | None = None,
        client_key: str | None = None,
        ca_cert: str | None = None,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.endpoints = parse_endpoints(endpoints, client_cert, client_key, ca_cert, username, password)
        self._ca = read_file(ca_cert, "CA certificate")
        self._cert = read_file(client_cert, "client certificate")
        self._key = read_file(client_key, "client key")
        self._username = username
        self._password = password
        self.connect_timeout = connect_timeout
        self._conn: Connection | None = None
        self._next = 0  # index of the endpoint the next connection attempt starts with
        self._lock = asyncio.Lock()
        self.closed = asyncio.Event()
        # "new": never connected; logged transitions only, never each retry.
        self._state: Literal["new", "up", "down"] = "new"
        self._ever_up = False
        #: When the store was lost (or, never connected, first asked for): for /healthz.
        self.down_since: float | None = time.monotonic()

    @property
    def connected_to(self) -> str | None:
        conn = self._conn
        return conn.endpoint.url if conn is not None and self._state == "up" else None

    def _channel(self, ep: Endpoint) -> Any:
        if ep.tls:
            creds = grpc.ssl_channel_credentials(
                root_certificates=self._ca, private_key=self._key, certificate_chain=self._cert
            )
            return grpc.aio.secure_channel(ep.target, creds, options=_CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(ep.target, options=_CHANNEL_OPTIONS)

    async def _open(self, ep: Endpoint) -> Connection:
        """Connect to one endpoint: authenticate, and check that its member has a leader."""
        channel = self._channel(ep)
        maintenance = rpc.MaintenanceStub(channel)
        try:
            async with asyncio.timeout(self.connect_timeout):
                metadata = await self._authenticate(channel)
                status = await maintenance.Status(rpc.StatusRequest(), metadata=metadata)
            if not status.leader:
                raise Lost("member has no leader")
        except BaseException:
            await channel.close()
            raise
        return Connection(ep, channel, rpc.KVStub(channel), rpc.WatchStub(channel), maintenance, metadata)

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

    async def connect(self) -> Connection:
        """The current connection, or a new one: each endpoint tried once, in order,
        starting after the one that failed last, each within ``connect_timeout``."""
        async with self._lock:
            if self._conn is not None:
                return self._conn
            if self.closed.is_set():
                raise StoreError("the etcd store is closed")
            failures: list[str] = []
            n = len(self.endpoints)
            for ep in (self.endpoints[(self._next + i) % n] for i in range(n)):
                try:
                    conn = await self._open(ep)
                except (grpc.aio.AioRpcError, TimeoutError, Lost) as e:
                    if refused(e):
                        who = f"user {self._username!r}" if self._username else "the connection"
                        raise EtcdRefused(f"etcd at {ep.url} refused {who}: {reason(e)}") from e
                    failures.append(f"{ep.url} ({reason(e)})")
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

    async def drop(self, conn: Connection, why: str) -> None:
        """Forget a connection that failed; the next attempt starts with the next endpoint,
        so a frozen member is not waited for again first."""
        if self._conn is conn:
            self._conn = None
            self._next = (conn.endpoint.index + 1) % len(self.endpoints)
            if self._state == "up":
                log.warning("lost connection to etcd at %s: %s", conn.endpoint.url, why)
                self._state = "down"
                self.down_since = time.monotonic()
        await conn.channel.close()

    def mark_unreachable(self, why: object) -> None:
        """No endpoint answered (logged once, until a connection succeeds again)."""
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
