"""The BIRD 2 context: one daemon, both families, the decisions of the 1.6 set's code."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from confpy.calico.bird2 import Bird2Context, KernelRule, build_bird2_context
from confpy.calico.context import SettingError
from confpy.errors import DataError
from confpy.funcs import hash_to_ipv4
from confpy.keyview import KeyView

H = "/calico/bgp/v1/host"
NODE1 = {
    f"{H}/node1/ip_addr_v4": "10.0.0.5",
    f"{H}/node1/ip_addr_v6": "fd00::5",
    f"{H}/node1/network_v4": "10.0.0.0/24",
    f"{H}/node2/ip_addr_v4": "10.0.0.10",
    f"{H}/node2/ip_addr_v6": "fd00::10",
}


def ctx(keys: Mapping[str, str], node: str = "node1", **env: str) -> Bird2Context:
    return build_bird2_context(KeyView("", keys), node, environ=env)


def pool_key(cidr: str, **fields: str) -> dict[str, str]:
    version = 6 if ":" in cidr else 4
    return {f"/calico/v1/ipam/v{version}/pool/{cidr.replace('/', '-')}": json.dumps({"cidr": cidr, **fields})}


def test_one_context_per_family_in_order_with_their_channels_and_names() -> None:
    c = ctx(NODE1)
    assert [(f.version, f.channel, f.tag) for f in c.families] == [(4, "ipv4", "_v4"), (6, "ipv6", "_v6")]
    assert [f.address for f in c.families] == ["10.0.0.5", "fd00::5"]
    assert [[s.name for s in f.mesh] for f in c.families] == [["Mesh_10_0_0_10"], ["Mesh_fd00__10"]]


def test_router_id_is_one_for_the_daemon() -> None:
    """CALICO_ROUTER_ID, else the node's IPv4 address: an IPv6-only node needs the setting."""
    assert ctx(NODE1).router_id == "10.0.0.5"
    assert ctx(NODE1, CALICO_ROUTER_ID="hash").router_id == hash_to_ipv4("node1")
    v6_only = {**NODE1, f"{H}/node1/ip_addr_v4": ""}
    with pytest.raises(DataError, match="CALICO_ROUTER_ID is not set"):
        _ = ctx(v6_only).router_id
    assert ctx(v6_only, CALICO_ROUTER_ID="192.0.2.1").router_id == "192.0.2.1"
    with pytest.raises(SettingError, match="CALICO_ROUTER_ID"):
        _ = ctx(NODE1, CALICO_ROUTER_ID="10.0.0.1; x").router_id


def test_node_name_is_checked() -> None:
    with pytest.raises(DataError, match="node"):
        _ = ctx(NODE1, node="node1; protocol").node


def test_kernel_rules_per_pool_kind() -> None:
    keys = {
        **NODE1,
        **pool_key("192.168.0.0/16", ipip="tunl0", ipip_mode="always"),
        **pool_key("10.40.0.0/16", ipip="tunl0", ipip_mode="cross-subnet"),
        **pool_key("10.50.0.0/16", ipip="", ipip_mode="always"),
        **pool_key("10.60.0.0/16", vxlan_mode="always", ipip="tunl0"),
        **pool_key("fd00:10::/48", ipip=""),
    }
    v4, v6 = ctx(keys).families
    assert v4.kernel_rules == [
        KernelRule("10.40.0.0/16", "tunnel", '"tunl0"', outside="10.0.0.0/24"),
        KernelRule("10.50.0.0/16", "accept"),
        KernelRule("10.60.0.0/16", "reject"),
        KernelRule("192.168.0.0/16", "tunnel", '"tunl0"'),
    ]
    assert v6.kernel_rules == []  # no IPIP for IPv6, as in the 1.6 set


def test_no_kernel_rules_without_the_node_subnet() -> None:
    keys = {k: v for k, v in NODE1.items() if not k.endswith("network_v4")}
    keys.update(pool_key("192.168.0.0/16", ipip="tunl0"))
    assert ctx(keys).families[0].kernel_rules == []
