"""What the BIRD templates print: every decision of Calico's templates, taken in Python.

One :class:`BirdContext` serves the three files of one address family (``bird.cfg``,
``bird_ipam.cfg``, ``bird_aggr.cfg`` or their ``6`` twins). Each resource sees only the
keys it watches, so every part is a cached property built on first use: rendering
``bird_aggr.cfg`` reads the node's blocks and nothing else, and a 1,000-node mesh is
parsed only by the template that prints it.

The rules are those of spec sections 3-7 (Calico's current templates, with the
defaults confpy adds for 2017-shaped data); each property says which.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import cached_property

from confpy import validate
from confpy.calico.flavor import SettingError, flavor
from confpy.calico.model import (
    DEFAULT_AS,
    FAMILIES,
    GLOBAL,
    HOST,
    Advertisement,
    Block,
    Family,
    Pool,
    checked,
    json_object,
    parse_advertisements,
    parse_block,
    parse_pool,
)
from confpy.calico.sessions import Local, Neighbour, Session, mesh_sessions, peer_sessions, read_neighbours
from confpy.errors import DataError
from confpy.funcs import hash_to_ipv4
from confpy.keyview import KeyView, StoreValue


class BirdContext:
    """The typed view of the Calico keys for one node and address family."""

    def __init__(self, view: KeyView, node_name: str, family: Family, environ: Mapping[str, str]) -> None:
        self._view = view
        self._node_name = node_name
        self.family = family
        self._environ = environ

    @property
    def version(self) -> int:
        return self.family.version

    @property
    def suffix(self) -> str:
        """``""`` or ``"6"``: the files are bird{suffix}.cfg, bird{suffix}_ipam.cfg, ..."""
        return self.family.suffix

    @cached_property
    def node(self) -> str:
        """This node's name; it is printed in comments and builds keys, so it is checked."""
        return checked(f"{HOST}/{self._node_name}", validate.node_name, self._node_name)

    # --- reading keys ----------------------------------------------------------------

    def _value(self, full_key: str) -> StoreValue | None:
        """The value at ``full_key``; an absent key and an empty value both give None
        (Calico writes some optional keys empty, 2017 data leaves them out)."""
        value = self._view.lookup_full(full_key)
        return value if value else None

    def _own(self, name: str) -> StoreValue | None:
        return self._value(f"{HOST}/{self.node}/{name}")

    def _children(self, base: str) -> Iterator[StoreValue]:
        """Values of the immediate children of ``base``, sorted by key (confd's ``ls``)."""
        depth = base.count("/") + 1
        for key, value in self._view.items_under_full(base):
            if key.count("/") == depth:
                yield value

    def _cidrs(self, base: str) -> list[str]:
        """CIDRs named by the keys under ``base`` (static routes, reject CIDRs)."""
        return [self.family.cidr_from_key(v.key, base) for v in self._children(base)]

    def _optional_asn(self, value: StoreValue | None) -> int | None:
        return None if value is None else checked(value.key, validate.asn, value)

    def _optional_port(self, value: StoreValue | None) -> int | None:
        return None if value is None else checked(value.key, validate.port, value)

    # --- global settings (defaults of spec section 7) --------------------------------

    @cached_property
    def global_as(self) -> int:
        return self._optional_asn(self._value(f"{GLOBAL}/as_num")) or DEFAULT_AS

    @cached_property
    def mesh_enabled(self) -> bool:
        value = self._value(f"{GLOBAL}/node_mesh")
        if value is None:
            return True
        enabled = json_object(value).get("enabled")
        if not isinstance(enabled, bool):
            raise DataError(value.key, f"enabled {enabled!r} is not true or false")
        return enabled

    @cached_property
    def global_listen_port(self) -> int | None:
        return self._optional_port(self._value(f"{GLOBAL}/listen_port"))

    # --- this node (bird.cfg) ------------------------------------------------------------

    @cached_property
    def _raw_address(self) -> StoreValue | None:
        return self._own(self.family.address_key)

    @cached_property
    def address(self) -> str | None:
        """This node's address in this family; None when absent or empty: the family
        is disabled here and the main file stops after the direct protocol."""
        raw = self._raw_address
        return None if raw is None else self.family.address(raw.key, raw)

    @cached_property
    def local_as(self) -> int:
        return self._optional_asn(self._own("as_num")) or self.global_as

    @cached_property
    def rr_cluster_id(self) -> str:
        """This node's route-reflector cluster id, "" when it is not a reflector."""
        value = self._own("rr_cluster_id")
        return "" if value is None else checked(value.key, validate.cluster_id, value)

    @cached_property
    def listen_port(self) -> int | None:
        return self._optional_port(self._own("listen_port")) or self.global_listen_port

    @cached_property
    def debug(self) -> str:
        """The logging statement of device, direct and the BGP template (spec 3):
        the node's loglevel, else the global one, else info."""
        value = self._own("loglevel") or self._value(f"{GLOBAL}/loglevel")
        level = "info" if value is None else checked(value.key, validate.log_level, value)
        return {"debug": "debug all;", "none": ""}.get(level, "debug { states };")

    @cached_property
    def router_id(self) -> str:
        """CALICO_ROUTER_ID ("hash": derived from the node name), else the node's IPv4
        address, also for bird6: a router id is 32 bits. Never empty: BIRD would
        reject ``router id ;`` and Calico would write it anyway."""
        setting = self._environ.get("CALICO_ROUTER_ID", "")
        if setting == "hash":
            return hash_to_ipv4(self.node)
        if setting:
            try:
                return _router_id(setting)
            except ValueError as exc:
                raise SettingError("CALICO_ROUTER_ID", str(exc)) from None
        key = f"{HOST}/{self.node}/{FAMILIES[4].address_key}"
        value = self._value(key)
        if value is None:
            raise DataError(key, "missing or empty, and CALICO_ROUTER_ID is not set: no router id for BIRD")
        return checked(key, _router_id, value)

    @cached_property
    def advertisements(self) -> list[Advertisement]:
        """Communities to tag routes with: this node's list if it has one, else the global one."""
        name = f"prefix_advertisements/{self.family.advertisement_key}"
        value = self._own(name) or self._value(f"{GLOBAL}/{name}")
        return [] if value is None else parse_advertisements(value, self.family)

    # --- BGP sessions ----------------------------------------------------------------

    @cached_property
    def mesh_note(self) -> str | None:
        """Why there is no mesh, or None when there is one."""
        if not self.mesh_enabled:
            return "node-to-node mesh disabled"
        if self.version == 6 and self.rr_cluster_id:
            # Calico's bird6 template skips the mesh on route reflectors; its IPv4 one does not.
            return f"this node is a route reflector (cluster id {self.rr_cluster_id}): no IPv6 mesh"
        return None

    @cached_property
    def _local(self) -> Local:
        return Local(
            address=self.address,
            raw_address=str(self._raw_address),
            as_num=self.local_as,
            global_as=self.global_as,
            global_listen_port=self.global_listen_port,
            rr_cluster_id=self.rr_cluster_id,
        )

    @cached_property
    def _neighbours(self) -> tuple[list[Neighbour], list[str]]:
        return read_neighbours(self._view.items_under_full(HOST), self.family)

    @cached_property
    def mesh(self) -> list[Session]:
        """One session per other node with an address in this family (sessions.py)."""
        if self.mesh_note or self.address is None:
            return []
        return mesh_sessions(self._neighbours[0], self._local, self.family)

    @cached_property
    def nodes_without_address(self) -> list[str]:
        """Nodes whose address key in this family is empty (they get a comment)."""
        if self.mesh_note or self.address is None:
            return []
        return self._neighbours[1]

    @cached_property
    def global_peers(self) -> list[Session]:
        return self._peers(f"{GLOBAL}/{self.family.peer_dir}", "Global")

    @cached_property
    def node_peers(self) -> list[Session]:
        return self._peers(f"{HOST}/{self.node}/{self.family.peer_dir}", "Node")

    def _peers(self, base: str, kind: str) -> list[Session]:
        return peer_sessions(self._children(base), self._local, self.family, kind)

    # --- pools, static routes, reject CIDRs (bird_ipam.cfg) ----------------------------

    @cached_property
    def flavor(self) -> str:
        """``calico`` (Calico's BIRD build) or ``stock`` (Debian's BIRD): flavor.py."""
        return flavor(self._environ)

    @cached_property
    def declare_krt_tunnel(self) -> bool:
        """Stock BIRD has no ``krt_tunnel`` route attribute; the IPv4 kernel filter then
        declares a local variable of that name so the assignments parse. They change
        nothing: no tunnel is programmed and pool routes go to the kernel via their
        BGP next hop, unencapsulated; that works only when the nodes share a subnet
        or the network between them routes pod addresses."""
        return self.version == 4 and self.flavor == "stock"

    @cached_property
    def pools(self) -> list[Pool]:
        return [parse_pool(v, self.family) for v in self._children(self.family.pool_dir)]

    @cached_property
    def static_routes(self) -> list[str]:
        """Service CIDRs to originate and announce (Calico's in-memory keys, spec 1.6)."""
        return self._cidrs(self.family.static_dir)

    @cached_property
    def reject_cidrs(self) -> list[str]:
        """Learned routes inside these are never installed into the kernel."""
        return self._cidrs(self.family.reject_dir)

    @cached_property
    def network(self) -> str | None:
        """This node's IPv4 subnet: the cross-subnet IPIP test. IPv6 has no tunnels."""
        if self.version == 6:
            return None
        value = self._own("network_v4")
        return None if value is None else self.family.cidr(value.key, value)

    @cached_property
    def kernel_pools(self) -> list[Pool]:
        """Pools that get a rule in the kernel filter: none unless the node's subnet is
        known (as in Calico), and none for IPv6."""
        return self.pools if self.network else []

    # --- this node's blocks (bird_aggr.cfg) --------------------------------------------

    @cached_property
    def blocks(self) -> list[Block]:
        base = f"/calico/ipam/v2/host/{self.node}/{self.family.block_dir}/block"
        return [parse_block(v, base, self.family) for v in self._children(base)]

    @cached_property
    def blackholes(self) -> list[str]:
        """Routes of the static protocol: every block whatever its state, except
        single-address blocks (a /32 blackhole broke IPAM), then the static routes."""
        host = f"/{self.family.host_prefix_len}"
        return [b.cidr for b in self.blocks if not b.cidr.endswith(host)] + self.static_routes

    @cached_property
    def aggregates(self) -> list[str]:
        """Blocks announced whole by ``calico_aggr``: the confirmed ones (/32 included)."""
        return [b.cidr for b in self.blocks if b.confirmed]

    @cached_property
    def pending_blocks(self) -> list[str]:
        return [b.cidr for b in self.blocks if not b.confirmed]


def _router_id(value: object) -> str:
    text = validate.ipv4(value)
    if text == "0.0.0.0":
        raise ValueError("router id 0.0.0.0 is not allowed (a BGP identifier is non-zero)")
    return text


def build_context(
    view: KeyView, node_name: str, family: int = 4, environ: Mapping[str, str] | None = None
) -> BirdContext:
    """The context behind the ``calico(family)`` template function (4 or 6)."""
    if family not in FAMILIES:
        raise ValueError(f"address family must be 4 or 6, not {family!r}")
    return BirdContext(view, node_name, FAMILIES[family], os.environ if environ is None else environ)
