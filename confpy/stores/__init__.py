"""Store clients. Heavy clients (etcd's gRPC stack) are imported only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confpy.errors import ConfigError
from confpy.stores.base import Store

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
