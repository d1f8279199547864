"""A one-shot read of etcd v3 through its JSON gateway (``POST /v3/kv/range``) on a plain
socket (http_wire.py).

``-onetime``, ``-noop`` and ``--stdout`` read once and exit: gRPC's stack (and asyncio,
which it imports) cost more to load, and 20 MiB more memory, than thousands of keys
take to read. etcd serves the same API as JSON on its client port, but marshals it
slowly: past :data:`GATEWAY_MAX_KEYS` keys its answer takes longer than loading gRPC,
so the reader counts first and says :class:`UseStore` for a larger read.

Same contract as :meth:`EtcdStore.snapshot`: every prefix at one revision (the first
answer's), failover across the endpoints, TLS client certificates, username/password.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Sequence
from typing import Any

from confpy.keys import byte_range, collapse, covered_by_any
from confpy.stores.base import Snapshot, StoreError, StoreUnreachable
from confpy.stores.endpoints import parse_endpoints, read_file
from confpy.stores.http_wire import Response, WireError, exchange, request

#: Up to this many keys the gateway is the better road: at 10,000 it takes as long as
#: loading gRPC and reading through it, in 20 MiB less (bench/README.md); beyond, gRPC.
GATEWAY_MAX_KEYS = 20_000
_REQUEST_TIMEOUT = 30.0
_ENCODING_ERRORS = "surrogateescape"


class UseStore(Exception):
    """Read through the store itself: the read is large (gRPC reads it faster), or it
    found nothing and the store may look elsewhere (etcd's v2 API)."""


class GatewayRefused(StoreError):
    """etcd refused the request itself (credentials, permission): no endpoint would help."""


class _NotFound(Exception):
    """No gateway under this API path."""


class _Compacted(Exception):
    """The revision pinned by the first answer was compacted before the last one."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _text(b64: str) -> str:
    return base64.b64decode(b64).decode("utf-8", _ENCODING_ERRORS)


class GatewayReader:
    """Reads every key under some prefixes at one revision, once."""

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
        detecting: bool = False,
    ) -> None:
        self._detecting = detecting
        self._endpoints = parse_endpoints(endpoints, client_cert, client_key, ca_cert, username, password)
        read_file(ca_cert, "CA certificate")  # the same errors as the gRPC store's
        read_file(client_cert, "client certificate")
        read_file(client_key, "client key")
        self._cert, self._key, self._ca = client_cert, client_key, ca_cert
        self._auth = None if username is None else {"name": username, "password": password or ""}
        self._timeout = connect_timeout

    @property
    def connected_to(self) -> str | None:
        return None  # never left open

    def _tls(self) -> Any:
        import ssl  # only for https endpoints

        context = ssl.create_default_context(cafile=self._ca)
        if self._cert:
            context.load_cert_chain(self._cert, self._key)
        return context

    def _post(self, link: _Link, path: str, body: dict[str, Any], token: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        resp = link.post(path, json.dumps(body).encode(), headers)
        if resp.status == 404:
            raise _NotFound
        answer = json.loads(resp.body or b"{}")
        if resp.status != 200:
            message = answer.get("message") or answer.get("error") or resp.body[:200].decode(errors="replace")
            if "compacted" in message:
                raise _Compacted
            if resp.status in (400, 401, 403):
                raise GatewayRefused(f"etcd refused {path}: {message}")
            raise StoreError(f"etcd answered {resp.status} to {path}: {message}")
        return answer

    def read(self, prefixes: Sequence[str]) -> Snapshot:
        """Every key under ``prefixes`` at one revision. Raises :class:`UseStore` for a
        large read, :class:`StoreUnreachable` when no endpoint answers."""
        wanted = collapse(prefixes)
        failures = []
        for ep in self._endpoints:
            url = ep.url
            conn = _Link(ep.address.host, ep.address.port, self._tls() if ep.tls else None, self._timeout)
            try:
                for api in ("/v3", "/v3beta"):  # etcd 3.3 and older: /v3beta
                    for _ in range(3):
                        try:
                            return self._read(conn, api, wanted)
                        except _Compacted:
                            continue  # compacted between two of our reads: read again
                        except _NotFound:
                            break
                raise UseStore(f"etcd at {url} serves no JSON gateway: through gRPC")
            # An answer of the wrong shape (a list for an object, a number for a string:
            # TypeError, AttributeError) is an endpoint failing, like one that is not JSON.
            except (
                OSError,
                WireError,
                ValueError,
                KeyError,
                TypeError,
                AttributeError,
                RecursionError,
            ) as exc:
                failures.append(f"{url} ({exc})")
            finally:
                conn.close()
        raise StoreUnreachable(
            f"no etcd endpoint answered within {self._timeout:g} s; tried " + ", ".join(failures)
        )

    def _read(self, conn: _Link, api: str, wanted: list[str]) -> Snapshot:
        def post(path: str, body: dict[str, Any]) -> Any:
            return self._post(conn, api + path, body, token)

        token = None
        if self._auth is not None:
            token = post("/auth/authenticate", self._auth).get("token")
        ranges = [byte_range(p.encode("utf-8", _ENCODING_ERRORS)) for p in wanted] or [(b"\0", b"\0")]
        revision, total = 0, 0
        for start, end in ranges:
            body = {"key": _b64(start), "range_end": _b64(end), "count_only": True, "revision": revision}
            answer = post("/kv/range", body)
            revision = revision or int(answer["header"]["revision"])
            total += int(answer.get("count", 0))
        if total > GATEWAY_MAX_KEYS:
            raise UseStore(f"{total} keys to read: through gRPC")
        if total == 0 and self._detecting:
            raise UseStore("no key under any prefix in etcd's v3 API: the store looks at v2")
        values: dict[str, str] = {}
        for start, end in ranges if wanted else []:
            answer = post("/kv/range", {"key": _b64(start), "range_end": _b64(end), "revision": revision})
            for kv in answer.get("kvs", ()):
                key = _text(kv["key"])
                if covered_by_any(wanted, key):  # the range also holds siblings such as K-b
                    values[key] = _text(kv.get("value", ""))
        return Snapshot(revision, values)


class _Link:
    """One endpoint's connection, opened on first use and again when the server closes it."""

    def __init__(self, host: str, port: int, tls: Any, timeout: float) -> None:
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self._sock: socket.socket | None = None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._sock = sock if self.tls is None else self.tls.wrap_socket(sock, server_hostname=self.host)
        resp = exchange(self._sock, request("POST", path, self.host, self.port, headers, body))
        if not resp.reusable:
            self.close()
        return resp

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
