"""The v1 keys Calico's confd computes from Calico 3 resources, kept up to date change by change.

:meth:`V1View.apply` takes the etcd changes of one revision and returns the v1 keys that
changed. A resource change re-derives what it touches only: a Node its own keys and the
BGPPeers it takes part in (by name, by any selector, old labels or new, by address);
a BGPPeer its own peerings; a BGPConfiguration its keys, and every peering when the
global AS or port moved; an IPPool its pool key. This node's block affinities
(``/calico/ipam/v2/host/<node>/...``) are already v1 keys and pass through unchanged.

A resource that does not parse keeps its last good version and is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from confpy.calico.v3 import resources
from confpy.calico.v3.peerings import Emission, PeeringTable, emissions, involves
from confpy.calico.v3.resources import BGPConfiguration, BGPPeer, IPPool, Node, Resource
from confpy.calico.v3.selector import Selector
from confpy.errors import DataError
from confpy.keys import covers

GLOBAL = "/calico/bgp/v1/global"
HOST = "/calico/bgp/v1/host"
DEFAULT_AS = 64512
# Calico's confd holds these global keys even when nothing sets them (its templates need them).
DEFAULTS = {
    f"{GLOBAL}/as_num": str(DEFAULT_AS),
    f"{GLOBAL}/node_mesh": '{"enabled": true}',
    f"{GLOBAL}/loglevel": "info",
}
Change = tuple[str, str | None]  # an etcd key and its new value (None: deleted)
R = TypeVar("R", Node, BGPPeer, BGPConfiguration, IPPool)

NODE_KEYS = ("ip_addr_v4", "ip_addr_v6", "network_v4", "network_v6", "as_num", "rr_cluster_id")
CONFIG_KEYS = ("as_num", "node_mesh", "loglevel", "listen_port", "prefix_advertisements/ip_v4",
               "prefix_advertisements/ip_v6")  # fmt: skip
NODE_CONFIG_KEYS = ("loglevel", "listen_port", "prefix_advertisements/ip_v4", "prefix_advertisements/ip_v6")


def affinity_prefix(node_name: str) -> str:
    """Where this node's block affinities are (the only IPAM keys the templates read)."""
    return f"/calico/ipam/v2/host/{node_name}"


def source_prefixes(node_name: str) -> list[str]:
    """The etcd prefixes the view is computed from."""
    return [f"{resources.PREFIX}/{plural}" for plural in resources.PLURALS] + [affinity_prefix(node_name)]


class V1View:
    """Every v1 key of the cluster, for the BIRD templates of ``node_name``."""

    def __init__(self, node_name: str) -> None:
        self.values: dict[str, str] = dict(DEFAULTS)
        self._affinities = affinity_prefix(node_name)
        self._nodes: dict[str, Node] = {}
        self._peers: dict[str, BGPPeer] = {}
        self._configs: dict[str, BGPConfiguration] = {}
        self._pools: dict[str, IPPool] = {}
        self._node_ports: dict[str, int] = {}
        self._reverse_everyone: set[str] = set()  # BGPPeers that any node change may touch
        self._table = PeeringTable()
        self._before: dict[str, str | None] = {}  # during apply: the first value of each touched key

    # --- the Cluster protocol of peerings.py ---------------------------------------------

    @property
    def nodes(self) -> Mapping[str, Node]:
        return self._nodes

    @property
    def global_as(self) -> int:
        default = self._configs.get(resources.GLOBAL_CONFIG)
        return (default.as_num if default else None) or DEFAULT_AS

    @property
    def global_listen_port(self) -> int:
        default = self._configs.get(resources.GLOBAL_CONFIG)
        return default.listen_port if default else 0

    @property
    def node_listen_ports(self) -> Mapping[str, int]:
        return self._node_ports

    def matching(self, selector: Selector) -> list[str]:
        return sorted(name for name, node in self._nodes.items() if selector.matches(node.labels))

    # --- changes -----------------------------------------------------------------------

    def apply(
        self, changes: Iterable[tuple[str, str | None]]
    ) -> tuple[dict[str, str | None], list[DataError]]:
        """The etcd changes of one revision (value None: deleted). Returns the v1 keys whose
        value changed (None: gone) and the errors of resources kept at their last good version."""
        errors: list[DataError] = []
        moved_nodes: list[tuple[Node | None, Node | None]] = []
        peers: set[str] = set()
        every_peer = False
        self._before = {}
        for key, value in changes:
            if covers(self._affinities, key):
                self._set(key, value)
                continue
            where = resources.split_key(key)
            if where is None:
                continue
            try:
                resource = None if value is None else resources.parse(key, value)
            except DataError as exc:
                errors.append(exc)
                continue
            plural, name = where
            if plural == resources.NODES:
                moved_nodes.append(self._put_node(name, resource))
            elif plural == resources.PEERS:
                assert resource is None or isinstance(resource, BGPPeer)
                self._put(self._peers, name, resource)
                peers.add(name)
            elif plural == resources.CONFIGS:
                moved, node = self._put_config(name, resource)
                every_peer |= moved
                if node in self._nodes:
                    moved_nodes.append((self._nodes[node], self._nodes[node]))
            else:
                self._put_pool(name, resource)
        if every_peer:
            peers |= self._peers.keys()
        else:
            for old, new in moved_nodes:
                if old is None and new is None:
                    continue  # the node changed nothing a peering reads
                peers |= {p.name for p in self._peers.values() if self._touches(p, old, new)}
        for name in sorted(peers):
            self._derive_peer(name)
        touched, self._before = self._before, {}
        return {k: self.values.get(k) for k, v in touched.items() if self.values.get(k) != v}, errors

    def _set(self, key: str, value: str | None) -> None:
        self._before.setdefault(key, self.values.get(key))
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value

    @staticmethod
    def _put(table: dict[str, R], name: str, resource: R | None) -> R | None:
        old = table.pop(name, None)
        if resource is not None:
            table[name] = resource
        return old

    def _touches(self, peer: BGPPeer, old: Node | None, new: Node | None) -> bool:
        if peer.name in self._reverse_everyone:
            return True
        return any(node is not None and involves(peer, node) for node in (old, new))

    def _derive_peer(self, name: str) -> None:
        peer = self._peers.get(name)
        found: list[Emission] = []
        everyone = False
        if peer is not None:
            found, everyone = emissions(peer, self)
        (self._reverse_everyone.add if everyone else self._reverse_everyone.discard)(name)
        for key, value in self._table.replace(name, found).items():
            self._set(key, value)

    # --- nodes -------------------------------------------------------------------------

    def _put_node(self, name: str, node: Resource | None) -> tuple[Node | None, Node | None]:
        assert node is None or isinstance(node, Node)
        old = self._put(self._nodes, name, node)
        fields: dict[str, str] = {}
        if node is not None:
            fields = {"ip_addr_v4": node.ipv4, "ip_addr_v6": node.ipv6, "rr_cluster_id": node.rr_cluster_id}
            if node.network_v4:
                fields["network_v4"] = node.network_v4
            if node.network_v6:
                fields["network_v6"] = node.network_v6
            if node.as_num:
                fields["as_num"] = str(node.as_num)
        for field in NODE_KEYS:
            self._set(f"{HOST}/{name}/{field}", fields.get(field))
        return (old, node) if old != node else (None, None)

    # --- BGP configurations ------------------------------------------------------------

    def _put_config(self, name: str, config: Resource | None) -> tuple[bool, str | None]:
        """Returns whether every peering may change (the global AS or port moved) and the
        node whose port may have moved."""
        assert config is None or isinstance(config, BGPConfiguration)
        if name == resources.GLOBAL_CONFIG:
            before = (self.global_as, self.global_listen_port)
            self._put(self._configs, name, config)
            self._config_keys(GLOBAL, config, CONFIG_KEYS)
            return before != (self.global_as, self.global_listen_port), None
        if not name.startswith(resources.NODE_CONFIG):
            return False, None  # Calico reads "default" and "node.<name>" only
        node = name[len(resources.NODE_CONFIG) :]
        self._put(self._configs, name, config)
        self._config_keys(f"{HOST}/{node}", config, NODE_CONFIG_KEYS)
        port = config.listen_port if config else 0
        if port == self._node_ports.get(node, 0):
            return False, None
        if port:
            self._node_ports[node] = port
        else:
            del self._node_ports[node]
        return False, node

    def _config_keys(self, base: str, config: BGPConfiguration | None, names: tuple[str, ...]) -> None:
        fields: dict[str, str] = {}
        if config is not None:
            if config.as_num:
                fields["as_num"] = str(config.as_num)
            if config.node_mesh is not None:
                fields["node_mesh"] = '{"enabled":%s}' % ("true" if config.node_mesh else "false")
            if config.log_level:
                fields["loglevel"] = config.log_level
            if config.listen_port:
                fields["listen_port"] = str(config.listen_port)
            if config.advertisements is not None:
                v4, v6 = config.advertisements
                fields["prefix_advertisements/ip_v4"] = v4
                fields["prefix_advertisements/ip_v6"] = v6
        for name in names:
            key = f"{base}/{name}"
            self._set(key, fields.get(name, DEFAULTS.get(key)))

    # --- IP pools ----------------------------------------------------------------------

    def _put_pool(self, name: str, pool: Resource | None) -> None:
        assert pool is None or isinstance(pool, IPPool)
        old = self._put(self._pools, name, pool)
        for cidr, version in {(p.cidr, p.version) for p in (old, pool) if p is not None}:
            # Two pools with one CIDR: the lowest name wins, as in Calico.
            same = sorted((p.name, p.value) for p in self._pools.values() if p.cidr == cidr)
            key = f"/calico/v1/ipam/v{version}/pool/{cidr.replace('/', '-', 1)}"
            self._set(key, same[0][1] if same else None)
