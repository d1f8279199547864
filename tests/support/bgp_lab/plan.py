"""What the lab runs and its address plan: the BIRD of the nodes, addresses, blocks, keys.

Two kinds of lab (:data:`LAB_BIRDS`):

- ``bird1.6``: Debian's BIRD 1.6 per node, the project's ``conf.d/`` set, IPv4 only
  (each confpy renders the ``bird`` unit; the lab runs no bird6);
- ``bird2``: Debian's BIRD 2 per node (unpacked by scripts/bird2-unpack), the
  ``bird2/`` set, one daemon for IPv4 and IPv6.

Node N has 10.99.0.N/24 (and fd00:99::N/64), one /26 block 192.168.(100+N).0/26 from
the pool 192.168.0.0/16 (and one /122 block fd00:10::N:0/122 from fd00:10::/48). Pools
have no IPIP: this kernel has no ipip module.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from tests.support.bird_daemon import bird2_binary, bird2_missing, bird_binary
from tests.support.birdset import BIRD2, BIRD16, TemplateSet
from tests.support.calico_data import G, H, pool

AS_NUM = "64512"
CONFIRMED = json.dumps({"state": "confirmed", "deleted": False})

LAB_NET = {4: "10.99.0.0/24", 6: "fd00:99::/64"}
POOL = {4: "192.168.0.0/16", 6: "fd00:10::/48"}


@dataclass(frozen=True)
class LabBird:
    """Which BIRD the nodes run, and what follows from it."""

    name: str
    tset: TemplateSet  # the confdir each node's confpy renders
    families: tuple[int, ...]  # address families configured, routed and checked
    resources: tuple[str, ...]  # confpy's --resource arguments (none: every resource)

    def binary(self, name: str) -> str | None:
        """``bird`` or ``birdc`` of this BIRD."""
        return bird2_binary(name) if self is BIRD2_LAB else bird_binary(name)

    def missing(self) -> str | None:
        """Why this BIRD cannot run here (None: it can)."""
        if self is BIRD2_LAB:
            return bird2_missing()
        absent = [n for n in ("bird", "birdc") if bird_binary(n) is None]
        return f"missing binaries: {', '.join(absent)} (Debian: apt-get install bird)" if absent else None

    def __str__(self) -> str:
        return self.name


BIRD16_LAB = LabBird("bird1.6", BIRD16, (4,), ("bird",))
BIRD2_LAB = LabBird("bird2", BIRD2, (4, 6), ())
LAB_BIRDS = (BIRD16_LAB, BIRD2_LAB)


def address(index: int, family: int = 4) -> str:
    return f"10.99.0.{index}" if family == 4 else f"fd00:99::{index:x}"


def block_of(index: int, sub: int = 0, family: int = 4) -> str:
    """Node ``index``'s ``sub``-th block: node 1 -> 192.168.101.0/26, 192.168.101.64/26, ...
    (IPv6: fd00:10::1:0/122, fd00:10::1:40/122, ...)."""
    if family == 4:
        return f"192.168.{100 + index}.{64 * sub}/26"
    return f"fd00:10::{index:x}:{64 * sub:x}/122"


def family_of(cidr: str) -> int:
    return ipaddress.ip_network(cidr).version


def block_key(node: str, cidr: str) -> str:
    return f"/calico/ipam/v2/host/{node}/ipv{family_of(cidr)}/block/{cidr.replace('/', '-')}"


def protocol_name(kind: str, address: str) -> str:
    """Calico's protocol name of a session (``kind`` Mesh, Global or Node) to ``address``."""
    return f"{kind}_" + address.replace(".", "_").replace(":", "_")


def mesh_name(address: str) -> str:
    return protocol_name("Mesh", address)


def cluster_keys(families: tuple[int, ...]) -> dict[str, str]:
    """Global settings and the pools, as Calico's backend writes them."""
    keys = {
        f"{G}/as_num": AS_NUM,
        f"{G}/node_mesh": json.dumps({"enabled": True}),
        f"{G}/loglevel": "info",
    }
    for family in families:
        cidr = POOL[family]
        keys[f"/calico/v1/ipam/v{family}/pool/{cidr.replace('/', '-')}"] = pool(
            cidr, ipip="", ipip_mode="", vxlan_mode=""
        )
    return keys


def node_keys(name: str, index: int, families: tuple[int, ...]) -> dict[str, str]:
    """A node's keys as Calico writes them (ip_addr_v6 and rr_cluster_id always, maybe empty)."""
    keys = {
        f"{H}/{name}/ip_addr_v4": address(index, 4),
        f"{H}/{name}/ip_addr_v6": address(index, 6) if 6 in families else "",
        f"{H}/{name}/rr_cluster_id": "",
    }
    for family in families:
        keys[f"{H}/{name}/network_v{family}"] = LAB_NET[family]
        keys[block_key(name, block_of(index, 0, family))] = CONFIRMED
    return keys
