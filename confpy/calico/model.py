"""Calico's BGP keys as typed, validated values.

Each ``parse_*`` function takes one store value (a :class:`StoreValue`, which knows its
full key) and returns a frozen object whose fields are safe to print into a BIRD file:
addresses, CIDRs and numbers in canonical form, free text already quoted. Anything
else raises :class:`DataError` naming the key and the field, e.g.
``key /calico/bgp/v1/global/peer_v4/10.0.0.1: as_num 'abc' is not an AS number``.

Both Calico eras are accepted: 2017 values (peers with only ``ip`` and ``as_num``,
pools without ``ipip_mode``, empty block values) get the defaults of the current
templates (spec sections 1.3-1.5 and 7).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from confpy import validate
from confpy.errors import DataError
from confpy.keyview import StoreValue, parse_json

T = TypeVar("T")

BGP = "/calico/bgp/v1"
GLOBAL = f"{BGP}/global"
HOST = f"{BGP}/host"

DEFAULT_AS = 64512
# TCP-MD5 keys are at most TCP_MD5SIG_MAXKEYLEN bytes in Linux.
MAX_PASSWORD_BYTES = 80
# The graceful-restart capability carries the restart time in 12 bits (RFC 4724).
MAX_RESTART_TIME = 4095
# Encapsulation modes as libcalico-go writes them; "" means "not set".
ENCAP_MODES = ("", "always", "cross-subnet")


@dataclass(frozen=True, slots=True)
class Family:
    """Where one address family keeps its keys, and what its addresses look like."""

    version: int  # 4 or 6
    suffix: str  # file names: bird{suffix}.cfg
    address_key: str  # per-node key holding the node's address
    peer_dir: str  # peer_v4 / peer_v6 under global/ and host/<node>/
    advertisement_key: str  # prefix_advertisements/<this>
    block_dir: str  # /calico/ipam/v2/host/<node>/<this>/block
    pool_dir: str
    static_dir: str
    reject_dir: str

    @property
    def host_prefix_len(self) -> int:
        return 32 if self.version == 4 else 128

    @property
    def channel(self) -> str:
        """BIRD 2's channel of this family: ``ipv4`` or ``ipv6``."""
        return f"ipv{self.version}"

    @property
    def tag(self) -> str:
        """``_v4``/``_v6``: BIRD 2 keeps both families in one file, so its names carry it."""
        return f"_v{self.version}"

    def address(self, key: str, value: object, field: str | None = None) -> str:
        """A canonical address of this family that BIRD accepts as a BGP neighbour or
        source: not unspecified, and (IPv6) not link-local, which BIRD refuses for the
        multihop sessions Calico uses."""
        check = validate.ipv4 if self.version == 4 else validate.ipv6
        text = checked(key, check, value, field)
        parsed = ipaddress.ip_address(text)
        if parsed.is_unspecified or (self.version == 6 and parsed.is_link_local):
            kind = "unspecified" if parsed.is_unspecified else "link-local"
            raise DataError(key, f"{_field(field)}{text} is {kind}: BIRD cannot use it for a BGP session")
        return text

    def cidr(self, key: str, value: object, field: str | None = None) -> str:
        return checked(key, lambda v: validate.cidr(v, self.version), value, field)

    def cidr_from_key(self, key: str, base: str) -> str:
        """The CIDR a key name stands for: ``<base>/192.168.0.0-16`` -> ``192.168.0.0/16``."""
        name = key[len(base) + 1 :]
        address, dash, length = name.rpartition("-")
        if not dash or "/" in name:
            raise DataError(key, f"{name!r} is not a CIDR key name (<address>-<prefix length>)")
        return self.cidr(key, f"{address}/{length}")


FAMILIES: Mapping[int, Family] = {
    4: Family(
        version=4,
        suffix="",
        address_key="ip_addr_v4",
        peer_dir="peer_v4",
        advertisement_key="ip_v4",
        block_dir="ipv4",
        pool_dir="/calico/v1/ipam/v4/pool",
        static_dir="/calico/staticroutes",
        reject_dir="/calico/rejectcidrs",
    ),
    6: Family(
        version=6,
        suffix="6",
        address_key="ip_addr_v6",
        peer_dir="peer_v6",
        advertisement_key="ip_v6",
        block_dir="ipv6",
        pool_dir="/calico/v1/ipam/v6/pool",
        static_dir="/calico/staticroutesv6",
        reject_dir="/calico/rejectcidrsv6",
    ),
}


# --- helpers -------------------------------------------------------------------------


def _field(field: str | None) -> str:
    return f"{field} " if field else ""


def checked(key: str, check: Callable[[Any], T], value: object, field: str | None = None) -> T:
    """``check(value)``, with a ValueError turned into a DataError naming key and field."""
    try:
        return check(value)
    except ValueError as exc:
        raise DataError(key, f"{_field(field)}{exc}") from None


def json_object(value: StoreValue) -> dict[str, Any]:
    parsed = parse_json(value)
    if not isinstance(parsed, dict):
        raise DataError(value.key, f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


def optional_string(key: str, obj: Mapping[str, Any], field: str, default: str = "") -> str:
    """A JSON string field; missing or null gives ``default``."""
    value = obj.get(field)
    if value is None:
        return default
    if not isinstance(value, str):
        raise DataError(key, f"{field} {value!r} is not a string")
    return value


def one_of(key: str, field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise DataError(key, f"{field} {value!r} is not one of {choices}")
    return value


# --- typed values --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Peer:
    """One ``peer_v4``/``peer_v6`` value (spec 1.4), defaults applied."""

    key: str
    ip: str
    as_num: int
    rr_cluster_id: str  # "" or a dotted quad
    password: str | None  # a BIRD string literal, quotes included
    use_node_ip: bool  # source_addr "UseNodeIP": bind the session to the node address
    port: int | None  # None: BGP's default port
    keep_next_hop: bool
    restart_time: int | None  # graceful-restart time in seconds; None: BIRD's default

    @property
    def protocol_id(self) -> str:
        """``10_192_0_4_port_166``: the part of Calico's protocol name after ``Global_``/``Node_``."""
        return symbol_part(self.ip) + (f"_port_{self.port}" if self.port else "")


def symbol_part(address: str) -> str:
    """A canonical address as part of a BIRD symbol: ``.`` and ``:`` become ``_``."""
    return address.replace(".", "_").replace(":", "_")


def parse_peer(value: StoreValue, family: Family) -> Peer:
    key = value.key
    obj = json_object(value)
    if obj.get("ip") is None:
        raise DataError(key, "ip is missing")
    if obj.get("as_num") is None:
        raise DataError(key, "as_num is missing")
    rr_cluster_id = optional_string(key, obj, "rr_cluster_id")
    password = optional_string(key, obj, "password")
    source = optional_string(key, obj, "source_addr", "UseNodeIP")
    one_of(key, "source_addr", source, ("UseNodeIP", "None"))
    port = obj.get("port") or 0  # null, 0 and "0" all mean BGP's default port
    keep_next_hop = obj.get("keep_next_hop", False)
    if not isinstance(keep_next_hop, bool | None):
        raise DataError(key, f"keep_next_hop {keep_next_hop!r} is not true or false")
    restart_time = obj.get("restart_time")
    return Peer(
        key=key,
        ip=family.address(key, obj["ip"], "ip"),
        as_num=checked(key, validate.asn, obj["as_num"], "as_num"),
        rr_cluster_id=rr_cluster_id and checked(key, validate.cluster_id, rr_cluster_id, "rr_cluster_id"),
        password=checked(key, _password, password, "password") if password else None,
        use_node_ip=source == "UseNodeIP",
        port=None if port in (0, "0") else checked(key, validate.port, port, "port"),
        keep_next_hop=bool(keep_next_hop),
        restart_time=(
            None if restart_time in (None, "") else checked(key, _restart_time, restart_time, "restart_time")
        ),
    )


def _password(value: str) -> str:
    return validate.bird_string(value, MAX_PASSWORD_BYTES)


def _restart_time(value: object) -> int:
    return validate.integer(value, "a graceful-restart time in seconds", 0, MAX_RESTART_TIME)


@dataclass(frozen=True, slots=True)
class Pool:
    """One IP pool (spec 1.3). ``tunnel`` is a BIRD string literal (``""`` for no IPIP)."""

    cidr: str
    tunnel: str
    ipip_mode: str  # "", "always" or "cross-subnet"
    vxlan_mode: str  # "", "always" or "cross-subnet"

    @property
    def kernel_action(self) -> str:
        """What the kernel filter does with routes inside the pool (spec section 4):
        ``reject`` (VXLAN: Felix programs them), ``cross-subnet`` (tunnel only toward
        other subnets) or ``tunnel`` (always set the tunnel, possibly to none)."""
        if self.vxlan_mode:
            return "reject"
        return "cross-subnet" if self.ipip_mode == "cross-subnet" else "tunnel"

    @property
    def has_tunnel(self) -> bool:
        """The pool names an IPIP device (``tunnel`` is not the empty literal)."""
        return self.tunnel != '""'


def parse_pool(value: StoreValue, family: Family) -> Pool:
    key = value.key
    obj = json_object(value)
    if obj.get("cidr") is None:
        raise DataError(key, "cidr is missing")
    ipip = optional_string(key, obj, "ipip")
    if ipip:
        checked(key, validate.interface_name, ipip, "ipip")
    return Pool(
        cidr=family.cidr(key, obj["cidr"], "cidr"),
        tunnel=validate.bird_string(ipip),
        ipip_mode=one_of(key, "ipip_mode", optional_string(key, obj, "ipip_mode"), ENCAP_MODES),
        vxlan_mode=one_of(key, "vxlan_mode", optional_string(key, obj, "vxlan_mode"), ENCAP_MODES),
    )


@dataclass(frozen=True, slots=True)
class Block:
    """An IPAM block affine to this node (spec 1.5)."""

    cidr: str
    confirmed: bool  # state "" or "confirmed"; Calico treats every other state as pending


def parse_block(value: StoreValue, base: str, family: Family) -> Block:
    cidr = family.cidr_from_key(value.key, base)
    if not value.strip():  # 2017: the value was not used and often empty
        return Block(cidr, confirmed=True)
    obj = json_object(value)
    state = optional_string(value.key, obj, "state")
    return Block(cidr, confirmed=state in ("", "confirmed"))


@dataclass(frozen=True, slots=True)
class Community:
    values: tuple[int, ...]

    @property
    def attribute(self) -> str:
        """BIRD's route attribute for this kind: ``a:b`` standard, ``a:b:c`` large (RFC 8092)."""
        return "bgp_community" if len(self.values) == 2 else "bgp_large_community"


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One entry of ``prefix_advertisements/ip_v4``: communities added to routes in ``cidr``."""

    cidr: str
    communities: tuple[Community, ...]


def parse_advertisements(value: StoreValue, family: Family) -> list[Advertisement]:
    key = value.key
    entries = parse_json(value)
    if entries is None:
        return []  # Calico's confd writes null for a family without advertisements
    if not isinstance(entries, list):
        raise DataError(key, f"expected a JSON array, got {type(entries).__name__}")
    out = []
    for i, entry in enumerate(entries):
        where = f"[{i}]"
        if not isinstance(entry, dict):
            raise DataError(key, f"{where} is not a JSON object")
        communities = entry.get("communities") or []
        if not isinstance(communities, list):
            raise DataError(key, f"{where}.communities is not a JSON array")
        cidr = family.cidr(key, entry.get("cidr"), f"{where}.cidr")
        parsed = (checked(key, validate.community, c, f"{where}.communities") for c in communities)
        out.append(Advertisement(cidr, tuple(Community(c) for c in parsed)))
    return out
