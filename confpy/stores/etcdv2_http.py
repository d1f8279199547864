"""The etcd v2 store's connection: plain HTTP/1.1 on asyncio, endpoints, TLS, failover.

etcd's v2 API is JSON over HTTP; no v2 client library is kept up, and the store needs
three requests (a recursive GET, a long-polling watch, ``/health``), so this is a small
client of its own: persistent connections, ``Content-Length`` and chunked bodies, one
idle connection kept per endpoint. Endpoints are tried in turn, starting after the one
that failed last, each within the connect timeout. Only changes of state are logged
(connected, lost, reconnected), never each retry, as for the v3 store.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

from confpy.stores.base import StoreError, StoreUnreachable
from confpy.stores.endpoints import checked_settings, split_endpoint

log = logging.getLogger("confpy.etcdv2")

_MAX_HEADER_BYTES = 64 * 1024


class V2Refused(StoreError):
    """etcd refused the request itself (credentials, permissions): retrying would not help."""


class Lost(StoreError):
    """An endpoint stopped answering, or answered something that is not HTTP."""


class _Quiet(Exception):
    """A long poll that nothing answered within its time: not a failure."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    index: int
    url: str  # as configured, for messages
    host: str
    port: int
    tls: bool


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." deeper than the parser goes
            raise Lost(f"HTTP {self.status} with a body that is not JSON: {self.body[:80]!r}") from None

    @property
    def etcd_index(self) -> int:
        try:
            return int(self.headers.get("x-etcd-index", ""))
        except ValueError:
            raise Lost(f"HTTP {self.status} without an X-Etcd-Index header") from None


def parse_endpoint(index: int, text: str, tls: bool) -> Endpoint:
    address = split_endpoint(text)
    return Endpoint(index, text, address.host, address.port, tls or address.https)


class _Connection:
    """One HTTP/1.1 connection; a request at a time."""

    def __init__(
        self, endpoint: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.endpoint = endpoint
        self._reader = reader
        self._writer = writer
        self.reusable = True
        self.sent = False  # the last request went out

    async def request(self, method: str, target: str, headers: Mapping[str, str]) -> Response:
        self.reusable, self.sent = False, False  # until the whole response has been read
        host = self.endpoint.host if ":" not in self.endpoint.host else f"[{self.endpoint.host}]"
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: {host}:{self.endpoint.port}",
            "Accept: application/json",
        ]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await self._writer.drain()
        self.sent = True
        status_line = await self._line()
        try:
            version, status_text, _ = status_line.split(" ", 2)
            status = int(status_text)
        except ValueError:
            raise Lost(f"not an HTTP answer: {status_line[:80]!r}") from None
        fields: dict[str, str] = {}
        while line := await self._line():
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        body = await self._body(fields)
        self.reusable = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
        return Response(status, fields, body)

    async def _line(self) -> str:
        try:
            raw = await self._reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError:
            raise Lost("the connection was closed") from None
        except asyncio.LimitOverrunError:
            raise Lost("an HTTP header line is too long") from None
        return raw[:-2].decode("latin-1")

    async def _body(self, fields: Mapping[str, str]) -> bytes:
        try:
            if fields.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while size := int((await self._line()).split(";", 1)[0], 16):
                    chunks.append(await self._reader.readexactly(size + 2))
                while await self._line():  # trailers
                    pass
                return b"".join(c[:-2] for c in chunks)
            if "content-length" in fields:
                return await self._reader.readexactly(int(fields["content-length"]))
            return await self._reader.read()
        except asyncio.IncompleteReadError:
            raise Lost("the connection was closed in the middle of an answer") from None
        except ValueError:
            raise Lost("an HTTP body with a bad length") from None

    def close(self) -> None:
        self._writer.close()


class Client:
    """Requests to whichever endpoint answers, with TLS and basic authentication."""

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
        endpoints = checked_settings(
            endpoints, client_cert=client_cert, client_key=client_key, username=username, password=password
        )
        tls = ca_cert is not None or client_cert is not None
        self.endpoints = [parse_endpoint(i, e, tls) for i, e in enumerate(endpoints)]
        self._ssl: ssl.SSLContext | None = None
        if any(ep.tls for ep in self.endpoints):
            try:
                self._ssl = ssl.create_default_context(cafile=ca_cert)
                if client_cert is not None:
                    self._ssl.load_cert_chain(client_cert, client_key)
            except (OSError, ssl.SSLError) as e:
                raise ValueError(f"cannot load the etcd TLS files: {e}") from None
        self._auth = {}
        if username is not None:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self._auth = {"Authorization": f"Basic {token}"}
        self.connect_timeout = connect_timeout
        self._idle: dict[int, _Connection] = {}
        self._next = 0  # the endpoint the next attempt starts with
        self._current: Endpoint | None = None
        self._state: Literal["new", "up", "down"] = "new"
        self._ever_up = False
        # As the v3 connector: "down" from the start until an endpoint first answers.
        self.down_since: float | None = time.monotonic()
        self.closed = asyncio.Event()

    @property
    def connected_to(self) -> str | None:
        return self._current.url if self._current is not None and self._state == "up" else None

    async def get(
        self, path: str, query: Mapping[str, str], timeout: float, *, long_poll: bool = False
    ) -> Response | None:
        """``GET path?query`` on the first endpoint that answers within ``timeout``.

        Each endpoint is tried once, starting with the one that answered last; raises
        :class:`StoreUnreachable` naming them all, or :class:`V2Refused`. A ``long_poll``
        that is sent but not answered in time returns None (the endpoint is not blamed).
        """
        target = quote(path, safe="/") + (f"?{urlencode(query)}" if query else "")
        failures = []
        n = len(self.endpoints)
        for ep in [self.endpoints[(self._next + i) % n] for i in range(n)]:  # _failed moves _next
            if self.closed.is_set():
                raise StoreError("the etcd store is closed")
            try:
                response = await self._send(ep, target, timeout, long_poll)
            except _Quiet:
                return None
            except (OSError, TimeoutError, Lost) as e:
                failures.append(f"{ep.url} ({reason(e)})")
                self._failed(ep, reason(e))
                continue
            if response.status >= 500:  # e.g. a member without a leader: ask another
                failures.append(f"{ep.url} (HTTP {response.status})")
                self._failed(ep, f"HTTP {response.status}: {response.body[:200].decode(errors='replace')}")
                continue
            self._answered(ep)
            if response.status in (401, 403):
                raise V2Refused(
                    f"etcd at {ep.url} refused the request: {response.body[:200].decode(errors='replace')}"
                )
            return response
        raise StoreUnreachable(
            f"no etcd endpoint answered within {self.connect_timeout:g} s; tried " + ", ".join(failures)
        )

    async def _send(self, ep: Endpoint, target: str, timeout: float, long_poll: bool) -> Response:
        conn = self._idle.pop(ep.index, None)
        if conn is None:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    ep.host, ep.port, ssl=self._ssl if ep.tls else None, limit=_MAX_HEADER_BYTES
                )
            conn = _Connection(ep, reader, writer)
        try:
            async with asyncio.timeout(timeout):
                response = await conn.request("GET", target, self._auth)
        except TimeoutError:
            if long_poll and conn.sent:
                raise _Quiet from None
            raise
        finally:
            if conn.reusable and ep.index not in self._idle and not self.closed.is_set():
                self._idle[ep.index] = conn
            else:
                conn.close()
        return response

    def _answered(self, ep: Endpoint) -> None:
        self._next, self._current = ep.index, ep
        if self._state != "up":
            log.info("%s etcd (v2 API) at %s", "reconnected to" if self._ever_up else "connected to", ep.url)
            self._state, self._ever_up = "up", True
        self.down_since = None

    def _failed(self, ep: Endpoint, why: str) -> None:
        self._next = (ep.index + 1) % len(self.endpoints)
        if self._state == "up" and ep == self._current:
            log.warning("lost connection to etcd (v2 API) at %s: %s", ep.url, why)
            self._state = "down"
            self.down_since = time.monotonic()

    def mark_unreachable(self, why: object) -> None:
        if self._state != "down":
            log.warning("etcd (v2 API) unreachable, retrying with backoff: %s", why)
            self._state = "down"
        if self.down_since is None:
            self.down_since = time.monotonic()

    async def close(self) -> None:
        self.closed.set()
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing


def reason(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "no answer in time"
    return str(e) or type(e).__name__
