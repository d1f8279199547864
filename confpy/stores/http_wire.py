"""HTTP/1.1 on the wire, for confpy's two small HTTP clients (http_client.py on asyncio,
for both etcd stores; the v3 JSON gateway's one-shot read on a plain socket): the
request's bytes, the answer's head and body framing, and the answer itself. The
standard library's ``http.client`` would load ``ssl`` and ``email`` for every one-shot
run; this needs neither.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confpy.stores.base import Lost

MAX_LINE = 64 * 1024


class WireError(Exception):
    """The peer answered something that is not HTTP/1.1, or stopped mid-answer."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    reusable: bool  # the connection may carry the next request

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


def request(method: str, target: str, host: str, port: int, headers: Mapping[str, str], body: bytes) -> bytes:
    """The bytes of one request (``host`` without IPv6 brackets)."""
    shown = f"[{host}]" if ":" in host else host
    lines = [f"{method} {target} HTTP/1.1", f"Host: {shown}:{port}", "Accept: application/json"]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def status_of(line: str) -> tuple[str, int]:
    """``HTTP/1.1 200 OK`` -> (``HTTP/1.1``, 200)."""
    try:
        version, status, *_ = line.split(" ", 2)
        return version, int(status)
    except ValueError:
        raise WireError(f"not an HTTP answer: {line[:80]!r}") from None


def field_of(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


def chunk_size(line: str) -> int:
    try:
        return int(line.split(";", 1)[0], 16)
    except ValueError:
        raise WireError(f"a bad chunk size: {line[:40]!r}") from None


def reusable(version: str, fields: Mapping[str, str]) -> bool:
    return version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"


def exchange(sock: socket.socket, data: bytes) -> Response:
    """Send one request on a blocking socket and read its whole answer."""
    sock.sendall(data)
    stream = sock.makefile("rb")

    def line() -> str:
        raw = stream.readline(MAX_LINE)
        if not raw.endswith(b"\r\n"):
            raise WireError("the connection was closed, or a line is too long")
        return raw[:-2].decode("latin-1")

    def exactly(n: int) -> bytes:
        data = stream.read(n)
        if len(data) != n:
            raise WireError("the connection was closed in the middle of an answer")
        return data

    version, status = status_of(line())
    fields: dict[str, Any] = {}
    while text := line():
        name, value = field_of(text)
        fields[name] = value
    if fields.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := chunk_size(line()):
            chunks.append(exactly(size))
            line()  # the CRLF after each chunk
        while line():  # trailers
            pass
        body = b"".join(chunks)
    elif "content-length" in fields:
        body = exactly(int(fields["content-length"]))
    else:
        body = stream.read()
    return Response(status, fields, body, reusable(version, fields))
