"""The v1 peer keys BGPPeers stand for, resolved as Calico's confd resolves them.

Each BGPPeer *emits* candidate keys, in three passes of Calico's ``updatePeersV1``:

0. a global BGPPeer (no ``node``, no ``nodeSelector``): ``/global/peer_v4/<ip>[-<port>]``;
1. a node's BGPPeer: ``/host/<node>/peer_v4/...`` for each node it names or selects;
2. the reverse peerings: the nodes at the far end (``peerSelector``, or the node at
   ``peerIP`` with that AS) get a session back to the near ones (``node``,
   ``nodeSelector``, else every node), unless ``reversePeering: Manual``.

The first candidate of a key wins (passes in order; within a pass, by BGPPeer name,
where Calico's order is that of a Go map: any), and a node key is dropped when any
global candidate has the same ``<ip>[-<port>]``. :class:`PeeringTable` keeps every
BGPPeer's candidates, so a change to one BGPPeer re-resolves only the keys it emits.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from confpy.calico.v3.resources import BGPPeer, Node
from confpy.calico.v3.selector import Selector

BGP = "/calico/bgp/v1"
BGP_PORT = 179

Rank = tuple[int, str]  # (pass, BGPPeer name): the lower wins


class Cluster(Protocol):
    """What peerings are computed from: the nodes and the BGP settings."""

    @property
    def nodes(self) -> Mapping[str, Node]: ...

    @property
    def global_as(self) -> int: ...

    @property
    def global_listen_port(self) -> int: ...  # 0: not set

    @property
    def node_listen_ports(self) -> Mapping[str, int]:
        """listenPort of the BGPConfigurations ``node.<name>`` that set one."""
        ...

    def matching(self, selector: Selector) -> list[str]:
        """Names of the nodes whose labels the selector matches, sorted."""
        ...


@dataclass(frozen=True, slots=True)
class Emission:
    key: str
    suffix: str  # peer_v4/<ip>[-<port>]: what a global and a node key have in common
    is_global: bool
    rank: Rank
    value: str


@dataclass(frozen=True, slots=True)
class _Target:
    ip: str
    as_num: int
    rr_cluster_id: str
    port: int


def emissions(peer: BGPPeer, cluster: Cluster) -> tuple[list[Emission], bool]:
    """Every candidate key of ``peer``, and whether its reverse peerings involve every
    node (a global BGPPeer whose far end is a Calico node: any node's change matters)."""
    out: list[Emission] = []

    def emit(pass_: int, nodes: Iterable[str | None], target: _Target) -> None:
        """The peering to ``target`` for each node (None: global). One value for all:
        a selector may give thousands of nodes the same peering."""
        version = 6 if ":" in target.ip else 4
        port = f"-{target.port}" if target.port not in (0, BGP_PORT) else ""
        suffix = f"peer_v{version}/{target.ip}{port}"
        value = _value(peer, target)
        for node in nodes:
            key = f"{BGP}/global/{suffix}" if node is None else f"{BGP}/host/{node}/{suffix}"
            out.append(Emission(key, suffix, node is None, (pass_, peer.name), value))

    near = None if peer.is_global else _near_nodes(peer, cluster)
    for target in _far_targets(peer, cluster):
        if near is None:
            emit(0, [None], target)
        else:
            emit(1, near, target)
    if not peer.automatic_reverse:
        return out, False
    if peer.peer_selector is not None:
        far, v4, v6 = cluster.matching(peer.peer_selector), True, True
    else:
        far = nodes_at(cluster, peer.peer_host, peer.as_num, peer.peer_port)
        v6 = ":" in peer.peer_host
        v4 = not v6
    if far:
        back = sorted(cluster.nodes) if near is None else near
        for target in (t for name in back for t in _node_targets(cluster, name, v4, v6)):
            emit(2, far, target)
    return out, peer.is_global and bool(far)


def _near_nodes(peer: BGPPeer, cluster: Cluster) -> list[str]:
    return cluster.matching(peer.node_selector) if peer.node_selector is not None else [peer.node]


def _far_targets(peer: BGPPeer, cluster: Cluster) -> list[_Target]:
    if peer.peer_selector is not None:
        return [t for name in cluster.matching(peer.peer_selector) for t in _node_targets(cluster, name)]
    port = peer.peer_port
    if not port:
        # A peer at a Calico node's address and AS is dialled on that node's BGP port.
        at = nodes_at(cluster, peer.peer_host, peer.as_num, 0)
        port = listen_port(cluster, at[0]) if at else 0
    return [_Target(peer.peer_ip, peer.as_num, "", port)]


def _node_targets(cluster: Cluster, name: str, v4: bool = True, v6: bool = True) -> list[_Target]:
    """A node as the far end of a session: each address it has, its AS (else the global
    one), its BGP port and its route-reflector cluster id."""
    node = cluster.nodes.get(name)
    if node is None:
        return []
    addresses = ([node.ipv4] if v4 else []) + ([node.ipv6] if v6 else [])
    as_num, port = node.as_num or cluster.global_as, listen_port(cluster, name)
    return [_Target(ip, as_num, node.rr_cluster_id, port) for ip in addresses if ip]


def listen_port(cluster: Cluster, node: str) -> int:
    """The port a node's BIRD listens on: its own, else the global one; 0: BGP's default."""
    return cluster.node_listen_ports.get(node) or cluster.global_listen_port


def nodes_at(cluster: Cluster, host: str, as_num: int, port: int) -> list[str]:
    """Calico nodes a ``peerIP`` names: the address (as written) and the AS (0: the global
    one) must match; a port, when given, too."""
    want_as = as_num or cluster.global_as
    found = []
    for name in sorted(cluster.nodes):
        node = cluster.nodes[name]
        if host not in (node.ipv4, node.ipv6) or (node.as_num or cluster.global_as) != want_as:
            continue
        if port:
            own = cluster.node_listen_ports.get(name)
            # Calico's test, kept as it is: a node whose own port matches is still left
            # out when a different global port is set.
            if own is not None and own != port:
                continue
            if cluster.global_listen_port and cluster.global_listen_port != port:
                continue
        found.append(name)
    return found


def _value(peer: BGPPeer, target: _Target) -> str:
    """The peer JSON of the current templates (spec 1.4); ``as_num`` is a string."""
    value = {
        "ip": target.ip,
        "as_num": str(target.as_num),
        "rr_cluster_id": target.rr_cluster_id,
        "password": None,
        "source_addr": peer.source_address,
        "port": target.port,
        "keep_next_hop": peer.keep_next_hop,
        "restart_time": peer.restart_time,
    }
    return json.dumps(value, separators=(",", ":"))


def involves(peer: BGPPeer, node: Node) -> bool:
    """Whether ``node`` (as it was or as it is now) takes part in ``peer``'s peerings,
    at either end; with the reverse-everyone flag of :func:`emissions` this decides
    which BGPPeers a node change re-derives."""
    return (
        peer.node == node.name
        or (peer.node_selector is not None and peer.node_selector.matches(node.labels))
        or (peer.peer_selector is not None and peer.peer_selector.matches(node.labels))
        or (bool(peer.peer_host) and peer.peer_host in (node.ipv4, node.ipv6))
    )


class PeeringTable:
    """The candidates of every BGPPeer and the winning value of each v1 peer key."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self._by_peer: dict[str, dict[str, Emission]] = {}
        self._candidates: dict[str, dict[Rank, Emission]] = {}
        self._globals: Counter[str] = Counter()  # suffix -> number of global candidates
        self._node_keys: dict[str, set[str]] = {}  # suffix -> node keys with candidates

    def replace(self, name: str, new: Iterable[Emission]) -> dict[str, str | None]:
        """Put ``new`` in place of BGPPeer ``name``'s candidates; returns the keys whose
        winning value changed (None: the key is gone). Only candidates that differ are
        touched: a selector over thousands of nodes changes by a few keys at a time."""
        kept: dict[str, Emission] = {}
        for e in new:
            kept.setdefault(e.key, e)  # a BGPPeer's first candidate of a key outranks its others
        old = self._by_peer.pop(name, {})
        gone = [e for key, e in old.items() if kept.get(key) != e]
        came = [e for key, e in kept.items() if old.get(key) != e]
        suffixes = {e.suffix for e in (*gone, *came) if e.is_global}
        had = {s for s in suffixes if self._globals[s]}
        for e in gone:
            self._remove(e)
        for e in came:
            self._add(e)
        if kept:
            self._by_peer[name] = kept
        touched = {e.key for e in (*gone, *came)}
        for suffix in had ^ {s for s in suffixes if self._globals[s]}:
            # A global peering came or went: the node peerings to the same peer go or come.
            touched |= self._node_keys.get(suffix, set())
        return self._resolve(touched)

    def _add(self, e: Emission) -> None:
        self._candidates.setdefault(e.key, {})[e.rank] = e
        if e.is_global:
            self._globals[e.suffix] += 1
        else:
            self._node_keys.setdefault(e.suffix, set()).add(e.key)

    def _remove(self, e: Emission) -> None:
        candidates = self._candidates[e.key]
        del candidates[e.rank]
        if e.is_global:
            self._globals[e.suffix] -= 1
            if not self._globals[e.suffix]:
                del self._globals[e.suffix]
        if candidates:
            return
        del self._candidates[e.key]
        if not e.is_global:
            keys = self._node_keys[e.suffix]
            keys.discard(e.key)
            if not keys:
                del self._node_keys[e.suffix]

    def _resolve(self, keys: set[str]) -> dict[str, str | None]:
        changed: dict[str, str | None] = {}
        for key in keys:
            candidates = self._candidates.get(key)
            value = None
            if candidates:
                first = candidates[min(candidates)]
                if first.is_global or not self._globals[first.suffix]:
                    value = first.value
            if value != self.values.get(key):
                changed[key] = value
                if value is None:
                    del self.values[key]
                else:
                    self.values[key] = value
        return changed
