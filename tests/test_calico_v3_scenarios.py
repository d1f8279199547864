"""``-backend calico``: Calico 3 clusters stored in a real etcd, scenario by scenario.

Each directory under ``tests/data/calico-v3/`` holds ``resources.yaml`` (the cluster
as ``calicoctl`` would apply it; stored as Calico's etcdv3 backend stores it, by
:mod:`tests.support.calico_resources`) and ``expected-v1.yaml``: the v1 keys Calico's
own confd computes from those resources, written by hand from the rules of its
calico backend (Calico's test suite was read for the rules, none of it is copied).

For each scenario: the view served by :class:`CalicoStore` is exactly those keys; the
six BIRD files rendered from it are the files rendered from the expected keys (the
templates are statement for statement Calico's for the same keys,
``tests/test_bird_templates.py``), BIRD parses them, and the statements that make the
scenario are there.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from confpy.keys import covers
from confpy.stores.calico import CalicoStore
from confpy.stores.endpoints import Access
from confpy.stores.etcd import EtcdStore
from confpy.stores.file import FileStore
from confpy.stores.memory import MemoryStore
from tests.support.birdset import BIRD16, BirdSet, assert_parses
from tests.support.calico_resources import etcd_keys
from tests.support.etcd_server import EtcdServer

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "data" / "calico-v3"
AFFINITIES = "/calico/ipam/v2/host"
_SBIN = "/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"
HAVE_BIRD = all(shutil.which(b, path=_SBIN) for b in ("bird", "bird6"))  # tests/run installs them

# scenario -> node -> file -> statements (one per line, as rendered) the file must hold;
# a line starting with "!" must not be there.
EXPECT: dict[str, dict[str, dict[str, list[str]]]] = {
    "mesh-ipip-always": {
        "node1": {
            "bird.cfg": ["protocol bgp Mesh_10_10_0_12 from bgp_template {", "neighbor 10.10.0.12 as 64513;",
                         "neighbor 10.10.0.13 as 64512;", "passive on;", "debug { states };"],
            "bird_ipam.cfg": ['krt_tunnel = "tunl0";', "if ( net ~ 192.168.0.0/16 ) then {"],
            "bird_aggr.cfg": ["route 192.168.10.0/26 blackhole;", "if ( net = 192.168.10.0/26 ) then { accept; }"],
            "bird6.cfg": ["neighbor fd00:10::12 as 64513;", "# node3 has no IPv6 address."],
            "bird6_aggr.cfg": ["route fd00:aa:0:1::/122 blackhole;"],
        },
    },
    "mesh-ipip-cross-subnet": {
        "node1": {
            "bird.cfg": ["neighbor 10.20.1.12 as 64512;", "neighbor 10.20.2.13 as 64512;"],
            "bird_ipam.cfg": ["if defined(bgp_next_hop) && ( bgp_next_hop ~ 10.20.1.0/24 ) then",
                              'krt_tunnel = "tunl0";'],
        },
    },
    "mesh-ipip-off-vxlan": {
        "node1": {
            "bird.cfg": ["debug all;", "neighbor 10.30.0.12 as 64512;"],
            "bird_ipam.cfg": ["if ( net ~ 172.16.0.0/16 ) then {", "if ( net ~ 172.17.0.0/16 ) then {",
                              'krt_tunnel = "";', '!krt_tunnel = "tunl0";', "reject;"],
        },
    },
    "route-reflectors": {
        "node1": {
            "bird.cfg": ["# No mesh: node-to-node mesh disabled.", "protocol bgp Node_10_40_0_1 from bgp_template {",
                         "protocol bgp Node_10_40_0_2 from bgp_template {", "!rr client;"],
        },
        "rr1": {
            "bird.cfg": ["protocol bgp Node_10_40_0_11 from bgp_template {", "rr client;", "rr cluster id 224.0.0.1;",
                         "protocol bgp Node_10_40_0_2 from bgp_template {", "!Node_10_40_0_1 "],
        },
    },
    "global-and-node-peers": {
        "node1": {
            "bird.cfg": ["protocol bgp Global_10_50_0_1 from bgp_template {", "graceful restart time 120;",
                         "next hop keep;", "protocol bgp Node_10_50_0_2_port_1790 from bgp_template {",
                         "neighbor 10.50.0.2 port 1790 as 65002;", "protocol bgp Node_10_50_0_13 from bgp_template {",
                         "!Node_10_50_0_1 ", "!graceful restart time 30;"],
            "bird6.cfg": ["protocol bgp Global_fd00_50__1_port_1790 from bgp_template {",
                          "neighbor fd00:50::1 port 1790 as 65001;", "!source address fd00:50::11;"],
        },
        "node3": {
            "bird.cfg": ["protocol bgp Global_10_50_0_1 from bgp_template {",
                         "protocol bgp Node_10_50_0_11 from bgp_template {", "!Node_10_50_0_12"],
        },
    },
    "selectors": {
        "node1": {"bird.cfg": ["neighbor 10.60.0.1 as 65010;", "neighbor 10.60.0.13 as 65013;"]},
        "node3": {"bird.cfg": ["neighbor 10.60.0.1 as 65010;", "neighbor 10.60.0.11 as 64512;",
                               "neighbor 10.60.0.12 as 64512;", "local as 65013;"]},
    },
    "advertisements-and-ports": {
        "node1": {
            "bird.cfg": ["listen bgp port 1790;", "if ( net ~ 192.168.0.0/16 ) then {",
                         "bgp_community.add((63400, 120));", "bgp_large_community.add((63400, 300, 100));",
                         "neighbor 10.70.0.12 port 1791 as 64512;"],
            "bird6.cfg": ["if ( net ~ fd00:aa::/48 ) then {", "bgp_community.add((63400, 140));"],
        },
        "node2": {
            "bird.cfg": ["listen bgp port 1791;", "debug all;", "if ( net ~ 192.168.2.0/24 ) then {",
                         "bgp_community.add((63400, 100));", "bgp_community.add((63400, 200));",
                         "neighbor 10.70.0.11 port 1790 as 64512;", "!192.168.0.0/16 ) then {"],
            "bird6.cfg": ["!bgp_community"],
        },
    },
    "hash-router-id": {
        "node1": {
            "bird.cfg": ["router id 202.18.243.27;", "# IPv4 is disabled on this node (no address): no BGP sessions."],
            "bird6.cfg": ["router id 202.18.243.27;", "neighbor fd00:80::12 as 64512;"],
        },
    },
    "block-affinities": {
        "node1": {
            "bird_aggr.cfg": ["route 192.168.90.0/26 blackhole;", "route 192.168.90.64/26 blackhole;",
                              "route 192.168.90.128/26 blackhole;", "!route 192.168.90.200/32",
                              "if ( net = 192.168.90.0/26 ) then { accept; }",
                              "if ( net = 192.168.90.200/32 ) then { accept; }",
                              "!if ( net = 192.168.90.64/26 )", "!if ( net = 192.168.90.128/26 )"],
            "bird6_aggr.cfg": ["route fd00:aa:0:90::/122 blackhole;", "!if ( net = fd00:aa:0:90::/122 )"],
        },
    },
}  # fmt: skip
ENVIRONMENT = {"hash-router-id": {"CALICO_ROUTER_ID": "hash"}}
CASES = [(scenario, node) for scenario, nodes in EXPECT.items() for node in nodes]


@pytest.fixture(autouse=True)
def _stock_bird(monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's BIRD checks the files; no router-id override unless a scenario sets one."""
    monkeypatch.setenv("BIRD_FLAVOR", "stock")
    monkeypatch.delenv("CALICO_ROUTER_ID", raising=False)


def load(path: Path) -> dict[str, str]:
    return asyncio.run(FileStore([path]).snapshot(["/"])).values


def expected_for(scenario: str, node: str) -> dict[str, str]:
    """expected-v1.yaml as ``node`` sees it: the cluster's keys and its own affinities."""
    d = SCENARIOS / scenario
    cluster = {k: v for k, v in load(d / "expected-v1.yaml").items() if not covers(AFFINITIES, k)}
    own = {k: v for k, v in etcd_keys(d / "resources.yaml").items() if covers(f"{AFFINITIES}/{node}", k)}
    return cluster | own


@pytest.fixture
def cluster(etcd_calico: EtcdServer, request: pytest.FixtureRequest) -> Iterator[EtcdServer]:
    scenario = request.node.callspec.params["scenario"]
    etcd_calico.txn(etcd_keys(SCENARIOS / scenario / "resources.yaml"))
    yield etcd_calico


def calico_store(server: EtcdServer, node: str) -> CalicoStore:
    return CalicoStore(EtcdStore([server.endpoint], Access(connect_timeout=5)), node)


def test_every_scenario_has_its_files() -> None:
    on_disk = sorted(p.name for p in SCENARIOS.iterdir() if (p / "resources.yaml").exists())
    assert on_disk == sorted(EXPECT)
    assert all((SCENARIOS / s / "expected-v1.yaml").exists() for s in on_disk)


@pytest.mark.parametrize("scenario", sorted(EXPECT))
def test_the_view_is_what_calicos_confd_computes(scenario: str, cluster: EtcdServer) -> None:
    store = calico_store(cluster, "node1")
    view = asyncio.run(store.snapshot(["/calico"]))
    expected = load(SCENARIOS / scenario / "expected-v1.yaml")
    assert {k: v for k, v in view.values.items() if v != expected.get(k)} == {}
    assert sorted(expected.keys() - view.values.keys()) == []


@pytest.mark.parametrize(("scenario", "node"), CASES)
def test_the_six_files_are_those_of_the_v1_keys(
    scenario: str, node: str, cluster: EtcdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRONMENT.get(scenario, {}).items():
        monkeypatch.setenv(name, value)
    birds = BirdSet(ROOT, node)
    files = birds.render(calico_store(cluster, node))
    assert files == birds.render(MemoryStore(expected_for(scenario, node)))
    for name, lines in EXPECT[scenario][node].items():
        assert_statements(files[name], lines, f"{scenario}/{node}/{name}")
    if HAVE_BIRD:
        assert_parses(files, BIRD16, tmp_path)


def assert_statements(text: str, lines: list[str], where: str) -> None:
    # Each line as it is, and without a trailing comment (statements are compared bare).
    rendered = [form for line in text.splitlines() for form in (line.strip(), line.split("#", 1)[0].strip())]
    for line in lines:
        if line.startswith("!"):
            assert not any(line[1:] in r for r in rendered), (
                f"{where}: {line[1:]!r} should not be there:\n{text}"
            )
        else:
            assert line in rendered, f"{where}: no line {line!r}:\n{text}"


def test_the_hash_router_id_of_node1_is_the_first_bytes_of_its_sha256() -> None:
    """The address the hash-router-id scenario expects, computed independently."""
    assert ".".join(str(b) for b in hashlib.sha256(b"node1").digest()[:4]) == "202.18.243.27"
