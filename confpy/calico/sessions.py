"""BGP sessions: the node-to-node mesh and the configured peers (spec sections 3.1-3.2).

Pure functions over what :class:`~confpy.calico.context.BirdContext` has read and
validated: which neighbours get a session, which side dials, which AS and port, and
when this node reflects routes for a peer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from confpy import validate
from confpy.calico.model import HOST, Family, checked, parse_peer, symbol_part
from confpy.errors import DataError
from confpy.keyview import StoreValue


@dataclass(frozen=True, slots=True)
class Session:
    """One ``protocol bgp`` block, built from the ``bgp_template``."""

    name: str
    neighbor: str
    as_num: int
    port: int | None = None
    source_address: str | None = None
    passive: bool = False
    restart_time: int | None = None
    rr_cluster_id: str | None = None  # set: we are this peer's route reflector
    password: str | None = None  # a BIRD string literal
    keep_next_hop: bool = False
    node: str | None = None  # mesh sessions: the neighbour's node name


@dataclass(frozen=True, slots=True)
class Neighbour:
    """Another node's keys that its mesh session needs."""

    name: str
    raw_address: str  # as stored: the passive side is chosen by comparing these strings
    address: str
    as_num: int | None
    listen_port: int | None


@dataclass(frozen=True, slots=True)
class Local:
    """This node, as its sessions need it."""

    address: str | None  # None: no address in this family
    raw_address: str
    as_num: int  # the node's AS, else the global one
    global_as: int
    global_listen_port: int | None
    rr_cluster_id: str  # "" unless this node is a route reflector


def read_neighbours(
    items: Iterable[tuple[str, StoreValue]], family: Family
) -> tuple[list[Neighbour], list[str]]:
    """Every node under ``/host`` with an address key in this family, by name, in one pass
    over ``items`` (the keys under ``/host``); only the fields a mesh session prints are
    parsed. Also the names of nodes whose address key is empty (they get a comment)."""
    wanted = (family.address_key, "as_num", "listen_port")
    fields: dict[str, dict[str, StoreValue]] = {}
    cut = len(HOST) + 1
    for key, value in items:
        name, _, rest = key[cut:].partition("/")
        if rest in wanted:
            fields.setdefault(name, {})[rest] = value
    neighbours, unaddressed = [], []
    for name in sorted(fields):
        keys = fields[name]
        raw = keys.get(family.address_key)
        if raw is None:
            continue
        checked(f"{HOST}/{name}", validate.node_name, name)
        if not raw:
            unaddressed.append(name)
            continue
        neighbours.append(
            Neighbour(
                name=name,
                raw_address=str(raw),
                address=family.address(raw.key, raw),
                as_num=_optional(validate.asn, keys.get("as_num")),
                listen_port=_optional(validate.port, keys.get("listen_port")),
            )
        )
    return neighbours, unaddressed


def _optional(check: Callable[[object], int], value: StoreValue | None) -> int | None:
    return None if not value else checked(value.key, check, value)


def mesh_sessions(neighbours: Iterable[Neighbour], local: Local, family: Family) -> list[Session]:
    """One session per other node, by node name.

    "Other" means another address (Calico compares addresses, not names). Exactly
    one side of each pair dials: the node whose address *string* sorts lower;
    ``172.29.141.100`` < ``172.29.141.95``, as in Calico, so mixed clusters agree.
    """
    sessions = []
    owners: dict[str, str] = {}
    for n in neighbours:
        if n.address == local.address:
            continue
        if n.address in owners:
            key = f"{HOST}/{n.name}/{family.address_key}"
            raise DataError(key, f"{n.address} is also the address of node {owners[n.address]}")
        owners[n.address] = n.name
        sessions.append(
            Session(
                name=f"Mesh_{symbol_part(n.address)}",
                neighbor=n.address,
                port=n.listen_port or local.global_listen_port,
                as_num=n.as_num or local.global_as,
                source_address=local.address,
                passive=n.raw_address > local.raw_address,
                node=n.name,
            )
        )
    return sessions


def peer_sessions(values: Iterator[StoreValue], local: Local, family: Family, kind: str) -> list[Session]:
    """Sessions for peer keys (spec 3.2), in key order; a peer at our own address is skipped.
    ``kind`` is ``Global`` or ``Node``, the first part of the protocol name."""
    sessions = []
    defined: dict[str, str] = {}
    for value in values:
        peer = parse_peer(value, family)
        if peer.ip == local.address:
            continue
        name = f"{kind}_{peer.protocol_id}"
        if name in defined:
            port = peer.port or "default"
            raise DataError(peer.key, f"peer {peer.ip} port {port} is also configured by {defined[name]}")
        defined[name] = peer.key
        same_as = peer.as_num == local.as_num
        reflect = same_as and local.rr_cluster_id and peer.rr_cluster_id != local.rr_cluster_id
        sessions.append(
            Session(
                name=name,
                neighbor=peer.ip,
                port=peer.port,
                as_num=peer.as_num,
                source_address=local.address if peer.use_node_ip else None,
                restart_time=peer.restart_time,
                rr_cluster_id=local.rr_cluster_id if reflect else None,
                password=peer.password,
                keep_next_hop=peer.keep_next_hop and not same_as,
            )
        )
    return sessions
