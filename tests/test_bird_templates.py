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
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from confpy.cli import main
from confpy.errors import RenderError
from confpy.stores.file import FileStore
from tests.support.birdset import BirdSet, bird_check, family_files

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "calico"
GOLDEN = ROOT / "tests" / "golden" / "node1"
SHARED_SPEC = ROOT.parent / "shared" / "spec"
EXAMPLES = ROOT / "examples" / "calico"
FILES = (*family_files(4), *family_files(6))

G = "/calico/bgp/v1/global"
H = "/calico/bgp/v1/host"

_SBIN = "/usr/local/sbin:/usr/sbin:/sbin:" + os.environ.get("PATH", "/usr/bin:/bin")
requires_bird = pytest.mark.skipif(
    shutil.which("bird", path=_SBIN) is None or shutil.which("bird6", path=_SBIN) is None,
    reason="Debian's bird/bird6 are not installed",
)


@pytest.fixture(autouse=True)
def _calico_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calico's BIRD (said, not detected: this machine's BIRD is Debian's) and no
    router-id override unless a test says otherwise."""
    monkeypatch.setenv("BIRD_FLAVOR", "calico")
    monkeypatch.delenv("CALICO_ROUTER_ID", raising=False)


def example_keys() -> dict[str, str]:
    keys: dict[str, str] = json.loads((DATA / "example-cluster.json").read_text())["keys"]
    return keys


def render(keys: Mapping[str, str], node: str = "node1") -> dict[str, str]:
    return BirdSet(ROOT, node).render(keys)


def statements(text: str) -> list[str]:
    """BIRD statements with comments, blank lines and layout removed: ``a { b; }`` ->
    ``["a {", "b ;", "}"]``. Strings are kept whole."""
    text = re.sub(r'"[^"\n]*"|#[^\n]*|/\*.*?\*/', lambda m: m[0] if m[0][0] == '"' else " ", text, flags=re.S)
    tokens = re.findall(r'"[^"\n]*"|&&|[{};(),=~]|[^\s{};(),=~"]+', text)
    out, current = [], []
    for token in tokens:
        current.append(token)
        if token in "{};":
            out.append(" ".join(current))
            current = []
    assert not current, f"text after the last statement: {current}"
    return out


def check_with_bird(files: Mapping[str, str], tmp_path: Path, families: tuple[int, ...] = (4, 6)) -> None:
    for family in families:
        ok, output = bird_check(files, family, tmp_path / f"v{family}")
        assert ok, f"bird{'6' if family == 6 else ''} -p rejected the set:\n{output}"


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


def _peer(ip: str, as_num: str, **extra: object) -> str:
    return json.dumps({"ip": ip, "as_num": as_num, **extra})


def _pool(cidr: str, **extra: object) -> str:
    return json.dumps({"cidr": cidr, "masquerade": True, "ipam": True, "disabled": False, **extra})


def _with(changes: Mapping[str, str | None], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The example cluster (or ``base``) with keys set, or removed where the value is None."""
    keys = dict(example_keys() if base is None else base)
    for k, v in changes.items():
        if v is None:
            keys.pop(k, None)
        else:
            keys[k] = v
    return keys


B4 = "/calico/ipam/v2/host/node1/ipv4/block"
B6 = "/calico/ipam/v2/host/node1/ipv6/block"

# name -> (keys, environment, {file: [statements it must contain]}, {file: [statements it must not]})
SCENARIOS: dict[str, tuple[dict[str, str], dict[str, str], dict[str, list[str]], dict[str, list[str]]]] = {
    "router id from CALICO_ROUTER_ID": (
        example_keys(),
        {"CALICO_ROUTER_ID": "192.0.2.7"},
        {"bird.cfg": ["router id 192.0.2.7 ;"], "bird6.cfg": ["router id 192.0.2.7 ;"]},
        {},
    ),
    "router id hash": (
        example_keys(),
        {"CALICO_ROUTER_ID": "hash"},
        {"bird.cfg": ["router id 202.18.243.27 ;"], "bird6.cfg": ["router id 202.18.243.27 ;"]},
        {},
    ),
    "log level debug, listen port": (
        _with({f"{G}/loglevel": "debug", f"{H}/node1/listen_port": "1790", f"{H}/node2/listen_port": "1791"}),
        {},
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
        _with({f"{H}/node1/loglevel": "none"}),
        {},
        {},
        {"bird.cfg": ["debug { states } ;", "debug all ;"]},
    ),
    "mesh disabled": (
        _with({f"{G}/node_mesh": '{"enabled":false}'}),
        {},
        {"bird.cfg": ["protocol bgp Global_172_29_141_1 from bgp_template {"]},
        {
            "bird.cfg": ["protocol bgp Mesh_172_29_141_96 from bgp_template {"],
            "bird6.cfg": ["protocol bgp Mesh_fd00_29_141__96 from bgp_template {"],
        },
    ),
    "route reflector: IPv4 keeps the mesh, IPv6 drops it": (
        _with(
            {
                f"{H}/node1/rr_cluster_id": "10.0.0.1",
                f"{H}/node1/peer_v4/172.29.141.253": _peer("172.29.141.253", "64512"),
                f"{H}/node1/peer_v6/fd00:29:141::253": _peer(
                    "fd00:29:141::253", "64512", rr_cluster_id="10.0.0.1"
                ),
            }
        ),
        {},
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
        _with(
            {
                f"{G}/peer_v4/10.192.0.4-166": _peer(
                    "10.192.0.4",
                    "64533",
                    port=166,
                    password="s3cr#t /*x*/",
                    keep_next_hop=True,
                    restart_time="120",
                    source_addr="None",
                ),
                f"{G}/peer_v6/ac13::57-50": _peer("ac13::57", "4200000000", port=50),
                f"{H}/node1/peer_v4/172.29.141.95": _peer("172.29.141.95", "64512"),  # ourselves: skipped
            }
        ),
        {},
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
        _with(
            {
                f"{G}/prefix_advertisements/ip_v4": json.dumps(
                    [{"cidr": "10.0.0.0/8", "communities": ["1:1"]}]
                ),
                f"{H}/node1/prefix_advertisements/ip_v4": json.dumps(
                    [{"cidr": "192.168.0.0/16", "communities": ["65000:100", "65000:1:2"]}]
                ),
                f"{G}/prefix_advertisements/ip_v6": json.dumps(
                    [{"cidr": "fd00:10::/48", "communities": ["7:7"]}]
                ),
            }
        ),
        {},
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
        _with(
            {
                "/calico/v1/ipam/v4/pool/192.168.0.0-16": _pool(
                    "192.168.0.0/16", ipip="tunl0", ipip_mode="cross-subnet"
                ),
                "/calico/v1/ipam/v4/pool/10.50.0.0-16": _pool("10.50.0.0/16", ipip="", ipip_mode=""),
                "/calico/v1/ipam/v4/pool/192.169.0.0-16": _pool("192.169.0.0/16", vxlan_mode="always"),
            }
        ),
        {},
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
        _with({f"{H}/node1/network_v4": None}),
        {},
        {},
        {"bird_ipam.cfg": ['krt_tunnel = "tunl0" ;']},
    ),
    "blocks: states, /32 and /128": (
        _with(
            {
                f"{B4}/192.168.221.64-26": '{"state":"pending"}',
                f"{B4}/192.168.221.192-26": '{"state":"pendingDeletion","deleted":false}',
                f"{B4}/10.2.0.1-32": '{"state":"confirmed"}',
                f"{B6}/fd00:10::9-128": "",
            }
        ),
        {},
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
        {k: v for k, v in example_keys().items() if "/ipam/" not in k},
        {},
        {"bird_aggr.cfg": ["function calico_aggr ( ) {"]},
        {"bird_aggr.cfg": ["protocol static {"], "bird_ipam.cfg": ["if ( net ~ 192.168.0.0/16 ) then {"]},
    ),
    "static routes and reject CIDRs": (
        _with(
            {
                "/calico/staticroutes/10.96.0.0-12": "10.96.0.0/12",
                "/calico/staticroutesv6/fd00:96::-108": "fd00:96::/108",
                "/calico/rejectcidrs/10.100.0.0-16": "10.100.0.0/16",
                "/calico/rejectcidrsv6/fd00:100::-64": "fd00:100::/64",
            }
        ),
        {},
        {
            "bird_aggr.cfg": ["route 10.96.0.0/12 blackhole ;"],
            "bird6_aggr.cfg": ["route fd00:96::/108 blackhole ;"],
            "bird_ipam.cfg": ["if ( net ~ 10.96.0.0/12 ) then {", "if ( net ~ 10.100.0.0/16 ) then {"],
            "bird6_ipam.cfg": ["if ( net ~ fd00:96::/108 ) then {", "if ( net ~ fd00:100::/64 ) then {"],
        },
        {},
    ),
    "IPv4-only node": (
        _with({f"{H}/node1/ip_addr_v6": ""}),
        {},
        {"bird6.cfg": ["router id 172.29.141.95 ;"]},
        {"bird6.cfg": ["template bgp bgp_template {"]},
    ),
    "IPv6-only node with CALICO_ROUTER_ID": (
        _with({f"{H}/node1/ip_addr_v4": ""}),
        {"CALICO_ROUTER_ID": "10.0.0.1"},
        {"bird6.cfg": ["protocol bgp Mesh_fd00_29_141__96 from bgp_template {"]},
        {"bird.cfg": ["template bgp bgp_template {"]},
    ),
    "other nodes without IPv6": (
        _with({f"{H}/node2/ip_addr_v6": "", f"{H}/node3/ip_addr_v6": None}),
        {},
        {"bird6.cfg": ["protocol bgp Mesh_fd00_29_141__98 from bgp_template {"]},
        {
            "bird6.cfg": [
                "protocol bgp Mesh_fd00_29_141__96 from bgp_template {",
                "protocol bgp Mesh_fd00_29_141__97 from bgp_template {",
            ]
        },
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    keys, env, present, absent = SCENARIOS[name]
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
    data.write_text(json.dumps(_with(STATIC_ROUTES)))
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
    keys, env, _, _ = SCENARIOS[name]
    for var, value in {**env, "BIRD_FLAVOR": "stock"}.items():
        monkeypatch.setenv(var, value)
    check_with_bird(render(keys), tmp_path)


def test_empty_router_id_fails_the_render() -> None:
    keys = _with({f"{H}/node1/ip_addr_v4": ""})
    with pytest.raises(RenderError, match=f"key {H}/node1/ip_addr_v4: missing or empty"):
        render(keys)


def test_bad_value_fails_with_the_key() -> None:
    keys = _with({f"{G}/peer_v4/10.0.0.1": _peer("10.0.0.1", "abc")})
    with pytest.raises(RenderError, match=f"key {G}/peer_v4/10.0.0.1: as_num 'abc' is not an AS number"):
        render(keys)


def test_each_resource_reads_only_its_keys() -> None:
    """A broken key breaks only the files that read it: a bad IPv4 peer breaks
    bird.cfg, a bad IPv4 block bird_aggr.cfg; the others render."""
    keys = _with({f"{G}/peer_v4/10.0.0.1": "{", f"{B4}/bad": ""})
    birdset = BirdSet(ROOT, "node1")
    for name, (resource, view) in birdset.views(keys).items():
        if name in ("bird.cfg", "bird_aggr.cfg"):
            with pytest.raises(RenderError, match="key /calico/"):
                birdset.renderer.render(resource.src, view, "node1")
        else:
            birdset.renderer.render(resource.src, view, "node1")


# --- the 2017 data set ----------------------------------------------------------------


def _cluster_2017() -> dict[str, str]:
    return asyncio.run(FileStore([EXAMPLES / "cluster-2017.yaml"]).snapshot(["/"])).values


def test_2017_data_set_renders() -> None:
    files = render(_cluster_2017(), "kube-node-1")
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
    check_with_bird(render(_cluster_2017(), node), tmp_path)


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
