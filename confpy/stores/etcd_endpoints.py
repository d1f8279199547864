"""etcd endpoints and connection settings, checked the same way for every etcd client
(gRPC and the JSON gateway). No network, no gRPC: cheap to import."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

_DEFAULT_PORT = 2379


@dataclass(frozen=True, slots=True)
class Endpoint:
    index: int
    url: str  # as configured, for messages
    target: str  # host:port for gRPC
    tls: bool


def parse_endpoint(index: int, text: str, tls: bool) -> Endpoint:
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
    return Endpoint(index, text, f"{host}:{port}", tls or parts.scheme == "https")


def parse_endpoints(
    endpoints: Sequence[str] | str,
    client_cert: str | None,
    client_key: str | None,
    ca_cert: str | None,
    username: str | None,
    password: str | None,
) -> list[Endpoint]:
    """The endpoints, once the settings that go with them are consistent (ValueError)."""
    if isinstance(endpoints, str):
        endpoints = [endpoints]  # a lone string would otherwise be taken letter by letter
    if not endpoints:
        raise ValueError("no etcd endpoint given")
    if (client_cert is None) != (client_key is None):
        raise ValueError("an etcd client certificate needs its key, and the key its certificate")
    if (username is None) != (password is None):
        raise ValueError("etcd authentication needs both a username and a password")
    tls = ca_cert is not None or client_cert is not None
    return [parse_endpoint(i, e, tls) for i, e in enumerate(endpoints)]


def read_file(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the etcd {what} {path}: {e.strerror}") from None
