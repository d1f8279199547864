"""The scenarios of tests/support/calico_data.py, and broken keys, on both BIRD template sets.

Each scenario (a feature of the spec, or odd data) is rendered through the real
resources of ``conf.d/`` (BIRD 1.6) and of ``bird2/`` (BIRD 2); each set's files must
contain the statements its table names and none of those it rules out, and its own
BIRD must parse them (``bird``/``bird6`` on the BIRD 1.6 set in the stock flavour,
BIRD 2's ``bird`` on the BIRD 2 set).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from confpy.errors import RenderError
from tests.support.birdset import BIRD2, BIRD16, SETS, BirdSet, TemplateSet, assert_parses
from tests.support.calico_data import B4, B6, SCENARIOS, G, unmet, with_keys
from tests.support.set_params import checked_sets

pytestmark = pytest.mark.usefixtures("calico_env")

Expectations = dict[str, tuple[dict[str, list[str]], dict[str, list[str]]]]


# name -> ({file: [statements it must contain]}, {file: [statements it must not]})
EXPECTED_16: Expectations = {
    "router id from CALICO_ROUTER_ID": (
        {"bird.cfg": ["router id 192.0.2.7 ;"], "bird6.cfg": ["router id 192.0.2.7 ;"]},
        {},
    ),
    "router id hash": (
        {"bird.cfg": ["router id 202.18.243.27 ;"], "bird6.cfg": ["router id 202.18.243.27 ;"]},
        {},
    ),
    "log level debug, listen port": (
        {
            "bird.cfg": [
                "debug all ;",
                "listen bgp port 1790 ;",
                "neighbor 172.29.141.96 port 1791 as 64512 ;",
            ]
        },
        {"bird.cfg": ["debug { states } ;"]},
    ),
    "log level none": (
        {},
        {"bird.cfg": ["debug { states } ;", "debug all ;"]},
    ),
    "mesh disabled": (
        {"bird.cfg": ["protocol bgp Global_172_29_141_1 from bgp_template {"]},
        {
            "bird.cfg": ["protocol bgp Mesh_172_29_141_96 from bgp_template {"],
            "bird6.cfg": ["protocol bgp Mesh_fd00_29_141__96 from bgp_template {"],
        },
    ),
    "route reflector: IPv4 keeps the mesh, IPv6 drops it": (
        {
            "bird.cfg": [
                "protocol bgp Mesh_172_29_141_96 from bgp_template {",
                "rr client ;",
                "rr cluster id 10.0.0.1 ;",
            ],
            "bird6.cfg": ["protocol bgp Node_fd00_29_141__253 from bgp_template {"],
        },
        {"bird6.cfg": ["protocol bgp Mesh_fd00_29_141__96 from bgp_template {", "rr client ;"]},
    ),
    "peers with every field": (
        {
            "bird.cfg": [
                "protocol bgp Global_10_192_0_4_port_166 from bgp_template {",
                "neighbor 10.192.0.4 port 166 as 64533 ;",
                "graceful restart time 120 ;",
                'password "s3cr#t /*x*/" ;',
                "next hop keep ;",
            ],
            "bird6.cfg": [
                "protocol bgp Global_ac13__57_port_50 from bgp_template {",
                "neighbor ac13::57 port 50 as 4200000000 ;",
            ],
        },
        {"bird.cfg": ["protocol bgp Node_172_29_141_95 from bgp_template {"]},
    ),
    "prefix advertisements: node list replaces the global one": (
        {
            "bird.cfg": [
                "if ( net ~ 192.168.0.0/16 ) then {",
                "bgp_community.add ( ( 65000 , 100 ) ) ;",
                "bgp_large_community.add ( ( 65000 , 1 , 2 ) ) ;",
            ],
            "bird6.cfg": ["if ( net ~ fd00:10::/48 ) then {", "bgp_community.add ( ( 7 , 7 ) ) ;"],
        },
        {"bird.cfg": ["if ( net ~ 10.0.0.0/8 ) then {"]},
    ),
    "pools: IPIP cross-subnet, off, VXLAN": (
        {
            "bird_ipam.cfg": [
                'if defined ( bgp_next_hop ) && ( bgp_next_hop ~ 172.29.141.0/24 ) then krt_tunnel = "" ;',
                'else krt_tunnel = "tunl0" ;',
                'krt_tunnel = "" ;',
                "reject ;",
                "if ( net ~ 10.50.0.0/16 ) then {",
            ]
        },
        {},
    ),
    "no network_v4: no per-pool kernel rules": (
        {},
        {"bird_ipam.cfg": ['krt_tunnel = "tunl0" ;']},
    ),
    "blocks: states, /32 and /128": (
        {
            "bird_aggr.cfg": [
                "route 192.168.221.64/26 blackhole ;",
                "route 192.168.221.192/26 blackhole ;",
                "if ( net = 10.2.0.1/32 ) then {",
            ],
            "bird6_aggr.cfg": ["if ( net = fd00:10::9/128 ) then {"],
        },
        {
            "bird_aggr.cfg": [
                "route 10.2.0.1/32 blackhole ;",
                "if ( net = 192.168.221.64/26 ) then {",
                "if ( net = 192.168.221.192/26 ) then {",
            ],
            "bird6_aggr.cfg": ["route fd00:10::9/128 blackhole ;"],
        },
    ),
    "no blocks, no pools": (
        {"bird_aggr.cfg": ["function calico_aggr ( ) {"]},
        {"bird_aggr.cfg": ["protocol static {"], "bird_ipam.cfg": ["if ( net ~ 192.168.0.0/16 ) then {"]},
    ),
    "static routes and reject CIDRs": (
        {
            "bird_aggr.cfg": ["route 10.96.0.0/12 blackhole ;"],
            "bird6_aggr.cfg": ["route fd00:96::/108 blackhole ;"],
            "bird_ipam.cfg": ["if ( net ~ 10.96.0.0/12 ) then {", "if ( net ~ 10.100.0.0/16 ) then {"],
            "bird6_ipam.cfg": ["if ( net ~ fd00:96::/108 ) then {", "if ( net ~ fd00:100::/64 ) then {"],
        },
        {},
    ),
    "IPv4-only node": (
        {"bird6.cfg": ["router id 172.29.141.95 ;"]},
        {"bird6.cfg": ["template bgp bgp_template {"]},
    ),
    "IPv6-only node with CALICO_ROUTER_ID": (
        {"bird6.cfg": ["protocol bgp Mesh_fd00_29_141__96 from bgp_template {"]},
        {"bird.cfg": ["template bgp bgp_template {"]},
    ),
    "other nodes without IPv6": (
        {"bird6.cfg": ["protocol bgp Mesh_fd00_29_141__98 from bgp_template {"]},
        {
            "bird6.cfg": [
                "protocol bgp Mesh_fd00_29_141__96 from bgp_template {",
                "protocol bgp Mesh_fd00_29_141__97 from bgp_template {",
            ]
        },
    ),
}


EXPECTED_2: Expectations = {
    "router id from CALICO_ROUTER_ID": ({"bird.cfg": ["router id 192.0.2.7 ;"]}, {}),
    "router id hash": ({"bird.cfg": ["router id 202.18.243.27 ;"]}, {}),
    "log level debug, listen port": (
        {
            "bird.cfg": [
                "debug all ;",
                "local 172.29.141.95 port 1790 as 64512 ;",
                "neighbor 172.29.141.96 port 1791 as 64512 ;",
                "local fd00:29:141::95 port 1790 as 64512 ;",
            ]
        },
        {"bird.cfg": ["debug { states } ;", "listen bgp port 1790 ;"]},
    ),
    "log level none": ({}, {"bird.cfg": ["debug { states } ;", "debug all ;"]}),
    "mesh disabled": (
        {"bird.cfg": ["protocol bgp Global_172_29_141_1 from bgp_template_v4 {"]},
        {
            "bird.cfg": [
                "protocol bgp Mesh_172_29_141_96 from bgp_template_v4 {",
                "protocol bgp Mesh_fd00_29_141__96 from bgp_template_v6 {",
            ]
        },
    ),
    "route reflector: IPv4 keeps the mesh, IPv6 drops it": (
        {
            "bird.cfg": [
                "protocol bgp Mesh_172_29_141_96 from bgp_template_v4 {",
                "rr client ;",
                "rr cluster id 10.0.0.1 ;",
                "protocol bgp Node_fd00_29_141__253 from bgp_template_v6 {",
            ]
        },
        {"bird.cfg": ["protocol bgp Mesh_fd00_29_141__96 from bgp_template_v6 {"]},
    ),
    "peers with every field": (
        {
            "bird.cfg": [
                "protocol bgp Global_10_192_0_4_port_166 from bgp_template_v4 {",
                "local as 64512 ;",
                "neighbor 10.192.0.4 port 166 as 64533 ;",
                "graceful restart time 120 ;",
                'password "s3cr#t /*x*/" ;',
                "next hop keep ;",
                "protocol bgp Global_ac13__57_port_50 from bgp_template_v6 {",
                "neighbor ac13::57 port 50 as 4200000000 ;",
            ]
        },
        {"bird.cfg": ["protocol bgp Node_172_29_141_95 from bgp_template_v4 {"]},
    ),
    "prefix advertisements: node list replaces the global one": (
        {
            "bird.cfg": [
                "function apply_communities_v4 ( ) {",
                "if ( net ~ 192.168.0.0/16 ) then {",
                "bgp_community.add ( ( 65000 , 100 ) ) ;",
                "bgp_large_community.add ( ( 65000 , 1 , 2 ) ) ;",
                "function apply_communities_v6 ( ) {",
                "if ( net ~ fd00:10::/48 ) then {",
                "bgp_community.add ( ( 7 , 7 ) ) ;",
            ]
        },
        {"bird.cfg": ["if ( net ~ 10.0.0.0/8 ) then {"]},
    ),
    "pools: IPIP cross-subnet, off, VXLAN": (
        {
            "bird_ipam.cfg": [
                "if defined ( bgp_next_hop ) && ! ( bgp_next_hop ~ 172.29.141.0/24 ) then {",
                'ifname = "tunl0" ;',
                "if ( net ~ 10.50.0.0/16 ) then {",
                "reject ;",
            ]
        },
        {"bird_ipam.cfg": ['krt_tunnel = "tunl0" ;']},
    ),
    "no network_v4: no per-pool kernel rules": ({}, {"bird_ipam.cfg": ['ifname = "tunl0" ;']}),
    "blocks: states, /32 and /128": (
        {
            "bird_aggr.cfg": [
                "route 192.168.221.64/26 blackhole ;",
                "route 192.168.221.192/26 blackhole ;",
                "if ( net = 10.2.0.1/32 ) then {",
                "if ( net = fd00:10::9/128 ) then {",
            ]
        },
        {
            "bird_aggr.cfg": [
                "route 10.2.0.1/32 blackhole ;",
                "if ( net = 192.168.221.64/26 ) then {",
                "if ( net = 192.168.221.192/26 ) then {",
                "route fd00:10::9/128 blackhole ;",
            ]
        },
    ),
    "no blocks, no pools": (
        {"bird_aggr.cfg": ["function calico_aggr_v4 ( ) {", "function calico_aggr_v6 ( ) {"]},
        {
            "bird_aggr.cfg": ["protocol static static_v4 {", "protocol static static_v6 {"],
            "bird_ipam.cfg": ["if ( net ~ 192.168.0.0/16 ) then {", "if ( net ~ fd00:10::/48 ) then {"],
        },
    ),
    "static routes and reject CIDRs": (
        {
            "bird_aggr.cfg": ["route 10.96.0.0/12 blackhole ;", "route fd00:96::/108 blackhole ;"],
            "bird_ipam.cfg": [
                "if ( net ~ 10.96.0.0/12 ) then {",
                "if ( net ~ 10.100.0.0/16 ) then {",
                "if ( net ~ fd00:96::/108 ) then {",
                "if ( net ~ fd00:100::/64 ) then {",
            ],
        },
        {},
    ),
    "IPv4-only node": (
        {"bird.cfg": ["router id 172.29.141.95 ;", "template bgp bgp_template_v4 {"]},
        {"bird.cfg": ["template bgp bgp_template_v6 {"]},
    ),
    "IPv6-only node with CALICO_ROUTER_ID": (
        {"bird.cfg": ["protocol bgp Mesh_fd00_29_141__96 from bgp_template_v6 {"]},
        {"bird.cfg": ["template bgp bgp_template_v4 {"]},
    ),
    "other nodes without IPv6": (
        {"bird.cfg": ["protocol bgp Mesh_fd00_29_141__98 from bgp_template_v6 {"]},
        {
            "bird.cfg": [
                "protocol bgp Mesh_fd00_29_141__96 from bgp_template_v6 {",
                "protocol bgp Mesh_fd00_29_141__97 from bgp_template_v6 {",
            ]
        },
    ),
}


EXPECTED = {BIRD16: EXPECTED_16, BIRD2: EXPECTED_2}
SET_PARAMS = [pytest.param(t, id=str(t)) for t in SETS]


@pytest.mark.parametrize("tset", SET_PARAMS)
def test_every_scenario_has_expectations(tset: TemplateSet) -> None:
    assert list(EXPECTED[tset]) == list(SCENARIOS)


def render(tset: TemplateSet, name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    keys, env = SCENARIOS[name]
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    return BirdSet(tset.confdir, "node1").render(keys)


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("tset", SET_PARAMS)
def test_scenario(tset: TemplateSet, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = unmet(render(tset, name, monkeypatch), *EXPECTED[tset][name])
    assert not problems, "\n".join(problems)


@pytest.mark.bird
@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("tset", checked_sets())
def test_scenario_parses(
    tset: TemplateSet, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIRD_FLAVOR", "stock")  # Debian's BIRD 1.6; BIRD 2 reads no flavour
    assert_parses(render(tset, name, monkeypatch), tset, tmp_path)


@pytest.mark.parametrize(
    ("tset", "family", "broken"),
    [
        pytest.param(BIRD16, 4, {"bird.cfg", "bird_aggr.cfg"}, id="bird1.6-v4"),
        pytest.param(BIRD16, 6, {"bird6.cfg", "bird6_aggr.cfg"}, id="bird1.6-v6"),
        pytest.param(BIRD2, 4, {"bird.cfg", "bird_aggr.cfg"}, id="bird2-v4"),
        pytest.param(BIRD2, 6, {"bird.cfg", "bird_aggr.cfg"}, id="bird2-v6"),
    ],
)
def test_each_resource_reads_only_its_keys(tset: TemplateSet, family: int, broken: set[str]) -> None:
    """A broken key breaks only the files that read it: a bad peer the main file, a bad
    block the aggregates; every other file renders."""
    keys = with_keys({f"{G}/peer_v{family}/x": "{", f"{B4 if family == 4 else B6}/bad": ""})
    birdset = BirdSet(tset.confdir, "node1")
    for name, (resource, view) in birdset.views(keys).items():
        if name in broken:
            with pytest.raises(RenderError, match="key /calico/"):
                birdset.renderer.render(resource.src, view, "node1")
        else:
            birdset.renderer.render(resource.src, view, "node1")
