"""The Calico data the BIRD template tests share: the spec's example cluster, the 2017
data set, the scenarios every template set is rendered from, and a statement-level view
of BIRD config text (so comments and layout never decide a test)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from pathlib import Path

from confpy.stores.file import FileStore

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "calico"
EXAMPLES = ROOT / "examples" / "calico"

G = "/calico/bgp/v1/global"
H = "/calico/bgp/v1/host"
B4 = "/calico/ipam/v2/host/node1/ipv4/block"
B6 = "/calico/ipam/v2/host/node1/ipv6/block"


def example_keys() -> dict[str, str]:
    """The spec's 6-node example cluster (tests/data/calico/example-cluster.json)."""
    keys: dict[str, str] = json.loads((DATA / "example-cluster.json").read_text())["keys"]
    return keys


def cluster_2017() -> dict[str, str]:
    """Values as Calico v2.x wrote them (examples/calico/cluster-2017.yaml)."""
    return asyncio.run(FileStore([EXAMPLES / "cluster-2017.yaml"]).snapshot(["/"])).values


def with_keys(changes: Mapping[str, str | None], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The example cluster (or ``base``) with keys set, or removed where the value is None."""
    keys = dict(example_keys() if base is None else base)
    for k, v in changes.items():
        if v is None:
            keys.pop(k, None)
        else:
            keys[k] = v
    return keys


def peer(ip: str, as_num: str, **extra: object) -> str:
    return json.dumps({"ip": ip, "as_num": as_num, **extra})


def pool(cidr: str, **extra: object) -> str:
    return json.dumps({"cidr": cidr, "masquerade": True, "ipam": True, "disabled": False, **extra})


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


def unmet(
    files: Mapping[str, str], present: Mapping[str, list[str]], absent: Mapping[str, list[str]]
) -> list[str]:
    """What rendered ``files`` lack of the statements in ``present`` and hold of those in
    ``absent`` (both: file name -> statements); empty when the files are as expected."""
    problems = []
    for file, wanted in present.items():
        got = statements(files[file])
        problems += [f"{file}: {s!r} missing" for s in wanted if s not in got]
    for file, unwanted in absent.items():
        got = statements(files[file])
        problems += [f"{file}: {s!r} should not be there" for s in unwanted if s in got]
    return problems


# name -> (keys, environment): every template set renders each of these; the tests of
# each set say which statements its files must and must not contain.
SCENARIOS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "router id from CALICO_ROUTER_ID": (
        example_keys(),
        {"CALICO_ROUTER_ID": "192.0.2.7"},
    ),
    "router id hash": (
        example_keys(),
        {"CALICO_ROUTER_ID": "hash"},
    ),
    "log level debug, listen port": (
        with_keys(
            {f"{G}/loglevel": "debug", f"{H}/node1/listen_port": "1790", f"{H}/node2/listen_port": "1791"}
        ),
        {},
    ),
    "log level none": (
        with_keys({f"{H}/node1/loglevel": "none"}),
        {},
    ),
    "mesh disabled": (
        with_keys({f"{G}/node_mesh": '{"enabled":false}'}),
        {},
    ),
    "route reflector: IPv4 keeps the mesh, IPv6 drops it": (
        with_keys(
            {
                f"{H}/node1/rr_cluster_id": "10.0.0.1",
                f"{H}/node1/peer_v4/172.29.141.253": peer("172.29.141.253", "64512"),
                f"{H}/node1/peer_v6/fd00:29:141::253": peer(
                    "fd00:29:141::253", "64512", rr_cluster_id="10.0.0.1"
                ),
            }
        ),
        {},
    ),
    "peers with every field": (
        with_keys(
            {
                f"{G}/peer_v4/10.192.0.4-166": peer(
                    "10.192.0.4",
                    "64533",
                    port=166,
                    password="s3cr#t /*x*/",
                    keep_next_hop=True,
                    restart_time="120",
                    source_addr="None",
                ),
                f"{G}/peer_v6/ac13::57-50": peer("ac13::57", "4200000000", port=50),
                f"{H}/node1/peer_v4/172.29.141.95": peer("172.29.141.95", "64512"),  # ourselves: skipped
            }
        ),
        {},
    ),
    "prefix advertisements: node list replaces the global one": (
        with_keys(
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
    ),
    "pools: IPIP cross-subnet, off, VXLAN": (
        with_keys(
            {
                "/calico/v1/ipam/v4/pool/192.168.0.0-16": pool(
                    "192.168.0.0/16", ipip="tunl0", ipip_mode="cross-subnet"
                ),
                "/calico/v1/ipam/v4/pool/10.50.0.0-16": pool("10.50.0.0/16", ipip="", ipip_mode=""),
                "/calico/v1/ipam/v4/pool/192.169.0.0-16": pool("192.169.0.0/16", vxlan_mode="always"),
            }
        ),
        {},
    ),
    "no network_v4: no per-pool kernel rules": (
        with_keys({f"{H}/node1/network_v4": None}),
        {},
    ),
    "blocks: states, /32 and /128": (
        with_keys(
            {
                f"{B4}/192.168.221.64-26": '{"state":"pending"}',
                f"{B4}/192.168.221.192-26": '{"state":"pendingDeletion","deleted":false}',
                f"{B4}/10.2.0.1-32": '{"state":"confirmed"}',
                f"{B6}/fd00:10::9-128": "",
            }
        ),
        {},
    ),
    "no blocks, no pools": (
        {k: v for k, v in example_keys().items() if "/ipam/" not in k},
        {},
    ),
    "static routes and reject CIDRs": (
        with_keys(
            {
                "/calico/staticroutes/10.96.0.0-12": "10.96.0.0/12",
                "/calico/staticroutesv6/fd00:96::-108": "fd00:96::/108",
                "/calico/rejectcidrs/10.100.0.0-16": "10.100.0.0/16",
                "/calico/rejectcidrsv6/fd00:100::-64": "fd00:100::/64",
            }
        ),
        {},
    ),
    "IPv4-only node": (
        with_keys({f"{H}/node1/ip_addr_v6": ""}),
        {},
    ),
    "IPv6-only node with CALICO_ROUTER_ID": (
        with_keys({f"{H}/node1/ip_addr_v4": ""}),
        {"CALICO_ROUTER_ID": "10.0.0.1"},
    ),
    "other nodes without IPv6": (
        with_keys({f"{H}/node2/ip_addr_v6": "", f"{H}/node3/ip_addr_v6": None}),
        {},
    ),
}
