"""The six BIRD templates: golden files, every feature of the spec, and real BIRD parsing.

Rendering goes through the real conf.d resources (each sees only the keys it reads).
Tests marked ``bird`` run Debian's BIRD 1.6 (``bird -p`` / ``bird6 -p``) on every
rendered set, in the stock flavour, with the includes beside the main file.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from confpy.cli import main
from confpy.errors import RenderError
from confpy.stores.file import FileStore
from tests.support.birdset import BIRD16, BirdSet, assert_parses
from tests.support.calico_data import (
    DATA,
    EXAMPLES,
    ROOT,
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
pytestmark = pytest.mark.usefixtures("calico_env")


def render(keys: Mapping[str, str], node: str = "node1") -> dict[str, str]:
    return BirdSet(ROOT, node).render(keys)


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
    assert_parses(files, BIRD16, tmp_path)


# --- every feature of the spec, each set checked by BIRD -----------------------------


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


def test_empty_router_id_fails_the_render() -> None:
    keys = with_keys({f"{H}/node1/ip_addr_v4": ""})
    with pytest.raises(RenderError, match=f"key {H}/node1/ip_addr_v4: missing or empty"):
        render(keys)


def test_bad_value_fails_with_the_key() -> None:
    keys = with_keys({f"{G}/peer_v4/10.0.0.1": peer("10.0.0.1", "abc")})
    with pytest.raises(RenderError, match=f"key {G}/peer_v4/10.0.0.1: as_num 'abc' is not an AS number"):
        render(keys)


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
    assert_parses(render(cluster_2017(), node), BIRD16, tmp_path)


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


def test_the_mesh_comment_says_which_side_is_passive_as_the_sessions_do() -> None:
    """node1 (172.29.141.95) is passive towards node2 (.96, sorts later) and dials node6
    (.100, sorts earlier as a string); the comment above the mesh says the same."""
    bird = render(example_keys())["bird.cfg"]
    assert "# Of each pair, the node whose address sorts earlier as a string is passive" in bird
    sessions = {
        m[1]: m[2] for m in re.finditer(r"protocol bgp (Mesh_\S+) from bgp_template \{(.*?)\n\}", bird, re.S)
    }
    assert "passive on;" in sessions["Mesh_172_29_141_96"]
    assert "passive on;" not in sessions["Mesh_172_29_141_100"].replace("# not passive", "")
