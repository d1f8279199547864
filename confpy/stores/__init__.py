"""Store clients. Heavy clients (etcd's gRPC stack) are imported only when used.

:func:`open_store` gives the store the daemon follows; :func:`open_reader` a
synchronous reader for one read (a one-shot mode), where the store has one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from confpy.errors import ConfigError
from confpy.stores.base import Reader, Store
from confpy.stores.endpoints import Access
from confpy.stores.etcd_gateway import UseStore

__all__ = ["UseStore", "open_reader", "open_store"]

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
    try:
        return _etcd(settings, kind)
    except ValueError as exc:
        raise ConfigError(f"etcd: {exc}") from None


def _access(settings: Settings) -> Access:
    """How every etcd client reaches etcd."""
    return Access(
        client_cert=settings.client_cert,
        client_key=settings.client_key,
        ca_cert=settings.client_ca_keys,
        username=settings.username,
        password=settings.password,
        connect_timeout=settings.connect_timeout,
    )


def _etcd(settings: Settings, kind: str) -> Store:
    """etcd's v3 API (``etcd``), its v2 API (``etcdv2``), Calico 3 resources in the v3 API
    (``calico``), or, with no -backend at all, v3 unless only v2 has the keys."""
    access = _access(settings)
    from confpy.stores.etcdv2 import EtcdV2Store

    if kind == "etcdv2":
        return EtcdV2Store(settings.endpoints(), access)
    from confpy.stores.etcd import EtcdStore

    v3 = EtcdStore(settings.endpoints(), access)
    if kind == "calico":
        from confpy.stores.calico import CalicoStore

        return CalicoStore(v3, settings.node_name)
    if not settings.backend:
        from confpy.stores.autodetect import DetectingEtcdStore

        return DetectingEtcdStore(v3, EtcdV2Store(settings.endpoints(), access))
    return v3


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
        # With no -backend, an empty v3 read goes to the store, which then asks etcd's v2 API.
        return GatewayReader(settings.endpoints(), _access(settings), detecting=not settings.backend)
    except ValueError as exc:
        raise ConfigError(f"etcd: {exc}") from None
