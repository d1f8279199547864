"""The four Calico 3 resources the BGP configuration comes from, as typed values.

Calico's etcdv3 backend stores each resource as JSON (``kind``, ``apiVersion``,
``metadata``, ``spec``) at ``/calico/resources/v3/projectcalico.org/<plural>/<name>``.
:func:`parse` reads one such value; a value that is not JSON, a field of the wrong type
or a setting confpy's templates cannot express raises :class:`DataError` naming the
etcd key and the field. Unknown fields are ignored, as Calico's JSON decoding does.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confpy import validate
from confpy.calico.v3 import selector
from confpy.calico.v3.fields import Fields
from confpy.duration import parse_duration
from confpy.errors import DataError

PREFIX = "/calico/resources/v3/projectcalico.org"
NODES, PEERS, CONFIGS, POOLS = "nodes", "bgppeers", "bgpconfigurations", "ippools"
PLURALS = (NODES, PEERS, CONFIGS, POOLS)
GLOBAL_CONFIG = "default"
NODE_CONFIG = "node."  # BGPConfiguration "node.<node name>": per-node settings

_NEEDS_KUBERNETES = "needs Kubernetes (a secret), which confpy does not read"
_NOT_RENDERED = "not supported: confpy's BIRD templates cannot express it"


def split_key(key: str) -> tuple[str, str] | None:
    """``(plural, name)`` of a resource key of one of the four kinds, else None."""
    if not key.startswith(PREFIX + "/"):
        return None
    plural, _, name = key[len(PREFIX) + 1 :].partition("/")
    if plural not in PLURALS or not name or "/" in name:
        return None  # these kinds are not namespaced: a deeper key is not one of them
    return plural, name


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: Mapping[str, str]
    ipv4: str  # "" when the node has no IPv4 BGP address
    network_v4: str | None
    ipv6: str
    network_v6: str | None
    as_num: int | None
    rr_cluster_id: str  # "" unless a route reflector


@dataclass(frozen=True, slots=True)
class BGPPeer:
    name: str
    node: str
    node_selector: selector.Selector | None
    peer_host: str  # peerIP's address as written ("" with a peerSelector): Calico matches nodes on it
    peer_ip: str  # the same address in canonical form: the v1 keys use it
    peer_port: int  # from peerIP "<ip>:<port>", else 0
    as_num: int  # 0: not set
    peer_selector: selector.Selector | None
    keep_next_hop: bool
    source_address: str  # "UseNodeIP" or "None"
    restart_time: str  # graceful-restart seconds as text, "" when not set
    automatic_reverse: bool  # reversePeering is not "Manual"

    @property
    def is_global(self) -> bool:
        """No node and no node selector: a peering of every node."""
        return not self.node and self.node_selector is None


@dataclass(frozen=True, slots=True)
class BGPConfiguration:
    name: str
    as_num: int | None
    node_mesh: bool | None
    log_level: str  # "" when not set, else debug, info or none
    listen_port: int  # 0 when not set
    advertisements: tuple[str, str] | None  # the ip_v4 and ip_v6 JSON values; None when not set


@dataclass(frozen=True, slots=True)
class IPPool:
    name: str
    cidr: str  # the network, canonical
    version: int
    value: str  # the v1 pool JSON


Resource = Node | BGPPeer | BGPConfiguration | IPPool


def parse(key: str, value: str) -> Resource:
    """The resource stored at ``key`` (a key :func:`split_key` accepts)."""
    where = split_key(key)
    assert where is not None, key
    plural, name = where
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise DataError(key, f"not a JSON resource: {exc}") from None
    doc = Fields(key, obj)
    if plural == NODES:
        return _node(name, doc)
    if plural == PEERS:
        return _peer(name, doc.child("spec"))
    if plural == CONFIGS:
        return _config(name, doc.child("spec"))
    return _pool(name, doc.child("spec"))


# --- Node ------------------------------------------------------------------------------


def _node(name: str, doc: Fields) -> Node:
    bgp = doc.child("spec").child("bgp")
    ipv4, net4 = _address(bgp, "ipv4Address", 4)
    ipv6, net6 = _address(bgp, "ipv6Address", 6)
    cluster_id = bgp.string("routeReflectorClusterID")
    if cluster_id:
        bgp.checked("routeReflectorClusterID", validate.cluster_id, cluster_id)
    return Node(
        name=name,
        labels=doc.child("metadata").strings("labels"),
        ipv4=ipv4,
        network_v4=net4,
        ipv6=ipv6,
        network_v6=net6,
        as_num=bgp.asn("asNumber") or None,
        rr_cluster_id=cluster_id,
    )


def _address(bgp: Fields, name: str, version: int) -> tuple[str, str | None]:
    """``10.0.0.5/24`` -> (``10.0.0.5``, ``10.0.0.0/24``); a bare address has a host-length
    network, as in Calico. ("", None) when not set."""
    text = bgp.string(name)
    if not text:
        return "", None
    try:
        if "%" in text:
            raise ValueError
        interface = ipaddress.ip_interface(text)
    except ValueError:
        raise bgp.error(name, f"{text!r} is not an address or address/prefix length") from None
    if interface.version != version:
        raise bgp.error(name, f"{text!r} is not an IPv{version} address")
    return str(interface.ip), str(interface.network)


# --- BGPPeer ---------------------------------------------------------------------------


def _peer(name: str, spec: Fields) -> BGPPeer:
    for field, allowed in (
        ("localASNumber", lambda v: v in (0, "0")),
        ("nextHopMode", lambda v: v == "Auto"),
        ("ttlSecurity", lambda v: v == 0),
        ("keepaliveTime", lambda v: False),
        ("numAllowedLocalASNumbers", lambda v: v == 0),
        ("reachableBy", lambda v: not v),
        ("filters", lambda v: not v),
        ("localWorkloadSelector", lambda v: not v),
    ):
        spec.unsupported(field, _NOT_RENDERED, allowed)
    spec.child("password").unsupported("secretKeyRef", _NEEDS_KUBERNETES)
    node, node_selector = spec.string("node"), _selector(spec, "nodeSelector")
    peer_ip, peer_selector = spec.string("peerIP"), _selector(spec, "peerSelector")
    as_num = spec.asn("asNumber")
    if node and node_selector is not None:
        raise spec.error("nodeSelector", "node and nodeSelector cannot both be set")
    if peer_selector is not None:
        if peer_ip:
            raise spec.error("peerSelector", "peerIP and peerSelector cannot both be set")
        if as_num:
            raise spec.error("asNumber", "must be empty with a peerSelector (the peers' own AS is used)")
        host, canonical, port = "", "", 0
    elif not peer_ip:
        raise spec.error("peerIP", "a peer needs a peerIP or a peerSelector")
    else:
        host, port = _split_host_port(peer_ip)
        canonical = spec.checked("peerIP", validate.ip, host)
        if not as_num:
            raise spec.error("asNumber", "a peer given by peerIP needs its AS number")
    source = spec.string("sourceAddress") or "UseNodeIP"
    if source not in ("UseNodeIP", "None"):
        raise spec.error("sourceAddress", f"{source!r} is not UseNodeIP or None")
    reverse = spec.string("reversePeering") or "Auto"
    if reverse not in ("Auto", "Manual"):
        raise spec.error("reversePeering", f"{reverse!r} is not Auto or Manual")
    return BGPPeer(
        name=name,
        node=spec.checked("node", validate.node_name, node) if node else "",
        node_selector=node_selector,
        peer_host=host,
        peer_ip=canonical,
        peer_port=port,
        as_num=as_num,
        peer_selector=peer_selector,
        keep_next_hop=spec.boolean("keepOriginalNextHop"),
        source_address=source,
        restart_time=_seconds(spec, "maxRestartTime"),
        automatic_reverse=reverse == "Auto",
    )


def _selector(spec: Fields, name: str) -> selector.Selector | None:
    text = spec.string(name)
    return spec.checked(name, selector.parse, text) if text else None


def _split_host_port(text: str) -> tuple[str, int]:
    """Go's ``net.SplitHostPort`` as Calico uses it: ``10.0.0.1:1790`` and ``[fd00::1]:1790``
    carry a port; anything else (``10.0.0.1``, ``fd00::1``) is an address alone."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if bracket and rest.startswith(":") and rest[1:].isdigit() and int(rest[1:]) <= 65535:
            return host, int(rest[1:])
        return text, 0
    host, colon, port = text.rpartition(":")
    if colon and ":" not in host and port.isdigit() and int(port) <= 65535:
        return host, int(port)
    return text, 0


def _seconds(spec: Fields, name: str) -> str:
    """A Go duration (``120s``, ``2m``) as whole seconds, rounded half away from zero."""
    text = spec.string(name)
    if not text:
        return ""
    seconds = spec.checked(name, parse_duration, text)
    return str(math.floor(seconds + 0.5))


# --- BGPConfiguration ------------------------------------------------------------------


def _config(name: str, spec: Fields) -> BGPConfiguration:
    for field in ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs"):
        spec.unsupported(field, "service advertisement needs Kubernetes; not supported by confpy")
    spec.unsupported("nodeMeshPassword", _NEEDS_KUBERNETES)
    spec.unsupported("bindMode", _NOT_RENDERED, lambda v: v == "None")
    for field in ("nodeMeshMaxRestartTime", "ignoredInterfaces", "localWorkloadPeeringIPV4",
                  "localWorkloadPeeringIPV6"):  # fmt: skip
        spec.unsupported(field, _NOT_RENDERED)
    level = spec.string("logSeverityScreen").lower()
    return BGPConfiguration(
        name=name,
        as_num=spec.asn("asNumber") or None,
        node_mesh=spec.boolean("nodeToNodeMeshEnabled") if spec.has("nodeToNodeMeshEnabled") else None,
        # BIRD knows debug, info and none; Calico folds every other severity into none.
        log_level=level if level in ("", "debug", "info") else "none",
        listen_port=spec.integer("listenPort", 1, 65535),
        advertisements=_advertisements(spec) if spec.has("prefixAdvertisements") else None,
    )


def _advertisements(spec: Fields) -> tuple[str, str]:
    """``prefixAdvertisements`` as the v1 ``ip_v4`` and ``ip_v6`` values. A community is
    ``a:b``, ``a:b:c`` or the name of one of ``spec.communities``; each entry's are
    de-duplicated and sorted as strings. A family without entries is JSON ``null``."""
    named: dict[str, str] = {}
    for community in spec.objects("communities"):
        value = community.string("value")
        community.checked("value", validate.community, value)
        named[community.string("name")] = value
    families: dict[int, list[dict[str, Any]]] = {4: [], 6: []}
    for ad in spec.objects("prefixAdvertisements"):
        cidr = ad.string("cidr")
        found = set()
        for path, item in ad.items("communities"):
            if not isinstance(item, str):
                raise DataError(spec.key, f"{path}: {item!r} is not a string")
            literal = _is_community(item)
            if not literal and item not in named:
                raise DataError(spec.key, f"{path}: {item!r}: no such community in spec.communities")
            found.add(item if literal else named[item])
        families[6 if ":" in cidr else 4].append({"cidr": cidr, "communities": sorted(found) or None})
    v4, v6 = (json.dumps(families[f] or None, separators=(",", ":")) for f in (4, 6))
    return v4, v6


def _is_community(text: str) -> bool:
    parts = text.split(":")
    return len(parts) in (2, 3) and all(p.isascii() and p.isdigit() for p in parts)


# --- IPPool ----------------------------------------------------------------------------

_ENCAP = {"Always": "always", "CrossSubnet": "cross-subnet", "Never": "", "": ""}


def _pool(name: str, spec: Fields) -> IPPool:
    spec.unsupported("disableBGPExport", _NOT_RENDERED)
    text = spec.string("cidr")
    if not text:
        raise spec.error("cidr", "missing")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise spec.error("cidr", f"{text!r} is not a CIDR") from None
    modes = {}
    for field in ("ipipMode", "vxlanMode"):
        mode = spec.string(field)
        if mode not in _ENCAP:
            raise spec.error(field, f"{mode!r} is not Always, CrossSubnet or Never")
        modes[field] = _ENCAP[mode]
    disabled = spec.boolean("disabled")
    value = {
        "cidr": str(network),
        "ipip": "tunl0" if modes["ipipMode"] else "",  # Calico's IPIP device, whatever the mode
        "ipip_mode": modes["ipipMode"],
        "vxlan_mode": modes["vxlanMode"],
        "masquerade": spec.boolean("natOutgoing"),
        "ipam": not disabled,
        "disabled": disabled,
        "disableBGPExport": False,
    }
    return IPPool(name, str(network), network.version, json.dumps(value, separators=(",", ":")))
