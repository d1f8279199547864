"""The data the benchmarks load: N peer keys for one template, and Calico clusters.

Addresses are printed into config files only; nothing is ever sent to them.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from pathlib import Path

from bench import common

# ----------------------------------------------------------------- N peers, one template

PEER_PREFIX = "/bench/peers"
PEERS_DEST = Path("/etc/confpy-bench/peers.conf")

PEERS_TEMPLATE = """\
# {{ node_name }}: one line per peer under /bench/peers
{% for p in gets("/peers/*") %}
{% set d = json(p.value) %}
neighbor {{ base(p.key) }} {{ d.ip }} as {{ d.as_num }};
{% endfor %}
"""


def peer_key(i: int) -> str:
    return f"{PEER_PREFIX}/p{i:05d}"


def peer_value(i: int, as_num: int = 64512) -> str:
    ip = ipaddress.IPv4Address(0x0A000000 + i + 1)  # 10.0.0.1, 10.0.0.2, ...
    return json.dumps({"ip": str(ip), "as_num": str(as_num)}, separators=(",", ":"))


def peers(n: int) -> dict[str, str]:
    return {peer_key(i): peer_value(i) for i in range(n)}


def peer_line(i: int, as_num: int) -> str:
    """The line the template prints for peer ``i`` (what a latency wait looks for)."""
    ip = ipaddress.IPv4Address(0x0A000000 + i + 1)
    return f"neighbor p{i:05d} {ip} as {as_num};"


def peers_confdir(root: Path, *, reload_cmd: str | None = None) -> Path:
    """A confdir with the one peers resource (prefix /bench, keys /peers)."""
    (root / "conf.d").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(parents=True, exist_ok=True)
    toml = f'[template]\nsrc = "peers.conf.j2"\ndest = "{PEERS_DEST}"\nprefix = "/bench"\nkeys = ["/peers"]\n'
    if reload_cmd:
        toml += f"reload_cmd = {json.dumps(reload_cmd)}\n"
    (root / "conf.d" / "peers.toml").write_text(toml)
    (root / "templates" / "peers.conf.j2").write_text(PEERS_TEMPLATE)
    return root


def write_data_file(path: Path, values: dict[str, str]) -> Path:
    """A flat-key data file for the file store (.json or .yaml by suffix)."""
    if path.suffix == ".json":
        path.write_text(json.dumps(values, indent=0))
    else:
        # Flat keys, values single-quoted as in examples/calico (YAML's '' escapes ').
        lines = [f"{json.dumps(k)}: '{v.replace(chr(39), chr(39) * 2)}'" for k, v in values.items()]
        path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------- Calico clusters

BIRD_FILES = ("bird.cfg", "bird_ipam.cfg", "bird_aggr.cfg", "bird6.cfg", "bird6_ipam.cfg", "bird6_aggr.cfg")
BIRD_CONFIG_DIR = Path("/etc/calico/confd/config")
V4_POOL = ipaddress.IPv4Network("10.0.0.0/8")
V6_POOL = ipaddress.IPv6Network("fd00:10::/48")
_G = "/calico/bgp/v1/global"
_H = "/calico/bgp/v1/host"
_B = "/calico/ipam/v2/host"


def node_name(i: int) -> str:
    return f"node{i}"


def cluster(nodes: int, *, blocks_on_node1: int = 1) -> dict[str, str]:
    """A Calico v2/v3 etcd data set (as calico/node's confd reads it) for ``nodes`` nodes:
    global AS and mesh, two global peers, per node v4/v6 addresses and one v4 /26 and
    one v6 /122 IPAM block (``blocks_on_node1`` v4 blocks on node1), one pool per family.
    """
    keys: dict[str, str] = {
        f"{_G}/as_num": "64512",
        f"{_G}/loglevel": "info",
        f"{_G}/node_mesh": '{"enabled":true}',
    }
    for j, ip in enumerate(("192.0.2.1", "192.0.2.2")):
        keys[f"{_G}/peer_v4/{ip}"] = json.dumps(
            {"ip": ip, "as_num": str(64600 + j), "source_addr": "UseNodeIP", "port": 0}, separators=(",", ":")
        )
    v4_net = ipaddress.IPv4Network("172.16.0.0/12")
    v6_net = ipaddress.IPv6Network("fd00:16::/64")
    for i in range(1, nodes + 1):
        name = node_name(i)
        keys[f"{_H}/{name}/ip_addr_v4"] = str(v4_net.network_address + i)
        keys[f"{_H}/{name}/ip_addr_v6"] = str(v6_net.network_address + i)
        keys[f"{_H}/{name}/network_v4"] = str(v4_net)
        keys[f"{_H}/{name}/network_v6"] = str(v6_net)
        keys[f"{_H}/{name}/rr_cluster_id"] = ""
        v6_block = ipaddress.IPv6Network((int(V6_POOL.network_address) + i * 64, 122))
        keys[f"{_B}/{name}/ipv6/block/{_block_key(v6_block)}"] = '{"state":"confirmed"}'
        first = 0 if i == 1 else blocks_on_node1 + i
        count = blocks_on_node1 if i == 1 else 1
        for b in range(first, first + count):
            v4_block = ipaddress.IPv4Network((int(V4_POOL.network_address) + b * 64, 26))
            keys[f"{_B}/{name}/ipv4/block/{_block_key(v4_block)}"] = '{"state":"confirmed"}'
    keys[f"/calico/v1/ipam/v4/pool/{_block_key(V4_POOL)}"] = pool_value(str(V4_POOL), ipip=True)
    keys[f"/calico/v1/ipam/v6/pool/{_block_key(V6_POOL)}"] = pool_value(str(V6_POOL), ipip=False)
    return keys


def _block_key(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return f"{net.network_address}-{net.prefixlen}"


def pool_value(cidr: str, *, ipip: bool = True) -> str:
    return json.dumps(
        {
            "cidr": cidr,
            "ipip": "tunl0" if ipip else "",
            "ipip_mode": "always" if ipip else "",
            "vxlan_mode": "",
            "masquerade": True,
            "ipam": True,
            "disabled": False,
        },
        separators=(",", ":"),
    )


def pool_key(cidr: str) -> str:
    net = ipaddress.ip_network(cidr)
    family = "v4" if net.version == 4 else "v6"
    return f"/calico/v1/ipam/{family}/pool/{_block_key(net)}"


def bird_confdir(root: Path) -> Path:
    """The repo's conf.d/ and templates/ with the reload by signal replaced by ``true``
    (no bird daemon runs here); checks (``bird -p -c``) kept."""
    src = common.SOURCE.root
    shutil.copytree(src / "templates", root / "templates", dirs_exist_ok=True)
    (root / "conf.d").mkdir(parents=True, exist_ok=True)
    for toml in sorted((src / "conf.d").glob("*.toml")):
        lines = [
            line
            for line in toml.read_text().splitlines()
            if not line.startswith(("reload_signal", "reload_process"))
        ]
        lines.append('reload_cmd = "true"')
        (root / "conf.d" / toml.name).write_text("\n".join(lines) + "\n")
    return root


# ----------------------------------------------------------------- a cluster at scale

RR_CLUSTER_ID = "244.0.0.1"


def node_v4(i: int) -> str:
    """Node ``i``'s IPv4 address in :func:`cluster` (172.16.0.0/12 + i)."""
    return str(ipaddress.IPv4Network("172.16.0.0/12").network_address + i)


def peer_json(ip: str, as_num: str, *, rr_cluster_id: str = "") -> str:
    """A BGP peer value in Calico's current shape (every field present)."""
    return json.dumps(
        {
            "ip": ip, "as_num": as_num, "rr_cluster_id": rr_cluster_id, "password": None,
            "source_addr": "UseNodeIP", "port": 0, "keep_next_hop": False, "restart_time": "",
        },
        separators=(",", ":"),
    )  # fmt: skip


def reflected_cluster(nodes: int, reflectors: int = 3) -> dict[str, str]:
    """:func:`cluster` laid out as Calico recommends beyond ~100 nodes: the full mesh off
    (``node_mesh`` disabled), nodes 1..``reflectors`` are in-cluster route reflectors
    (``rr_cluster_id`` set), every node peers with them through global peers (same AS,
    the reflectors' cluster id in the peer value: a reflector skips itself and does not
    reflect to its fellows), and each reflector has a node-specific peer per client
    (BIRD 1.6 has no dynamic neighbours: a reflector needs one session per client,
    marked ``rr client`` because our cluster id differs from the client's empty one).
    """
    keys = cluster(nodes)
    keys[f"{_G}/node_mesh"] = '{"enabled":false}'
    as_num = keys[f"{_G}/as_num"]
    rr_ips = [node_v4(r) for r in range(1, reflectors + 1)]
    for r, ip in enumerate(rr_ips, start=1):
        keys[f"{_H}/{node_name(r)}/rr_cluster_id"] = RR_CLUSTER_ID
        keys[f"{_G}/peer_v4/{ip}"] = peer_json(ip, as_num, rr_cluster_id=RR_CLUSTER_ID)
    for r in range(1, reflectors + 1):
        for i in range(reflectors + 1, nodes + 1):
            ip = node_v4(i)
            keys[f"{_H}/{node_name(r)}/peer_v4/{ip}"] = peer_json(ip, as_num)
    return keys


def global_peer_key(ip: str) -> str:
    return f"{_G}/peer_v4/{ip}"


def block_key(node: str, cidr: str) -> str:
    """The IPAM affinity key of an IPv4 block of ``node``."""
    return f"{_B}/{node}/ipv4/block/{_block_key(ipaddress.IPv4Network(cidr))}"


def unread_calico_keys(nodes: int, count: int) -> list[tuple[str, str]]:
    """``count`` keys under /calico that no BIRD resource reads, as a busy cluster's other
    components write them: Felix's workload endpoints (``/calico/v1/host/<node>/workload/``,
    between ``/calico/bgp`` and ``/calico/v1/ipam``) and IPAM allocation blocks
    (``/calico/ipam/v2/assignment/``, between ``/calico/bgp`` and ``/calico/ipam/v2/host``)."""
    out: list[tuple[str, str]] = []
    for j in range(count):
        node = node_name(j % nodes + 1)
        if j % 2 == 0:
            key = f"/calico/v1/host/{node}/workload/k8s/default.pod-{j}/endpoint/eth0"
            value = json.dumps(
                {"state": "active", "name": f"cali{j:011x}"[:15], "mac": "ee:ee:ee:ee:ee:ee",
                 "profile_ids": ["kns.default"],
                 "ipv4_nets": [f"10.{j >> 16 & 255}.{j >> 8 & 255}.{j & 255}/32"]},
                separators=(",", ":"),
            )  # fmt: skip
        else:
            block = ipaddress.IPv4Network((int(V4_POOL.network_address) + (j % 65536) * 64, 26))
            key = f"/calico/ipam/v2/assignment/ipv4/block/{_block_key(block)}"
            value = json.dumps(
                {"cidr": str(block), "affinity": f"host:{node}", "allocations": [0, None], "seq": j},
                separators=(",", ":"),
            )  # fmt: skip
        out.append((key, value))
    return out
