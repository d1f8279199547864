"""etcd endpoints and the settings that reach them, checked alike for every etcd client
(the v3 store's two transports, the one-shot gateway reader, the v2 store).

No client library here: the v2 store must not import the v3 store's gRPC stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

DEFAULT_PORT = 2379


@dataclass(frozen=True, slots=True)
class Endpoint:
    index: int  # its place among the configured endpoints
    url: str  # as configured, for messages
    host: str  # an IPv6 address without its brackets
    port: int
    tls: bool

    @property
    def target(self) -> str:
        """``host:port`` as gRPC takes it (an IPv6 address in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(index: int, text: str, tls: bool) -> Endpoint:
    """``http://host:port``, ``https://host:port`` or ``host:port`` (port 2379 by
    default); TLS for ``https://``, and for any endpoint when ``tls``."""
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as e:
        raise ValueError(f"invalid etcd endpoint {text!r}: {e}") from None
    if parts.scheme not in ("", "http", "https") or not parts.hostname:
        raise ValueError(
            f"invalid etcd endpoint {text!r}: expected http://host:port, https://host:port or host:port"
        )
    return Endpoint(index, text, parts.hostname, port, tls or parts.scheme == "https")


@dataclass(frozen=True, slots=True)
class Access:
    """How etcd is reached: TLS files, credentials, and how long an endpoint has to
    answer. The settings that come in pairs are checked here."""

    client_cert: str | None = None
    client_key: str | None = None
    ca_cert: str | None = None
    username: str | None = None
    password: str | None = None
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("an etcd client certificate needs its key, and the key its certificate")
        if (self.username is None) != (self.password is None):
            raise ValueError("etcd authentication needs both a username and a password")

    def endpoints(self, texts: Sequence[str]) -> list[Endpoint]:
        """``texts`` parsed, once the TLS files are known to be readable (a missing
        file is named before any connection is tried)."""
        if isinstance(texts, str):
            texts = [texts]  # a lone string would otherwise be taken letter by letter
        if not texts:
            raise ValueError("no etcd endpoint given")
        self.tls_files()
        tls = self.ca_cert is not None or self.client_cert is not None
        return [parse_endpoint(i, e, tls) for i, e in enumerate(texts)]

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of an ``https`` endpoint: the CA and the client certificate."""
        import ssl  # only for TLS endpoints

        try:
            context = ssl.create_default_context(cafile=self.ca_cert)
            if self.client_cert is not None:
                context.load_cert_chain(self.client_cert, self.client_key)
        except (OSError, ssl.SSLError) as e:
            raise ValueError(f"cannot load the etcd TLS files: {e}") from None
        return context

    def tls_files(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """The CA, the client certificate and its key, as bytes (None: not given)."""
        return (
            _read(self.ca_cert, "CA certificate"),
            _read(self.client_cert, "client certificate"),
            _read(self.client_key, "client key"),
        )


def _read(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the etcd {what} {path}: {e.strerror}") from None
