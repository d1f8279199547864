"""etcd endpoints and connection settings, checked alike for etcd's v3 and v2 APIs.

No client library here: the v2 store must not import the v3 store's gRPC stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORT = 2379


@dataclass(frozen=True, slots=True)
class Address:
    host: str  # an IPv6 address without its brackets
    port: int
    https: bool


def split_endpoint(text: str) -> Address:
    """``http://host:port``, ``https://host:port`` or ``host:port`` (port 2379 by default)."""
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as e:
        raise ValueError(f"invalid etcd endpoint {text!r}: {e}") from None
    if parts.scheme not in ("", "http", "https") or not parts.hostname:
        raise ValueError(
            f"invalid etcd endpoint {text!r}: expected http://host:port, https://host:port or host:port"
        )
    return Address(parts.hostname, port, parts.scheme == "https")


def checked_settings(
    endpoints: Sequence[str],
    *,
    client_cert: str | None,
    client_key: str | None,
    username: str | None,
    password: str | None,
) -> list[str]:
    """The endpoints as a list, once the settings that come in pairs are complete."""
    if isinstance(endpoints, str):
        endpoints = [endpoints]  # a lone string would otherwise be taken letter by letter
    if not endpoints:
        raise ValueError("no etcd endpoint given")
    if (client_cert is None) != (client_key is None):
        raise ValueError("an etcd client certificate needs its key, and the key its certificate")
    if (username is None) != (password is None):
        raise ValueError("etcd authentication needs both a username and a password")
    return list(endpoints)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of the v3 clients, in the form each needs."""

    index: int
    url: str  # as configured, for messages
    target: str  # host:port (IPv6 in brackets) for gRPC
    tls: bool

    @property
    def address(self) -> Address:
        return split_endpoint(self.url)


def parse_endpoint(index: int, text: str, tls: bool) -> Endpoint:
    address = split_endpoint(text)
    host = f"[{address.host}]" if ":" in address.host else address.host
    return Endpoint(index, text, f"{host}:{address.port}", tls or address.https)


def parse_endpoints(
    endpoints: Sequence[str],
    client_cert: str | None,
    client_key: str | None,
    ca_cert: str | None,
    username: str | None,
    password: str | None,
) -> list[Endpoint]:
    """The v3 clients' endpoints, once the settings that go with them are consistent."""
    texts = checked_settings(
        endpoints, client_cert=client_cert, client_key=client_key, username=username, password=password
    )
    tls = ca_cert is not None or client_cert is not None
    return [parse_endpoint(i, e, tls) for i, e in enumerate(texts)]


def read_file(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the etcd {what} {path}: {e.strerror}") from None
