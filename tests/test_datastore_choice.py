"""Which store the flags open (no connection is made by opening one)."""

from __future__ import annotations

import asyncio

import pytest

from confpy.errors import ConfigError
from confpy.settings import build_settings
from confpy.stores import open_store
from confpy.stores.autodetect import DetectingEtcdStore
from confpy.stores.calico import CalicoStore
from confpy.stores.etcd import EtcdStore
from confpy.stores.etcdv2 import EtcdV2Store


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        ({"nodes": ["http://127.0.0.1:4001"]}, DetectingEtcdStore),  # the seed's: no -backend
        ({"nodes": ["127.0.0.1:2379"], "backend": "etcd"}, EtcdStore),
        ({"nodes": ["127.0.0.1:2379"], "backend": "etcdv3"}, EtcdStore),
        ({"nodes": ["127.0.0.1:2379"], "backend": "etcdv2"}, EtcdV2Store),
        ({"nodes": ["127.0.0.1:2379"], "backend": "calico"}, CalicoStore),
        ({"backend": "etcdv2"}, EtcdV2Store),
        ({"backend": "calico"}, CalicoStore),
    ],
)
def test_the_backend_flag_picks_the_store(flags: dict[str, object], kind: type) -> None:
    settings = build_settings({"config_file": "/dev/null", "node_name": "n1", **flags}, environ={})
    assert settings.nodes, "an etcd backend without -node uses etcd's default endpoint"
    store = open_store(settings)
    assert isinstance(store, kind)
    asyncio.run(store.close())


def test_bad_v2_settings_are_a_config_error() -> None:
    settings = build_settings(
        {"config_file": "/dev/null", "node_name": "n1", "backend": "etcdv2", "nodes": ["ftp://x"]}, environ={}
    )
    with pytest.raises(ConfigError, match="invalid etcd endpoint 'ftp://x'"):
        open_store(settings)
