"""etcd over plain HTTP/1.1 on asyncio: endpoints, TLS, failover, and one streamed answer.

Both etcd stores speak JSON over HTTP: the v2 API is JSON, and the v3 API is served as
JSON by etcd's gateway on the same client port. A small client of our own does it:
persistent connections, ``Content-Length`` and chunked bodies, one idle connection kept
per endpoint, and :meth:`HttpClient.stream` for an answer that never ends (a watch),
read line by line on a connection of its own. Endpoints are tried in turn, starting
after the one that failed last, each within the connect timeout. Only changes of state
are logged (connected, lost, reconnected), never each retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Literal
from urllib.parse import quote, urlencode

from confpy.stores import http_wire as wire
from confpy.stores.base import Lost, Refused, StoreError, StoreUnreachable
from confpy.stores.endpoints import Access, Endpoint
from confpy.stores.http_wire import Response

_MAX_HEADER_BYTES = 64 * 1024
#: The longest line of a streamed answer: one watch response (a 1 MiB value, base64).
_MAX_STREAM_LINE = 64 * 1024 * 1024


class _Quiet(Exception):
    """A long poll that nothing answered within its time: not a failure."""


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

    async def request(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        version, status, fields = await self.head(method, target, headers, body)
        try:
            content = await self._body(fields)
        except wire.WireError as exc:
            raise Lost(str(exc)) from None
        self.reusable = wire.reusable(version, fields)
        return Response(status, fields, content, self.reusable)

    async def head(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, int, dict[str, str]]:
        """Send a request and read the head of its answer: version, status, fields."""
        self.reusable, self.sent = False, False  # until the whole response has been read
        ep = self.endpoint
        self._writer.write(wire.request(method, target, ep.host, ep.port, headers, body))
        await self._writer.drain()
        self.sent = True
        try:
            version, status = wire.status_of(await self._line())
            fields: dict[str, str] = {}
            while line := await self._line():
                name, value = wire.field_of(line)
                fields[name] = value
        except wire.WireError as exc:
            raise Lost(str(exc)) from None
        return version, status, fields

    async def lines(self, fields: Mapping[str, str]) -> AsyncIterator[bytes]:
        """The answer's body line by line, as it comes (chunked or not)."""
        pending = b""
        chunked = fields.get("transfer-encoding", "").lower() == "chunked"
        try:
            while True:
                if chunked:
                    size = wire.chunk_size(await self._line())
                    if size == 0:
                        break
                    data = (await self._reader.readexactly(size + 2))[:-2]
                else:
                    data = await self._reader.read(65536)
                    if not data:
                        break
                pending += data
                if len(pending) > _MAX_STREAM_LINE:
                    raise Lost("a streamed line is too long")
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    if line.strip():
                        yield line
        except asyncio.IncompleteReadError:
            raise Lost("the connection was closed in the middle of an answer") from None
        except wire.WireError as exc:
            raise Lost(str(exc)) from None
        raise Lost("the stream ended")

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
                while size := wire.chunk_size(await self._line()):
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


class HttpClient:
    """Requests to whichever endpoint answers, with TLS; ``label`` names the API in the
    lines ``log`` gets."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        access: Access,
        *,
        label: str,
        log: logging.Logger,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.label, self.log = label, log
        self._ssl: ssl.SSLContext | None = None
        if any(ep.tls for ep in self.endpoints):
            self._ssl = access.ssl_context()
        self._headers = dict(headers or {})
        self.connect_timeout = access.connect_timeout
        self._idle: dict[int, _Connection] = {}
        self._streams: set[_Connection] = set()  # open streams, ended by close()
        self._next = 0  # the endpoint the next attempt starts with
        self._current: Endpoint | None = None
        self._state: Literal["new", "up", "down"] = "new"
        self._ever_up = False
        # "down" from the start until an endpoint first answers.
        self.down_since: float | None = time.monotonic()
        self.closed = asyncio.Event()

    @property
    def connected_to(self) -> str | None:
        return self._current.url if self._current is not None and self._state == "up" else None

    @property
    def current(self) -> Endpoint | None:
        """The endpoint that answered last."""
        return self._current

    def _order(self) -> list[Endpoint]:
        n = len(self.endpoints)
        return [self.endpoints[(self._next + i) % n] for i in range(n)]  # _failed moves _next

    async def request(
        self,
        method: str,
        path: str,
        timeout: float,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        long_poll: bool = False,
    ) -> Response | None:
        """``method path?query`` on the first endpoint that answers within ``timeout``.

        Each endpoint is tried once, starting with the one that answered last; raises
        :class:`StoreUnreachable` naming them all, or :class:`Refused`. A ``long_poll``
        that is sent but not answered in time returns None (the endpoint is not blamed).
        """
        target = quote(path, safe="/") + (f"?{urlencode(query)}" if query else "")
        sent = {**self._headers, **(headers or {})}
        failures = []
        for ep in self._order():
            if self.closed.is_set():
                raise StoreError("the etcd store is closed")
            try:
                response = await self._send(ep, method, target, sent, body, timeout, long_poll)
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
                raise Refused(
                    f"etcd at {ep.url} refused the request: {response.body[:200].decode(errors='replace')}"
                )
            return response
        raise StoreUnreachable(
            f"no etcd endpoint answered within {self.connect_timeout:g} s; tried " + ", ".join(failures)
        )

    async def _open(self, ep: Endpoint) -> _Connection:
        async with asyncio.timeout(self.connect_timeout):
            reader, writer = await asyncio.open_connection(
                ep.host, ep.port, ssl=self._ssl if ep.tls else None, limit=_MAX_HEADER_BYTES
            )
        return _Connection(ep, reader, writer)

    async def _send(
        self,
        ep: Endpoint,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
        long_poll: bool,
    ) -> Response:
        conn = self._idle.pop(ep.index, None) or await self._open(ep)
        try:
            async with asyncio.timeout(timeout):
                response = await conn.request(method, target, headers, body)
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

    async def ask(
        self, ep: Endpoint, method: str, path: str, timeout: float, body: bytes, headers: Mapping[str, str]
    ) -> Response:
        """One request to ``ep`` itself, no other endpoint tried (a heartbeat)."""
        sent = {**self._headers, **headers}
        return await self._send(ep, method, quote(path, safe="/"), sent, body, timeout, long_poll=False)

    @contextlib.asynccontextmanager
    async def stream(
        self, ep: Endpoint, method: str, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """An answer read line by line as it comes, on a connection of its own to ``ep``
        (closed on exit). Raises :class:`Lost` for an answer that is not 200."""
        conn = await self._open(ep)
        self._streams.add(conn)
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, status, fields = await conn.head(
                    method, quote(path, safe="/"), {**self._headers, **(headers or {})}, body
                )
            if status != 200:
                raise Lost(f"HTTP {status} to {path}")
            yield conn.lines(fields)
        finally:
            self._streams.discard(conn)
            conn.close()

    def _answered(self, ep: Endpoint) -> None:
        self._next, self._current = ep.index, ep
        if self._state != "up":
            self.log.info(
                "%s %s at %s", "reconnected to" if self._ever_up else "connected to", self.label, ep.url
            )
            self._state, self._ever_up = "up", True
        self.down_since = None

    def _failed(self, ep: Endpoint, why: str) -> None:
        self._next = (ep.index + 1) % len(self.endpoints)
        if self._state == "up" and ep == self._current:
            self.log.warning("lost connection to %s at %s: %s", self.label, ep.url, why)
            self._state = "down"
            self.down_since = time.monotonic()

    def failed(self, ep: Endpoint, why: str) -> None:
        """A stream to ``ep`` broke: the next attempt starts with the next endpoint."""
        self._idle.pop(ep.index, None)
        self._failed(ep, why)

    def mark_unreachable(self, why: object) -> None:
        if self._state != "down":
            self.log.warning("%s unreachable, retrying with backoff: %s", self.label, why)
            self._state = "down"
        if self.down_since is None:
            self.down_since = time.monotonic()

    async def close(self) -> None:
        self.closed.set()
        for conn in [*self._idle.values(), *self._streams]:
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing


def reason(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "no answer in time"
    if isinstance(e, ConnectionRefusedError):
        return "Connection refused"  # asyncio says "Connect call failed ('127.0.0.1', 2379)"
    return str(e) or type(e).__name__
