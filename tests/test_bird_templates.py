"""The six BIRD templates: golden files, every feature of the spec, and real BIRD parsing.

Rendering goes through the real conf.d resources (each sees only the keys it reads).
Tests marked ``bird`` run Debian's BIRD 1.6 (``bird -p`` / ``bird6 -p``) on every
rendered set, in the stock flavour, with the includes beside the main file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from confpy.cli import main
from confpy.errors import RenderError
from confpy.stores.file import FileStore
from tests.support.birdset import BIRD16, BirdSet, check_set
from tests.support.calico_data import (
    B4,
    DATA,
    EXAMPLES,
    ROOT,
    SCENARIOS,
    G,
    H,
    cluster_2017,
    example_keys,
    peer,
    statements,
    with_keys,
)

GOLDEN = ROOT / "tests" / "golden" / "node1"
SHARED_SPEC = ROOT.parent / "shared" / "spec"
FILES = BIRD16.files

requires_bird = pytest.mark.skipif(BIRD16.missing() is not None, reason=str(BIRD16.missing()))


@pytest.fixture(autouse=True)
def _calico_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calico's BIRD and no router-id override unless a test says otherwise."""
    for name in ("BIRD_FLAVOR", "CALICO_ROUTER_ID"):
        monkeypatch.delenv(name, raising=False)


def render(keys: Mapping[str, str], node: str = "node1") -> dict[str, str]:
    return BirdSet(ROOT, node).render(keys)


def check_with_bird(files: Mapping[str, str], tmp_path: Path) -> None:
    rejected = check_set(files, BIRD16, tmp_path)
    assert not rejected, "\n".join(rejected)


# --- golden files -------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_golden_node1(name: str) -> None:
    rendered = render(example_keys())[name]
    assert statements(rendered) == statements((GOLDEN / name).read_text())


@pytest.mark.skipif(not SHARED_SPEC.is_dir(), reason="../shared/spec is not there")
def test_project_copies_match_the_shared_spec() -> None:
    assert (DATA / "example-cluster.json").read_bytes() == (SHARED_SPEC / "example-cluster.json").read_bytes()
    rendered = render(json.loads((SHARED_SPEC / "example-cluster.json").read_text())["keys"])
    for name in FILES:
        expected = (SHARED_SPEC / "expected" / "node1" / name).read_text()
        assert (GOLDEN / name).read_text() == expected, f"tests/golden/node1/{name} differs from the spec's"
        assert statements(rendered[name]) == statements(expected), name


def test_example_data_file_holds_the_example_cluster() -> None:
    snapshot = asyncio.run(FileStore([EXAMPLES / "example-cluster.yaml"]).snapshot(["/"]))
    assert snapshot.values == example_keys()


def test_statement_normaliser() -> None:
    text = 'a {  # x\n  b "c # d";  /* e\n f */ g(1,2);\n}\n'
    assert statements(text) == ["a {", 'b "c # d" ;', "g ( 1 , 2 ) ;", "}"]


# --- the example cluster in both flavours -------------------------------------------


def test_default_flavour_targets_calicos_bird() -> None:
    ipam = render(example_keys())["bird_ipam.cfg"]
    assert 'krt_tunnel = "tunl0";' in ipam
    assert "string krt_tunnel;" not in ipam


@pytest.mark.bird
@requires_bird
@pytest.mark.parametrize("node", ["node1", "node2", "node6"])
def test_example_cluster_parses_on_stock_bird(
    node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIRD_FLAVOR", "stock")
    files = render(example_keys(), node)
    assert "string krt_tunnel;" in files["bird_ipam.cfg"]
    assert "string krt_tunnel;" not in files["bird6_ipam.cfg"]
    check_with_bird(files, tmp_path)


# --- every feature of the spec, each set checked by BIRD -----------------------------


# name -> ({file: [statements it must contain]}, {file: [statements it must not]}),
# for each of the scenarios every template set renders (tests/support/calico_data.py).
EXPECTED: dict[str, tuple[dict[str, list[str]], dict[str, list[str]]]] = {
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


def test_every_scenario_has_expectations() -> None:
    assert list(EXPECTED) == list(SCENARIOS)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    keys, env = SCENARIOS[name]
    present, absent = EXPECTED[name]
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    files = render(keys)
    for file, wanted in present.items():
        got = statements(files[file])
        for statement in wanted:
            assert statement in got, f"{file}: {statement!r} missing"
    for file, unwanted in absent.items():
        got = statements(files[file])
        for statement in unwanted:
            assert statement not in got, f"{file}: {statement!r} should not be there"


STATIC_ROUTES = {
    "/calico/staticroutesv6/fd00:96::-108": "fd00:96::/108",
    "/calico/staticroutes/10.96.0.0-12": "10.96.0.0/12",
}


def test_sibling_prefixes_staticroutes_and_staticroutesv6_through_the_file_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``/calico/staticroutes`` must not swallow ``/calico/staticroutesv6``: both routes
    reach their files through the embedded default store, all resources at once."""
    data = tmp_path / "cluster.json"
    data.write_text(json.dumps(with_keys(STATIC_ROUTES)))
    files = BirdSet(ROOT, "node1").render(FileStore([data]))
    assert "route fd00:96::/108 blackhole ;" in statements(files["bird6_aggr.cfg"])
    assert "route 10.96.0.0/12 blackhole ;" in statements(files["bird_aggr.cfg"])

    # As a new user types it: every resource, rendered to standard output.
    argv = ["--stdout", f"-confdir={ROOT}", "-node-name=node1", f"-file={data}", "-config-file=/dev/null"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    bird6_aggr = out.split("bird6_aggr.cfg (bird6_aggr;", 1)[1].split("# ==> ", 1)[0]
    assert "route fd00:96::/108 blackhole;" in bird6_aggr
    assert "No blocks and no static routes" not in bird6_aggr


@pytest.mark.bird
@requires_bird
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_parses_on_stock_bird(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys, env = SCENARIOS[name]
    for var, value in {**env, "BIRD_FLAVOR": "stock"}.items():
        monkeypatch.setenv(var, value)
    check_with_bird(render(keys), tmp_path)


def test_empty_router_id_fails_the_render() -> None:
    keys = with_keys({f"{H}/node1/ip_addr_v4": ""})
    with pytest.raises(RenderError, match=f"key {H}/node1/ip_addr_v4: missing or empty"):
        render(keys)


def test_bad_value_fails_with_the_key() -> None:
    keys = with_keys({f"{G}/peer_v4/10.0.0.1": peer("10.0.0.1", "abc")})
    with pytest.raises(RenderError, match=f"key {G}/peer_v4/10.0.0.1: as_num 'abc' is not an AS number"):
        render(keys)


def test_each_resource_reads_only_its_keys() -> None:
    """A broken key breaks only the files that read it: a bad IPv4 peer breaks
    bird.cfg, a bad IPv4 block bird_aggr.cfg; the others render."""
    keys = with_keys({f"{G}/peer_v4/10.0.0.1": "{", f"{B4}/bad": ""})
    birdset = BirdSet(ROOT, "node1")
    for name, (resource, view) in birdset.views(keys).items():
        if name in ("bird.cfg", "bird_aggr.cfg"):
            with pytest.raises(RenderError, match="key /calico/"):
                birdset.renderer.render(resource.src, view, "node1")
        else:
            birdset.renderer.render(resource.src, view, "node1")


# --- the 2017 data set ----------------------------------------------------------------


def test_2017_data_set_renders() -> None:
    files = render(cluster_2017(), "kube-node-1")
    bird = statements(files["bird.cfg"])
    assert "protocol bgp Global_10_240_0_1 from bgp_template {" in bird
    assert "neighbor 10.240.0.22 as 64515 ;" in bird
    assert "graceful restart time" not in files["bird.cfg"]  # Calico's templates print "<no value>" here
    assert "template bgp bgp_template {" not in statements(files["bird6.cfg"])  # ip_addr_v6 is empty
    aggregates = [s for s in statements(files["bird_aggr.cfg"]) if s.startswith("if ( net = ")]
    assert len(aggregates) == 2  # an empty value and {} both count as confirmed


@pytest.mark.bird
@requires_bird
@pytest.mark.parametrize("node", ["kube-master", "kube-node-1", "kube-node-2"])
def test_2017_data_set_parses_on_stock_bird(
    node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIRD_FLAVOR", "stock")
    check_with_bird(render(cluster_2017(), node), tmp_path)


# --- examples/calico/load-etcd.sh -----------------------------------------------------


def test_load_etcd_script_puts_every_key(tmp_path: Path) -> None:
    """With a stand-in etcdctl that records its arguments (no etcd, no network)."""
    log = tmp_path / "calls"
    fake = tmp_path / "bin" / "etcdctl"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\0" "$ETCDCTL_API" "$@" >> "$FAKE_LOG"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "FAKE_LOG": str(log)}
    subprocess.run([EXAMPLES / "load-etcd.sh"], env=env, check=True, capture_output=True, timeout=60)
    fields = log.read_text().split("\0")[:-1]
    calls = [fields[i : i + 5] for i in range(0, len(fields), 5)]
    assert all(c[:3] == ["3", "put", "--"] for c in calls)
    assert {c[3]: c[4] for c in calls} == example_keys()
