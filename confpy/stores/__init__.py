"""Store clients. Heavy clients (etcd's gRPC stack) are imported only when used.

:func:`open_store` gives the store the daemon follows; :func:`open_reader` a
synchronous reader for one read (a one-shot mode), where the store has one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from confpy.errors import ConfigError
from confpy.stores.base import Reader, Store
from confpy.stores.etcd_gateway import PreferGrpc

__all__ = ["PreferGrpc", "open_reader", "open_store"]

if TYPE_CHECKING:
    from confpy.settings import Settings


def open_store(settings: Settings) -> Store:
    """The store the settings name; bad store settings are a :class:`ConfigError`."""
    kind = settings.store_kind
    if kind == "file":
        from confpy.stores.file import FileStore

        return FileStore(settings.files)
    if kind == "env":
        from confpy.stores.env import EnvStore

        return EnvStore()
    from confpy.stores.etcd import EtcdStore

    try:
        return EtcdStore(
            settings.endpoints(),
            client_cert=settings.client_cert,
            client_key=settings.client_key,
            ca_cert=settings.client_ca_keys,
            username=settings.username,
            password=settings.password,
            connect_timeout=settings.connect_timeout,
        )
    except ValueError as exc:
        raise ConfigError(f"etcd: {exc}") from None


def open_reader(settings: Settings) -> Reader | None:
    """A synchronous reader of the store the settings name, or None when it has none
    (then the store's own snapshot is read on an event loop)."""
    kind = settings.store_kind
    if kind in ("file", "env"):
        store = open_store(settings)
        assert isinstance(store, Reader)
        return store
    if kind != "etcd":
        return None
    from confpy.stores.etcd_gateway import GatewayReader

    try:
        return GatewayReader(
            settings.endpoints(),
            client_cert=settings.client_cert,
            client_key=settings.client_key,
            ca_cert=settings.client_ca_keys,
            username=settings.username,
            password=settings.password,
            connect_timeout=settings.connect_timeout,
        )
    except ValueError as exc:
        raise ConfigError(f"etcd: {exc}") from None
