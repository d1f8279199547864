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
import contextlib
import itertools
import logging
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import grpc
from aetcd import rpc

from confpy.stores.base import (
    Change,
    Changes,
    Resync,
    Snapshot,
    StoreError,
    StoreUnreachable,
    WatchEvent,
    collapse_prefixes,
)

log = logging.getLogger("confpy.etcd")

_ENCODING_ERRORS = "surrogateescape"
_DEFAULT_PORT = 2379

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
# A range read grows with the data, so its deadline is generous; a dead or frozen
# member is caught sooner by the keepalive.
_REQUEST_TIMEOUT = 30.0
_BACKOFF_FIRST = 0.25
_BACKOFF_CAP = 4.0
# Makes etcd end the watch when its member loses the leader (as etcd's own client
# does): a member cut off from the quorum would otherwise look alive and stay silent.
_REQUIRE_LEADER = (("hasleader", "true"),)
# etcd reports a compacted revision on a pinned range read with this status code.
_COMPACTED = grpc.StatusCode.OUT_OF_RANGE


class EtcdRefused(StoreError):
    """etcd refused the request itself (wrong credentials, no permission, invalid
    request): trying again or on another endpoint would not help."""


class _Lost(Exception):
    """An endpoint or a watch is unusable for a reason that came without a gRPC error."""


@dataclass(frozen=True, slots=True)
class _Endpoint:
    index: int
    url: str  # as configured, for messages
    target: str  # host:port for gRPC
    tls: bool


@dataclass(eq=False, slots=True)
class _Conn:
    endpoint: _Endpoint
    channel: Any
    kv: Any
    watch: Any
    maintenance: Any
    metadata: tuple[tuple[str, str], ...]


def _parse_endpoint(index: int, text: str, tls: bool) -> _Endpoint:
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        port = parts.port or _DEFAULT_PORT
    except ValueError as e:
        raise ValueError(f"invalid etcd endpoint {text!r}: {e}") from None
    if parts.scheme not in ("", "http", "https") or not parts.hostname:
        raise ValueError(
            f"invalid etcd endpoint {text!r}: expected http://host:port, https://host:port or host:port"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return _Endpoint(index, text, f"{host}:{port}", tls or parts.scheme == "https")


def _key_range(prefix: bytes) -> tuple[bytes, bytes]:
    """etcd's [key, range_end) for every key starting with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        # "" (or only 0xff bytes): every key from here on; range_end "\0" means "no end".
        return prefix or b"\0", b"\0"
    return prefix, stripped[:-1] + bytes([stripped[-1] + 1])


def _covering_range(prefixes: Sequence[bytes]) -> tuple[bytes, bytes]:
    """One [key, range_end) that contains every prefix."""
    ranges = [_key_range(p) for p in prefixes]
    ends = [end for _, end in ranges]
    return min(start for start, _ in ranges), b"\0" if b"\0" in ends else max(ends)


def _decode(b: bytes) -> str:
    return b.decode("utf-8", _ENCODING_ERRORS)


def _reason(e: BaseException) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    if isinstance(e, TimeoutError):
        return "no answer in time"
    return str(e) or type(e).__name__


def _refused(e: BaseException) -> bool:
    """An answer from etcd that another try would only repeat."""
    return isinstance(e, grpc.aio.AioRpcError) and e.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,  # includes "authentication failed" and "user name is empty"
        grpc.StatusCode.PERMISSION_DENIED,
    )


def _read_file(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the etcd {what} {path}: {e.strerror}") from None


class _Backoff:
    def __init__(self) -> None:
        self._next = _BACKOFF_FIRST

    def reset(self) -> None:
        self._next = _BACKOFF_FIRST

    async def sleep(self) -> None:
        # Jitter, so that the watchers of many nodes do not come back in lockstep.
        await asyncio.sleep(self._next * random.uniform(0.5, 1.0))
        self._next = min(self._next * 2, _BACKOFF_CAP)


class EtcdStore:
    """Keys from an etcd v3 cluster, over gRPC, failing over between ``endpoints``.

    One gRPC connection at a time, shared by snapshots and the watch. TLS is used
    for ``https://`` endpoints and whenever a CA or a client certificate is given.
    """

    name = "etcd"

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
        if isinstance(endpoints, str):
            endpoints = [endpoints]  # a lone string would otherwise be taken letter by letter
        if not endpoints:
            raise ValueError("no etcd endpoint given")
        if (client_cert is None) != (client_key is None):
            raise ValueError("an etcd client certificate needs its key, and the key its certificate")
        if (username is None) != (password is None):
            raise ValueError("etcd authentication needs both a username and a password")
        self._ca = _read_file(ca_cert, "CA certificate")
        self._cert = _read_file(client_cert, "client certificate")
        self._key = _read_file(client_key, "client key")
        tls = ca_cert is not None or client_cert is not None
        self._endpoints = [_parse_endpoint(i, e, tls) for i, e in enumerate(endpoints)]
        self._username = username
        self._password = password
        self._connect_timeout = connect_timeout
        self._conn: _Conn | None = None
        self._next = 0  # index of the endpoint the next connection attempt starts with
        self._lock = asyncio.Lock()
        self._closed = asyncio.Event()
        # "new": never connected; logged transitions only, never each retry.
        self._state: Literal["new", "up", "down"] = "new"
        self._ever_up = False

    @property
    def connected_to(self) -> str | None:
        conn = self._conn
        return conn.endpoint.url if conn is not None and self._state == "up" else None

    # -- connection -----------------------------------------------------------------
    def _channel(self, ep: _Endpoint) -> Any:
        if ep.tls:
            creds = grpc.ssl_channel_credentials(
                root_certificates=self._ca, private_key=self._key, certificate_chain=self._cert
            )
            return grpc.aio.secure_channel(ep.target, creds, options=_CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(ep.target, options=_CHANNEL_OPTIONS)

    async def _open(self, ep: _Endpoint) -> _Conn:
        """Connect to one endpoint: authenticate, and check that its member has a leader."""
        channel = self._channel(ep)
        maintenance = rpc.MaintenanceStub(channel)
        try:
            async with asyncio.timeout(self._connect_timeout):
                metadata = await self._authenticate(channel)
                status = await maintenance.Status(rpc.StatusRequest(), metadata=metadata)
            if not status.leader:
                raise _Lost("member has no leader")
        except BaseException:
            await channel.close()
            raise
        return _Conn(ep, channel, rpc.KVStub(channel), rpc.WatchStub(channel), maintenance, metadata)

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

    async def _connected(self) -> _Conn:
        """The current connection, or a new one: each endpoint tried once, in order,
        starting after the one that failed last, each within ``connect_timeout``."""
        async with self._lock:
            if self._conn is not None:
                return self._conn
            if self._closed.is_set():
                raise StoreError("the etcd store is closed")
            failures: list[str] = []
            n = len(self._endpoints)
            for ep in (self._endpoints[(self._next + i) % n] for i in range(n)):
                try:
                    conn = await self._open(ep)
                except (grpc.aio.AioRpcError, TimeoutError, _Lost) as e:
                    if _refused(e):
                        who = f"user {self._username!r}" if self._username else "the connection"
                        raise EtcdRefused(f"etcd at {ep.url} refused {who}: {_reason(e)}") from e
                    failures.append(f"{ep.url} ({_reason(e)})")
                    continue
                if self._closed.is_set():
                    await conn.channel.close()
                    raise StoreError("the etcd store is closed")
                self._conn, self._next = conn, ep.index
                if self._state != "up":
                    log.info("%s etcd at %s", "reconnected to" if self._ever_up else "connected to", ep.url)
                    self._state, self._ever_up = "up", True
                return conn
            raise StoreUnreachable(
                f"no etcd endpoint answered within {self._connect_timeout:g} s; tried " + ", ".join(failures)
            )

    async def _drop(self, conn: _Conn, reason: str) -> None:
        """Forget a connection that failed; the next attempt starts with the next endpoint,
        so a frozen member is not waited for again first."""
        if self._conn is conn:
            self._conn = None
            self._next = (conn.endpoint.index + 1) % len(self._endpoints)
            if self._state == "up":
                log.warning("lost connection to etcd at %s: %s", conn.endpoint.url, reason)
                self._state = "down"
        await conn.channel.close()

    # -- snapshot -------------------------------------------------------------------
    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        """Every key under ``prefixes`` at one revision.

        Tries the current connection, then each endpoint once (bounded by about
        ``connect_timeout`` per endpoint), then raises :class:`StoreUnreachable`.
        """
        wanted = [p.encode("utf-8", _ENCODING_ERRORS) for p in collapse_prefixes(prefixes)]
        last = "no attempt"
        for _ in range(len(self._endpoints) + 1):
            conn = await self._connected()
            try:
                return await self._read(conn, wanted)
            except grpc.aio.AioRpcError as e:
                if _refused(e):
                    raise EtcdRefused(f"etcd at {conn.endpoint.url} refused to read: {_reason(e)}") from e
                last = f"{conn.endpoint.url}: {_reason(e)}"
                if e.code() == _COMPACTED:
                    continue  # compacted between two of our reads: read again, same member
                await self._drop(conn, _reason(e))
        raise StoreUnreachable(f"no consistent etcd snapshot after trying every endpoint; last error {last}")

    async def _read(self, conn: _Conn, prefixes: Sequence[bytes]) -> Snapshot:
        """The first range read fixes the revision; the others are read at that revision."""
        if not prefixes:
            status = await conn.maintenance.Status(
                rpc.StatusRequest(), metadata=conn.metadata, timeout=_REQUEST_TIMEOUT
            )
            return Snapshot(int(status.header.revision), {})
        values: dict[str, str] = {}
        revision = 0  # 0: the latest, until the first answer fixes it
        for prefix in prefixes:
            key, range_end = _key_range(prefix)
            resp = await conn.kv.Range(
                rpc.RangeRequest(key=key, range_end=range_end, revision=revision),
                metadata=conn.metadata,
                timeout=_REQUEST_TIMEOUT,
            )
            revision = revision or int(resp.header.revision)
            for kv in resp.kvs:
                values[_decode(kv.key)] = _decode(kv.value)
        return Snapshot(revision, values)

    # -- watch ----------------------------------------------------------------------
    async def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefixes`` from revision ``after + 1`` on, one batch per revision.

        One watch on one gRPC stream, over a single key range that covers every prefix;
        events outside the prefixes are dropped here. A single watcher is what makes
        etcd deliver all the events of a revision in one response, in revision order
        (several watchers on a stream are not ordered against each other, so a
        transaction spanning two prefixes could not be reassembled without extra
        round trips). The cost is the events of keys between the prefixes, which the
        collapsed, usually neighbouring, prefixes keep small.

        On a lost connection the watch resumes at the revision after the last complete
        one, on any endpoint, with backoff. A compacted start revision yields a
        :class:`Resync` with a new snapshot and continues from there. Raises only
        :class:`EtcdRefused`; ends when the store is closed.
        """
        wanted = tuple(p.encode("utf-8", _ENCODING_ERRORS) for p in collapse_prefixes(prefixes))
        if not wanted:
            await self._closed.wait()  # nothing to watch: nothing will ever change
            return
        key, range_end = _covering_range(wanted)
        next_rev = after + 1
        backoff = _Backoff()
        while not self._closed.is_set():
            conn: _Conn | None = None
            try:
                conn = await self._connected()
                async with self._watch_call(conn, key, range_end, next_rev) as call:
                    backoff.reset()
                    log.debug(
                        "watching %d prefixes from revision %d at %s",
                        len(wanted),
                        next_rev,
                        conn.endpoint.url,
                    )
                    while True:
                        resp = await call.read()
                        if resp is grpc.aio.EOF:
                            raise _Lost("etcd ended the watch stream")
                        if resp.compact_revision:
                            log.warning(
                                "etcd compacted revision %d (history now starts at %d): "
                                "taking a new snapshot",
                                next_rev,
                                resp.compact_revision,
                            )
                            snapshot = await self.snapshot(prefixes)
                            next_rev = snapshot.revision + 1
                            yield Resync(snapshot)
                            break
                        if resp.canceled:
                            raise _Lost(f"etcd cancelled the watch: {resp.cancel_reason}")
                        for rev, events in itertools.groupby(resp.events, lambda ev: ev.kv.mod_revision):
                            changes = tuple(
                                Change(
                                    _decode(ev.kv.key),
                                    None if ev.type == rpc.Event.DELETE else _decode(ev.kv.value),
                                )
                                for ev in events
                                if ev.kv.key.startswith(wanted)
                            )
                            next_rev = int(rev) + 1
                            if changes:
                                yield Changes(int(rev), changes)
            except EtcdRefused:
                raise
            except asyncio.CancelledError:
                # gRPC cancels the calls of a channel that close() closed: the end of the
                # watch, unless this task itself is being cancelled.
                task = asyncio.current_task()
                if self._closed.is_set() and task is not None and not task.cancelling():
                    return
                raise
            except (StoreError, grpc.aio.AioRpcError, TimeoutError, _Lost) as e:
                if self._closed.is_set():
                    return
                if _refused(e):
                    raise EtcdRefused(f"etcd refused the watch: {_reason(e)}") from e
                if conn is not None and not isinstance(e, StoreError):
                    await self._drop(conn, _reason(e))
                elif self._state != "down":
                    log.warning("etcd unreachable, retrying with backoff: %s", e)
                    self._state = "down"
                await backoff.sleep()

    @contextlib.asynccontextmanager
    async def _watch_call(self, conn: _Conn, key: bytes, range_end: bytes, start: int) -> AsyncIterator[Any]:
        """A watch stream whose watcher etcd has accepted (within ``connect_timeout``)."""
        call = conn.watch.Watch(metadata=conn.metadata + _REQUIRE_LEADER)
        try:
            await call.write(
                rpc.WatchRequest(
                    create_request=rpc.WatchCreateRequest(key=key, range_end=range_end, start_revision=start)
                )
            )
            async with asyncio.timeout(self._connect_timeout):
                created = await call.read()
            if created is grpc.aio.EOF or not created.created:
                raise _Lost("etcd did not create the watch")
            if created.canceled:
                reason = f"etcd at {conn.endpoint.url} refused the watch: {created.cancel_reason}"
                raise (EtcdRefused if "permission denied" in created.cancel_reason else _Lost)(reason)
            yield call
        finally:
            call.cancel()

    async def close(self) -> None:
        self._closed.set()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.channel.close()
