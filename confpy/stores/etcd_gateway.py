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

import json
import socket
from collections.abc import Sequence
from typing import Any

from confpy.keys import as_bytes, byte_range, collapse, covered_by_any
from confpy.stores.base import Snapshot, StoreError, StoreUnreachable
from confpy.stores.endpoints import Access
from confpy.stores.etcd_json import API_ROOTS, error_message, kvs, range_body
from confpy.stores.http_wire import Response, WireError, exchange, request

#: Up to this many keys the gateway is the better road: at 10,000 it takes as long as
#: loading gRPC and reading through it, in 20 MiB less (bench/README.md); beyond, gRPC.
GATEWAY_MAX_KEYS = 20_000
_REQUEST_TIMEOUT = 30.0


class UseStore(Exception):
    """Read through the store itself: the read is large (gRPC reads it faster), or it
    found nothing and the store may look elsewhere (etcd's v2 API)."""


class GatewayRefused(StoreError):
    """etcd refused the request itself (credentials, permission): no endpoint would help."""


class _NotFound(Exception):
    """No gateway under this API path."""


class _Compacted(Exception):
    """The revision pinned by the first answer was compacted before the last one."""


class GatewayReader:
    """Reads every key under some prefixes at one revision, once."""

    def __init__(
        self, endpoints: Sequence[str], access: Access | None = None, *, detecting: bool = False
    ) -> None:
        self._detecting = detecting
        self._access = access = access or Access()
        self._endpoints = access.endpoints(endpoints)
        self._ssl = access.ssl_context() if any(ep.tls for ep in self._endpoints) else None
        self._auth = (
            None if access.username is None else {"name": access.username, "password": access.password}
        )

    @property
    def connected_to(self) -> str | None:
        return None  # never left open

    def _post(self, link: _Link, path: str, body: dict[str, Any], token: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        resp = link.post(path, json.dumps(body).encode(), headers)
        if resp.status == 404:
            raise _NotFound
        if resp.status != 200:
            message = error_message(resp.body)
            if "compacted" in message:
                raise _Compacted
            if resp.status in (400, 401, 403):
                raise GatewayRefused(f"etcd refused {path}: {message}")
            raise StoreError(f"etcd answered {resp.status} to {path}: {message}")
        return json.loads(resp.body or b"{}")

    def read(self, prefixes: Sequence[str]) -> Snapshot:
        """Every key under ``prefixes`` at one revision. Raises :class:`UseStore` for a
        large read, :class:`StoreUnreachable` when no endpoint answers."""
        wanted = collapse(prefixes)
        failures = []
        for ep in self._endpoints:
            url = ep.url
            conn = _Link(ep.host, ep.port, self._ssl if ep.tls else None, self._access.connect_timeout)
            try:
                for api in API_ROOTS:
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
            f"no etcd endpoint answered within {self._access.connect_timeout:g} s; tried "
            + ", ".join(failures)
        )

    def _read(self, conn: _Link, api: str, wanted: list[str]) -> Snapshot:
        def post(path: str, body: dict[str, Any]) -> Any:
            return self._post(conn, api + path, body, token)

        token = None
        if self._auth is not None:
            token = post("/auth/authenticate", self._auth).get("token")
        ranges = [byte_range(as_bytes(p)) for p in wanted] or [(b"\0", b"\0")]
        revision, total = 0, 0
        for start, end in ranges:
            answer = post("/kv/range", range_body(start, end, revision, count_only=True))
            revision = revision or int(answer["header"]["revision"])
            total += int(answer.get("count", 0))
        if total > GATEWAY_MAX_KEYS:
            raise UseStore(f"{total} keys to read: through gRPC")
        if total == 0 and self._detecting:
            raise UseStore("no key under any prefix in etcd's v3 API: the store looks at v2")
        values: dict[str, str] = {}
        for start, end in ranges if wanted else []:
            for key, value in kvs(post("/kv/range", range_body(start, end, revision))):
                if covered_by_any(wanted, key):  # the range also holds siblings such as K-b
                    values[key] = value
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
