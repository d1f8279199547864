"""The BIRD 2 set (``bird2/``): one daemon, both families, from the same Calico model.

Rendering goes through the real ``bird2/conf.d`` resources (each sees only the keys it
reads). Tests marked ``bird`` run BIRD 2's own parser (``bird -p`` of Debian's bird2,
unpacked by scripts/bird2-unpack) on every rendered set; where BIRD 2 cannot run they
skip, naming why.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from confpy.errors import RenderError
from tests.support.birdset import BIRD2, BirdSet, assert_parses
from tests.support.calico_data import (
    B4,
    ROOT,
    G,
    H,
    cluster_2017,
    example_keys,
    peer,
    pool,
    statements,
    with_keys,
)

GOLDEN = ROOT / "tests" / "golden" / "bird2" / "node1"

requires_bird2 = pytest.mark.skipif(BIRD2.missing() is not None, reason=str(BIRD2.missing()))
pytestmark = pytest.mark.usefixtures("calico_env")


def render(keys: Mapping[str, str], node: str = "node1") -> dict[str, str]:
    return BirdSet(BIRD2.confdir, node).render(keys)


def block(source: str | list[str], header: str) -> list[str]:
    """The statements of the first block ``header`` opens (one protocol, say), nested
    blocks included; ``source`` is BIRD text or statements (an enclosing block)."""
    got = statements(source) if isinstance(source, str) else source
    assert header in got, f"no {header!r} in {got}"
    start = got.index(header)
    depth = 0
    for i, statement in enumerate(got[start:], start):
        depth += statement.endswith("{") - statement.endswith("}")
        if depth == 0:
            return got[start : i + 1]
    raise AssertionError(f"{header!r} is not closed")


# --- the resources -------------------------------------------------------------------


def test_one_unit_one_check_one_reload() -> None:
    """Three files, one unit: BIRD 2's parser checks the main file with its includes
    staged beside it, then one HUP goes to the one daemon (BIRD 2 has no bird6)."""
    resources = {r.dest.name: r for r in BirdSet(BIRD2.confdir, "node1").resources}
    assert sorted(resources) == ["bird.cfg", "bird_aggr.cfg", "bird_ipam.cfg"]
    assert {r.unit for r in resources.values()} == {"bird"}
    assert {n: r.check_cmd for n, r in resources.items()} == {
        "bird.cfg": "bird -p -c {{.src}}",
        "bird_aggr.cfg": None,
        "bird_ipam.cfg": None,
    }
    assert {(r.reload.signal, r.reload.process) for r in resources.values() if r.reload} == {("HUP", "bird")}
    assert all(r.reload for r in resources.values())
    assert set(resources["bird_aggr.cfg"].keys) == {
        "/calico/ipam/v2/host/node1/ipv4/block",
        "/calico/ipam/v2/host/node1/ipv6/block",
        "/calico/staticroutes",
        "/calico/staticroutesv6",
    }


# --- golden files and the example cluster ---------------------------------------------


@pytest.mark.parametrize("name", BIRD2.files)
def test_golden_node1(name: str) -> None:
    assert statements(render(example_keys())[name]) == statements((GOLDEN / name).read_text())


@pytest.mark.bird
@requires_bird2
def test_golden_files_parse_on_bird2(tmp_path: Path) -> None:
    assert_parses({name: (GOLDEN / name).read_text() for name in BIRD2.files}, BIRD2, tmp_path)


@pytest.mark.bird
@requires_bird2
@pytest.mark.parametrize("node", ["node1", "node2", "node6"])
def test_example_cluster_parses_on_bird2(node: str, tmp_path: Path) -> None:
    assert_parses(render(example_keys(), node), BIRD2, tmp_path)


def test_bird_1_6_syntax_is_gone() -> None:
    """What BIRD 2 no longer parses or has: krt_tunnel, listen bgp, protocol-level
    import/export, bird6 files."""
    files = render(with_keys({f"{H}/node1/listen_port": "1790"}))
    text = "\n".join(statements("\n".join(files.values())))
    for gone in (
        "krt_tunnel",
        "listen bgp",
        "source address",
        "bird6",
        "export filter calico_export_to_bgp_peers ;",
    ):
        assert gone not in text, gone


def test_both_families_in_one_daemon() -> None:
    """Each family has its kernel protocol and BGP template, with its channel and its own filters."""
    bird = render(example_keys())["bird.cfg"]
    for v in (4, 6):
        kernel = block(bird, f"protocol kernel kernel_v{v} {{")
        assert block(kernel, f"ipv{v} {{") == [
            f"ipv{v} {{",
            "import all ;",
            f"export filter calico_kernel_programming_v{v} ;",
            "}",
        ]
        template = block(bird, f"template bgp bgp_template_v{v} {{")
        assert block(template, f"ipv{v} {{") == [
            f"ipv{v} {{",
            "gateway recursive ;",
            "import all ;",
            f"export filter calico_export_to_bgp_peers_v{v} ;",
            "add paths on ;",
            "}",
        ]
    assert {"ipv4 ;", "ipv6 ;"} <= set(block(bird, "protocol direct {"))
    aggr = render(example_keys())["bird_aggr.cfg"]
    assert block(aggr, "protocol static static_v6 {")[1:3] == ["ipv6 ;", "route fd00:10::1:0/122 blackhole ;"]


def test_local_replaces_source_address_and_listen_bgp() -> None:
    """``local [address] [port N] as N``: our address when the session binds to it,
    our listen port when one is set."""
    keys = with_keys(
        {
            f"{H}/node1/listen_port": "1790",
            f"{H}/node2/listen_port": "1791",
            f"{G}/peer_v4/10.192.0.4": peer("10.192.0.4", "64533", source_addr="None"),
        }
    )
    bird = render(keys)["bird.cfg"]
    assert block(bird, "protocol bgp Mesh_172_29_141_96 from bgp_template_v4 {")[1:3] == [
        "local 172.29.141.95 port 1790 as 64512 ;",
        "neighbor 172.29.141.96 port 1791 as 64512 ;",
    ]
    assert block(bird, "protocol bgp Mesh_fd00_29_141__96 from bgp_template_v6 {")[1] == (
        "local fd00:29:141::95 port 1790 as 64512 ;"
    )
    assert (
        block(bird, "protocol bgp Global_10_192_0_4 from bgp_template_v4 {")[1]
        == "local port 1790 as 64512 ;"
    )


def test_next_hop_keep_goes_into_the_channel_of_that_session_only() -> None:
    keys = with_keys(
        {
            f"{G}/peer_v4/10.192.0.4": peer("10.192.0.4", "64533", keep_next_hop=True),
            f"{G}/peer_v6/ac13::57": peer("ac13::57", "64533", keep_next_hop=True),
            f"{G}/peer_v4/10.192.0.5": peer("10.192.0.5", "64512", keep_next_hop=True),  # same AS: no
        }
    )
    bird = render(keys)["bird.cfg"]
    keep = block(bird, "protocol bgp Global_10_192_0_4 from bgp_template_v4 {")
    assert block(keep, "ipv4 {") == ["ipv4 {", "next hop keep ;", "}"]
    assert "next hop keep ;" in block(bird, "protocol bgp Global_ac13__57 from bgp_template_v6 {")
    assert "next hop keep ;" not in block(bird, "protocol bgp Global_10_192_0_5 from bgp_template_v4 {")


POOLS = {
    "/calico/v1/ipam/v4/pool/192.168.0.0-16": pool("192.168.0.0/16", ipip="tunl0", ipip_mode="always"),
    "/calico/v1/ipam/v4/pool/10.40.0.0-16": pool("10.40.0.0/16", ipip="tunl0", ipip_mode="cross-subnet"),
    "/calico/v1/ipam/v4/pool/10.50.0.0-16": pool("10.50.0.0/16", ipip="", ipip_mode=""),
    "/calico/v1/ipam/v4/pool/192.169.0.0-16": pool("192.169.0.0/16", vxlan_mode="always"),
}
TUNNEL = ['ifname = "tunl0" ;', "onlink = true ;", "gw = bgp_next_hop ;", "}", "accept ;", "}"]


def test_ipip_pools_route_through_the_tunnel_device_onlink() -> None:
    """Upstream BIRD has no krt_tunnel: a BGP route of an IPIP pool is made
    ``via <BGP next hop> dev tunl0 onlink`` (ifname, onlink, then gw: gw is looked up
    on the interface already set). Routes without a BGP next hop (our own blackholes)
    are left alone."""
    ipam = block(render(with_keys(POOLS))["bird_ipam.cfg"], "filter calico_kernel_programming_v4 {")
    assert block(ipam, "if ( net ~ 192.168.0.0/16 ) then {")[1:] == [
        "if defined ( bgp_next_hop ) then {",
        *TUNNEL,
    ]
    assert block(ipam, "if ( net ~ 10.40.0.0/16 ) then {")[1:] == [
        "if defined ( bgp_next_hop ) && ! ( bgp_next_hop ~ 172.29.141.0/24 ) then {",
        *TUNNEL,
    ]
    assert block(ipam, "if ( net ~ 10.50.0.0/16 ) then {")[1:] == ["accept ;", "}"]
    assert block(ipam, "if ( net ~ 192.169.0.0/16 ) then {")[1:] == ["reject ;", "}"]
    kernel6 = block(render(with_keys(POOLS))["bird_ipam.cfg"], "filter calico_kernel_programming_v6 {")
    assert kernel6 == [
        "filter calico_kernel_programming_v6 {",
        "if ( source = RTS_DEVICE ) then {",
        "reject ;",
        "}",
        "accept ;",
        "}",
    ]


def test_interface_routes_never_reach_the_kernel() -> None:
    """BIRD 2 exports direct routes to the kernel (BIRD 1.6 did not): both kernel filters reject them first."""
    ipam = render(example_keys())["bird_ipam.cfg"]
    for v in (4, 6):
        assert block(ipam, f"filter calico_kernel_programming_v{v} {{")[1:4] == [
            "if ( source = RTS_DEVICE ) then {",
            "reject ;",
            "}",
        ]


@pytest.mark.bird
@requires_bird2
def test_every_pool_kind_parses_on_bird2(tmp_path: Path) -> None:
    assert_parses(render(with_keys(POOLS)), BIRD2, tmp_path)


def test_empty_router_id_fails_the_render() -> None:
    with pytest.raises(RenderError, match=f"key {H}/node1/ip_addr_v4: missing or empty"):
        render(with_keys({f"{H}/node1/ip_addr_v4": ""}))


def test_pending_block_is_a_blackhole_but_not_aggregated() -> None:
    aggr = render(with_keys({f"{B4}/192.168.221.64-26": '{"state":"pending"}'}))["bird_aggr.cfg"]
    assert "route 192.168.221.64/26 blackhole ;" in block(aggr, "protocol static static_v4 {")
    assert "if ( net = 192.168.221.64/26 ) then {" not in block(aggr, "function calico_aggr_v4 ( ) {")


# --- the 2017 data set ----------------------------------------------------------------


@pytest.mark.bird
@requires_bird2
@pytest.mark.parametrize("node", ["kube-master", "kube-node-1", "kube-node-2"])
def test_2017_data_set_parses_on_bird2(node: str, tmp_path: Path) -> None:
    files = render(cluster_2017(), node)
    assert "template bgp bgp_template_v6 {" not in statements(files["bird.cfg"])  # ip_addr_v6 is empty
    assert_parses(files, BIRD2, tmp_path)
