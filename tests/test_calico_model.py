"""The Calico data model: parsing, defaults and every decision of the templates, in Python."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from confpy import validate
from confpy.calico.context import BirdContext, build_context
from confpy.calico.flavor import SettingError
from confpy.calico.model import FAMILIES, parse_advertisements, parse_block, parse_peer, parse_pool
from confpy.errors import DataError
from confpy.funcs import hash_to_ipv4
from confpy.keyview import KeyView, StoreValue

G = "/calico/bgp/v1/global"
H = "/calico/bgp/v1/host"


def ctx(keys: Mapping[str, str], family: int = 4, node: str = "node1", **env: str) -> BirdContext:
    return build_context(KeyView("", keys), node, family, environ=env)


def sv(value: object, key: str = "/k") -> StoreValue:
    return StoreValue(value if isinstance(value, str) else json.dumps(value), key)


def base(**extra: str) -> dict[str, str]:
    keys = {
        f"{H}/node1/ip_addr_v4": "10.0.0.5",
        f"{H}/node1/ip_addr_v6": "fd00::5",
        f"{H}/node2/ip_addr_v4": "10.0.0.10",
        f"{H}/node2/ip_addr_v6": "fd00::10",
    }
    keys.update(extra)
    return keys


# --- validators ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "good", "expected"),
    [
        (validate.port, "179", 179),
        (validate.port, 65535, 65535),
        (validate.community, "65000:100", (65000, 100)),
        (validate.community, "4294967295:0:1", (4294967295, 0, 1)),
        (validate.cluster_id, "10.0.0.1", "10.0.0.1"),
        (validate.log_level, "debug", "debug"),
        (validate.log_level, "none", "none"),
        (validate.log_level, "warning", "info"),  # Calico: any other word means "states"
        (validate.interface_name, "tunl0", "tunl0"),
        (validate.node_name, "kube-node-1.example.com", "kube-node-1.example.com"),
        (validate.bird_string, "s3cr#t /* x */ ü", '"s3cr#t /* x */ ü"'),
    ],
)
def test_validators_accept(check: object, good: object, expected: object) -> None:
    assert check(good) == expected  # type: ignore[operator]


@pytest.mark.parametrize(
    ("check", "bad"),
    [
        (validate.port, "0"),
        (validate.port, "65536"),
        (validate.port, True),
        (validate.port, "1e3"),
        (validate.port, "١٧٩"),  # Arabic-Indic digits: isdigit() but not ASCII
        (validate.community, "65536:1"),
        (validate.community, "1:2:3:4"),
        (validate.community, "1:-2"),
        (validate.community, " 1:2"),
        (validate.cluster_id, "1"),
        (validate.log_level, "debug; protocol"),
        (validate.interface_name, 'tunl0"; }'),
        (validate.interface_name, "a" * 16),
        (validate.node_name, "node1\nprotocol"),
        (validate.node_name, "-x"),
        (validate.node_name, "a/b"),
        (validate.bird_string, 'a"b'),
        (validate.bird_string, "a\\"),
        (validate.bird_string, "a\nb"),
        (validate.bird_string, "a\x00b"),
        (validate.bird_string, "a\u202eb"),  # bidi override
        (validate.bird_string, "bad\udcff"),  # a non-UTF-8 byte, surrogate-escaped
        (validate.ipv6, "fe80::1%eth0"),  # scope ids are free text
        (validate.ipv6, "2001:db8::1%x; protocol kernel { }"),
        (validate.ip, "2001:db8::1%x"),
        (validate.cidr, "fd00::%x;y/64"),
    ],
)
def test_validators_refuse(check: object, bad: object) -> None:
    with pytest.raises(ValueError):
        check(bad)  # type: ignore[operator]


def test_bird_string_length_limit() -> None:
    assert validate.bird_string("x" * 80, 80) == '"' + "x" * 80 + '"'
    with pytest.raises(ValueError, match="longer than 80 bytes"):
        validate.bird_string("é" * 41, 80)


# --- peers -------------------------------------------------------------------------


def test_2017_peer_gets_the_defaults() -> None:
    peer = parse_peer(sv({"ip": "172.29.141.1", "as_num": "64513"}), FAMILIES[4])
    assert (peer.ip, peer.as_num, peer.rr_cluster_id, peer.password) == ("172.29.141.1", 64513, "", None)
    assert (peer.use_node_ip, peer.port, peer.keep_next_hop, peer.restart_time) == (True, None, False, None)
    assert peer.protocol_id == "172_29_141_1"


def test_current_peer_fields() -> None:
    value = {
        "ip": "ac13::57",
        "as_num": 4200000000,
        "rr_cluster_id": "10.0.0.1",
        "password": "s3cret",
        "source_addr": "None",
        "port": 50,
        "keep_next_hop": True,
        "restart_time": "120",
    }
    peer = parse_peer(sv(value), FAMILIES[6])
    assert peer.as_num == 4200000000
    assert peer.password == '"s3cret"'
    assert not peer.use_node_ip
    assert (peer.port, peer.keep_next_hop, peer.restart_time) == (50, True, 120)
    assert peer.protocol_id == "ac13__57_port_50"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"ip": "10.0.0.1", "as_num": "abc"}, "as_num 'abc' is not an AS number"),
        ({"ip": "10.0.0.1"}, "as_num is missing"),
        ({"as_num": "1"}, "ip is missing"),
        ({"ip": "fd00::1", "as_num": "1"}, "ip 'fd00::1' is not an IPv4 address"),
        ({"ip": "0.0.0.0", "as_num": "1"}, "unspecified"),
        ({"ip": "10.0.0.1", "as_num": "1", "port": 70000}, "port '70000' is not a TCP port"),
        ({"ip": "10.0.0.1", "as_num": "1", "source_addr": "Elsewhere"}, "source_addr 'Elsewhere'"),
        ({"ip": "10.0.0.1", "as_num": "1", "keep_next_hop": "yes"}, "keep_next_hop 'yes'"),
        ({"ip": "10.0.0.1", "as_num": "1", "restart_time": "5000"}, "restart_time '5000'"),
        ({"ip": "10.0.0.1", "as_num": "1", "rr_cluster_id": "x"}, "rr_cluster_id 'x'"),
        ({"ip": "10.0.0.1", "as_num": "1", "password": 'x"; }'}, "password"),
        ({"ip": "10.0.0.1", "as_num": "1", "password": 7}, "password 7 is not a string"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_peer_names_key_and_field(value: object, message: str) -> None:
    key = f"{G}/peer_v4/10.0.0.1"
    with pytest.raises(DataError) as err:
        parse_peer(sv(value, key), FAMILIES[4])
    assert str(err.value).startswith(f"key {key}: ")
    assert message in str(err.value)


def test_ipv6_link_local_peer_is_refused() -> None:
    with pytest.raises(DataError, match="link-local"):
        parse_peer(sv({"ip": "fe80::1", "as_num": "1"}), FAMILIES[6])


def test_invalid_and_deeply_nested_json() -> None:
    for raw in ("{", "[" * 100000):
        with pytest.raises(DataError, match="invalid JSON"):
            parse_peer(sv(raw), FAMILIES[4])


# --- pools, blocks, advertisements ---------------------------------------------------


def test_2017_pool() -> None:
    raw = '{"cidr":"192.168.0.0/16","ipip":"tunl0","masquerade":true,"ipam":true,"disabled":false}'
    pool = parse_pool(sv(raw), FAMILIES[4])
    assert (pool.cidr, pool.tunnel, pool.kernel_action) == ("192.168.0.0/16", '"tunl0"', "tunnel")


@pytest.mark.parametrize(
    ("fields", "action", "tunnel"),
    [
        ({"ipip": "tunl0", "ipip_mode": "always"}, "tunnel", '"tunl0"'),
        ({"ipip": "tunl0", "ipip_mode": "cross-subnet"}, "cross-subnet", '"tunl0"'),
        ({"ipip": "", "ipip_mode": ""}, "tunnel", '""'),
        ({"ipip": "tunl0", "vxlan_mode": "always"}, "reject", '"tunl0"'),
        ({"vxlan_mode": "cross-subnet"}, "reject", '""'),
    ],
)
def test_pool_modes(fields: dict[str, str], action: str, tunnel: str) -> None:
    pool = parse_pool(sv({"cidr": "10.1.0.0/16", **fields}), FAMILIES[4])
    assert (pool.kernel_action, pool.tunnel) == (action, tunnel)


@pytest.mark.parametrize(
    "fields",
    [{"cidr": "10.1.0.1/16"}, {"cidr": "fd00::/48"}, {"cidr": "10.1.0.0/16", "ipip_mode": "sometimes"},
     {"cidr": "10.1.0.0/16", "ipip": "tunl0\"; }"}, {}],
)  # fmt: skip
def test_bad_pool(fields: dict[str, str]) -> None:
    with pytest.raises(DataError, match=r"^key /pool: "):
        parse_pool(sv(fields, "/pool"), FAMILIES[4])


@pytest.mark.parametrize(
    ("raw", "confirmed"),
    [("", True), ("{}", True), ('{"state":"confirmed","deleted":false}', True), ('{"state":""}', True),
     ('{"state":"pending"}', False), ('{"state":"pendingDeletion"}', False)],
)  # fmt: skip
def test_block_states(raw: str, confirmed: bool) -> None:
    base_key = "/calico/ipam/v2/host/node1/ipv4/block"
    block = parse_block(sv(raw, f"{base_key}/192.168.0.0-26"), base_key, FAMILIES[4])
    assert (block.cidr, block.confirmed) == ("192.168.0.0/26", confirmed)


@pytest.mark.parametrize("name", ["192.168.0.0", "192.168.0.0-33", "192.168.0.1-26", "x-26", "fd00::-64"])
def test_bad_block_key(name: str) -> None:
    base_key = "/calico/ipam/v2/host/node1/ipv4/block"
    with pytest.raises(DataError, match=f"^key {base_key}/"):
        parse_block(sv("", f"{base_key}/{name}"), base_key, FAMILIES[4])


def test_advertisements() -> None:
    raw = [{"cidr": "192.168.0.0/16", "communities": ["65000:100", "65000:1:2"]}, {"cidr": "10.0.0.0/8"}]
    ads = parse_advertisements(sv(raw), FAMILIES[4])
    assert [a.cidr for a in ads] == ["192.168.0.0/16", "10.0.0.0/8"]
    assert [(c.attribute, c.values) for c in ads[0].communities] == [
        ("bgp_community", (65000, 100)),
        ("bgp_large_community", (65000, 1, 2)),
    ]
    with pytest.raises(DataError, match=r"\[0\]\.communities '65000:100000'"):
        parse_advertisements(sv([{"cidr": "10.0.0.0/8", "communities": ["65000:100000"]}]), FAMILIES[4])


# --- global defaults, AS, log level, router id ---------------------------------------


def test_global_defaults() -> None:
    c = ctx(base())
    assert (c.global_as, c.mesh_enabled, c.local_as, c.debug, c.listen_port) == (
        64512, True, 64512, "debug { states };", None
    )  # fmt: skip
    assert c.rr_cluster_id == ""


def test_node_overrides_global() -> None:
    c = ctx(base(**{
        f"{G}/as_num": "65000", f"{H}/node1/as_num": "65001", f"{G}/loglevel": "none",
        f"{H}/node1/loglevel": "debug", f"{G}/listen_port": "1790", f"{H}/node1/listen_port": "1791",
    }))  # fmt: skip
    assert (c.global_as, c.local_as, c.debug, c.listen_port) == (65000, 65001, "debug all;", 1791)


@pytest.mark.parametrize(
    ("level", "line"), [("debug", "debug all;"), ("none", ""), ("info", "debug { states };")]
)
def test_log_levels(level: str, line: str) -> None:
    assert ctx(base(**{f"{G}/loglevel": level})).debug == line


def test_router_id_rules() -> None:
    assert ctx(base()).router_id == "10.0.0.5"
    assert ctx(base(), family=6).router_id == "10.0.0.5"  # IPv4 even for bird6
    assert ctx(base(), CALICO_ROUTER_ID="192.0.2.1").router_id == "192.0.2.1"
    assert ctx(base(), CALICO_ROUTER_ID="hash").router_id == hash_to_ipv4("node1")
    assert hash_to_ipv4("node1") == "202.18.243.27"  # sha256sum: ca12f31b...
    with pytest.raises(SettingError, match="environment variable CALICO_ROUTER_ID: 'x;' is not an IPv4"):
        _ = ctx(base(), CALICO_ROUTER_ID="x;").router_id


def test_empty_router_id_is_refused() -> None:
    keys = base(**{f"{H}/node1/ip_addr_v4": ""})
    with pytest.raises(DataError, match=f"^key {H}/node1/ip_addr_v4: missing or empty"):
        _ = ctx(keys).router_id
    assert ctx(keys).address is None  # IPv4 disabled, but the router id is still needed
    assert ctx(keys, family=6, CALICO_ROUTER_ID="10.9.9.9").router_id == "10.9.9.9"


def test_bad_mesh_setting() -> None:
    with pytest.raises(DataError, match="enabled 'yes' is not true or false"):
        _ = ctx(base(**{f"{G}/node_mesh": '{"enabled":"yes"}'})).mesh_enabled


# --- mesh ---------------------------------------------------------------------------


def test_passive_side_is_string_order() -> None:
    keys = base(**{f"{H}/node3/ip_addr_v4": "10.0.0.100", f"{H}/node3/as_num": "65003"})
    mesh = ctx(keys).mesh
    assert [(s.name, s.node, s.as_num, s.passive) for s in mesh] == [
        ("Mesh_10_0_0_10", "node2", 64512, False),  # "10.0.0.10" < "10.0.0.5"
        ("Mesh_10_0_0_100", "node3", 65003, False),
    ]
    # node2's view of the same pair: exactly one side is passive.
    assert [s.passive for s in ctx(keys, node="node2").mesh if s.node == "node1"] == [True]


def test_mesh_skips_self_by_address_and_empty_addresses() -> None:
    keys = base(**{f"{H}/node1-alias/ip_addr_v4": "10.0.0.5", f"{H}/node4/ip_addr_v4": ""})
    c = ctx(keys)
    assert [s.node for s in c.mesh] == ["node2"]
    assert c.nodes_without_address == ["node4"]


def test_mesh_ports_and_duplicates() -> None:
    keys = base(**{f"{G}/listen_port": "1790", f"{H}/node3/ip_addr_v4": "10.0.0.11",
                   f"{H}/node3/listen_port": "1791"})  # fmt: skip
    assert [s.port for s in ctx(keys).mesh] == [1790, 1791]
    keys[f"{H}/node3/ip_addr_v4"] = "10.0.0.10"
    with pytest.raises(
        DataError, match=f"^key {H}/node3/ip_addr_v4: 10.0.0.10 is also the address of node node2"
    ):
        _ = ctx(keys).mesh


def test_mesh_disabled_and_route_reflector_asymmetry() -> None:
    assert ctx(base(**{f"{G}/node_mesh": '{"enabled":false}'})).mesh == []
    rr = base(**{f"{H}/node1/rr_cluster_id": "10.0.0.1"})
    assert [s.node for s in ctx(rr, family=4).mesh] == ["node2"]  # IPv4 keeps the mesh
    assert ctx(rr, family=6).mesh == []  # Calico's bird6 template drops it
    assert ctx(rr, family=6).mesh_note is not None


def test_other_nodes_are_validated_only_where_used() -> None:
    keys = base(**{f"{H}/node2/loglevel": "garbage;", f"{H}/node2/as_num": "x"})
    with pytest.raises(DataError, match=f"^key {H}/node2/as_num: 'x' is not an AS number"):
        _ = ctx(keys).mesh
    del keys[f"{H}/node2/as_num"]
    assert len(ctx(keys).mesh) == 1  # another node's loglevel is never printed here
    bad_name = base(**{f"{H}/bad\nname/ip_addr_v4": "10.0.0.9"})
    with pytest.raises(DataError, match="is not a node name"):
        _ = ctx(bad_name).mesh


# --- peers and route reflection -------------------------------------------------------


def _peer(ip: str, as_num: str, **extra: object) -> str:
    return json.dumps({"ip": ip, "as_num": as_num, **extra})


def test_peer_sessions() -> None:
    keys = base(**{
        f"{H}/node1/rr_cluster_id": "10.0.0.1",
        f"{G}/peer_v4/10.0.0.5": _peer("10.0.0.5", "64512"),  # ourselves: skipped
        f"{G}/peer_v4/10.0.1.1": _peer("10.0.1.1", "64512"),  # same AS, no cluster: reflect
        f"{G}/peer_v4/10.0.1.2": _peer("10.0.1.2", "64512", rr_cluster_id="10.0.0.1"),  # same cluster
        f"{G}/peer_v4/10.0.1.3-166": _peer("10.0.1.3", "65000", port=166, keep_next_hop=True,
                                          password="pw", restart_time="120", source_addr="None"),
        f"{H}/node1/peer_v4/10.0.1.4": _peer("10.0.1.4", "64512", keep_next_hop=True),
    })  # fmt: skip
    c = ctx(keys)
    got = {s.name: s for s in c.global_peers}
    assert list(got) == ["Global_10_0_1_1", "Global_10_0_1_2", "Global_10_0_1_3_port_166"]
    assert got["Global_10_0_1_1"].rr_cluster_id == "10.0.0.1"
    assert got["Global_10_0_1_2"].rr_cluster_id is None
    ebgp = got["Global_10_0_1_3_port_166"]
    assert (ebgp.port, ebgp.keep_next_hop, ebgp.password, ebgp.restart_time, ebgp.source_address) == (
        166, True, '"pw"', 120, None
    )  # fmt: skip
    assert ebgp.rr_cluster_id is None  # never an RR client across ASes
    (node_peer,) = c.node_peers
    assert (node_peer.name, node_peer.keep_next_hop, node_peer.source_address) == (
        "Node_10_0_1_4",
        False,
        "10.0.0.5",
    )


def test_duplicate_peer_names_are_refused() -> None:
    keys = base(**{f"{G}/peer_v4/10.0.1.1": _peer("10.0.1.1", "1"), f"{G}/peer_v4/x": _peer("10.0.1.1", "2")})
    with pytest.raises(
        DataError, match=f"^key {G}/peer_v4/x: peer 10.0.1.1 port default is also configured by"
    ):
        _ = ctx(keys).global_peers


def test_nested_keys_under_peer_dir_are_not_peers() -> None:
    keys = base(**{f"{G}/peer_v4/10.0.1.1/extra": "junk"})
    assert ctx(keys).global_peers == []


# --- ipam and aggr -------------------------------------------------------------------


def test_kernel_rules_need_the_node_subnet() -> None:
    pool = {"/calico/v1/ipam/v4/pool/10.1.0.0-16": json.dumps({"cidr": "10.1.0.0/16", "ipip": "tunl0"})}
    assert ctx(base(**pool)).kernel_pools == []
    with_net = ctx(base(**pool, **{f"{H}/node1/network_v4": "10.0.0.0/24"}))
    assert [p.cidr for p in with_net.kernel_pools] == ["10.1.0.0/16"]
    assert with_net.network == "10.0.0.0/24"


def test_flavor() -> None:
    assert ctx({}, BIRD_FLAVOR="calico").flavor == "calico"
    assert ctx({}, BIRD_FLAVOR="stock").declare_krt_tunnel
    assert not ctx({}, family=6, BIRD_FLAVOR="stock").declare_krt_tunnel
    with pytest.raises(SettingError, match="BIRD_FLAVOR"):
        _ = ctx({}, BIRD_FLAVOR="bird3").flavor


def test_blocks_static_routes_and_rejects() -> None:
    b = "/calico/ipam/v2/host/node1/ipv4/block"
    keys = {
        f"{b}/192.168.221.64-26": '{"state":"confirmed"}',
        f"{b}/192.168.221.192-26": "",
        f"{b}/10.2.0.1-32": "{}",
        f"{b}/192.168.5.0-26": '{"state":"pending"}',
        "/calico/ipam/v2/host/node10/ipv4/block/10.9.0.0-26": "",  # another node's block
        "/calico/staticroutes/10.96.0.0-12": "10.96.0.0/12",
        "/calico/staticroutesv6/fd00:96::-108": "fd00:96::/108",
        "/calico/rejectcidrs/10.100.0.0-16": "10.100.0.0/16",
    }
    c = ctx(keys)
    # Sorted as key strings: .192 before .64; the /32 gets no blackhole.
    assert c.blackholes == ["192.168.221.192/26", "192.168.221.64/26", "192.168.5.0/26", "10.96.0.0/12"]
    assert c.aggregates == ["10.2.0.1/32", "192.168.221.192/26", "192.168.221.64/26"]
    assert c.pending_blocks == ["192.168.5.0/26"]
    assert c.static_routes == ["10.96.0.0/12"]
    assert c.reject_cidrs == ["10.100.0.0/16"]
    assert ctx(keys, family=6).static_routes == ["fd00:96::/108"]


def test_128_blocks_get_no_blackhole() -> None:
    b = "/calico/ipam/v2/host/node1/ipv6/block"
    c = ctx({f"{b}/fd00:10::1-128": "", f"{b}/fd00:10::100-122": ""}, family=6)
    assert c.blackholes == ["fd00:10::100/122"]
    assert c.aggregates == ["fd00:10::1/128", "fd00:10::100/122"]


def test_own_node_name_is_validated() -> None:
    with pytest.raises(DataError, match="is not a node name"):
        _ = ctx({}, node="node1\n}").node


def test_unknown_family() -> None:
    with pytest.raises(ValueError, match="4 or 6"):
        build_context(KeyView("", {}), "node1", 5)


def fake_bird(tmp_path: Path, script: str) -> str:
    """A directory holding an executable ``bird`` that runs ``script``; for PATH."""
    where = tmp_path / script.split()[0].strip("'")
    where.mkdir()
    (where / "bird").write_text(f"#!/bin/sh\n{script}\n")
    (where / "bird").chmod(0o755)
    return str(where)


def test_without_bird_flavor_the_bird_on_path_is_asked_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    calico = fake_bird(tmp_path, "exit 0")
    stock = fake_bird(tmp_path, "echo 'bird: x.conf:2:32 You may set only variables.' >&2; exit 1")
    assert ctx({}, PATH=calico).flavor == "calico"
    assert ctx({}, PATH=stock).flavor == "stock"
    assert ctx({}, PATH=stock).declare_krt_tunnel
    assert ctx({}, PATH=stock, BIRD_FLAVOR="calico").flavor == "calico", "BIRD_FLAVOR overrides"
    assert caplog.text.count("BIRD flavour: stock") == 1, "asked once, logged once"
    assert "has no krt_tunnel attribute" in caplog.text


@pytest.mark.skipif(
    shutil.which("bird", path="/usr/sbin:/usr/bin") is None, reason="Debian's bird not installed"
)
def test_debians_bird_is_stock() -> None:
    assert ctx({}, PATH="/usr/sbin:/usr/bin").flavor == "stock"
