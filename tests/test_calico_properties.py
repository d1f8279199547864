"""Property: any cluster gives a file set that BIRD parses, or an error naming a key.

Random clusters: 1-60 nodes, 0-10 peers, 0-4 pools per family, random blocks, mesh on
or off, route reflectors, optional keys left out, and now and then a value that is
not valid (an address of the wrong kind, a password with a quote, ...). Each one is
rendered for one of its nodes with each template set and checked by its BIRD: the
BIRD 1.6 set (stock flavour) with ``bird -p`` and ``bird6 -p``, the BIRD 2 set with
BIRD 2's ``bird -p``. A render may fail, but only with a RenderError naming a store key or an
environment variable; a rendered set that BIRD rejects is a bug.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from confpy.errors import RenderError
from tests.support.birdset import BirdSet, TemplateSet, check_set
from tests.support.set_params import checked_sets

G = "/calico/bgp/v1/global"
H = "/calico/bgp/v1/host"

pytestmark = pytest.mark.bird


# Small address spaces, so that nodes and peers collide now and then, plus any
# address BIRD can use for a session.
def _usable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (address.is_unspecified or (address.version == 6 and address.is_link_local))


def _addresses(version: int) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return st.ip_addresses(v=4) if version == 4 else st.ip_addresses(v=6)


def _any(version: int) -> st.SearchStrategy[str]:
    fallback = "10.0.0.99" if version == 4 else "fd00::99"
    return _addresses(version).map(lambda a: str(a) if _usable(a) else fallback)


ipv4 = st.integers(1, 40).map(lambda i: f"10.0.0.{i}") | _any(4)
ipv6 = st.integers(1, 40).map(lambda i: f"fd00::{i:x}") | _any(6)
asn = st.integers(1, 4294967295).map(str) | st.sampled_from(["64512", "65000"])
# Passwords: any printable text BIRD can hold in a string (no quote, backslash or control).
password = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"),
                                 blacklist_characters='"\\'), min_size=1, max_size=20)  # fmt: skip


def network(version: int, low: int, high: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda a, n: str(ipaddress.ip_network(f"{a}/{n}", strict=False)),
        _addresses(version),
        st.integers(low, high),
    )


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """None (the key or field is left out) or a value."""
    return st.none() | strategy


@st.composite
def peer(draw: st.DrawFn, version: int) -> str:
    fields = {
        "ip": draw(ipv4 if version == 4 else ipv6),
        "as_num": draw(asn | st.integers(1, 65535)),
        "rr_cluster_id": draw(optional(st.sampled_from(["", "10.0.0.1", "10.0.0.2"]))),
        "password": draw(optional(password)),
        "source_addr": draw(optional(st.sampled_from(["UseNodeIP", "None"]))),
        "port": draw(optional(st.sampled_from([0, 179, 1790]))),
        "keep_next_hop": draw(optional(st.booleans())),
        "restart_time": draw(optional(st.sampled_from(["", "0", "120"]))),
    }
    return json.dumps({k: v for k, v in fields.items() if v is not None})


@st.composite
def pool(draw: st.DrawFn, version: int) -> tuple[str, str]:
    cidr = draw(network(version, 8, 28) if version == 4 else network(version, 32, 112))
    fields = {
        "cidr": cidr,
        "ipip": draw(optional(st.sampled_from(["", "tunl0"]))),
        "ipip_mode": draw(optional(st.sampled_from(["", "always", "cross-subnet"]))),
        "vxlan_mode": draw(optional(st.sampled_from(["", "always"]))),
        "masquerade": True,
        "ipam": True,
    }
    key = f"/calico/v1/ipam/v{version}/pool/{cidr.replace('/', '-')}"
    return key, json.dumps({k: v for k, v in fields.items() if v is not None})


@st.composite
def cluster(draw: st.DrawFn) -> tuple[dict[str, str], str, str | None]:
    """A valid cluster: (keys, the node to render for, CALICO_ROUTER_ID or None)."""
    keys: dict[str, str] = {}

    def put(key: str, value: str | None) -> None:
        if value is not None:
            keys[key] = value

    put(f"{G}/as_num", draw(optional(asn)))
    put(f"{G}/node_mesh", draw(optional(st.sampled_from(['{"enabled":true}', '{"enabled":false}']))))
    put(f"{G}/loglevel", draw(optional(st.sampled_from(["debug", "info", "none", "warning"]))))
    put(f"{G}/listen_port", draw(optional(st.sampled_from(["179", "1790"]))))
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True), min_size=1,
                          max_size=60, unique=True))  # fmt: skip
    for name in names:
        host = f"{H}/{name}"
        put(f"{host}/ip_addr_v4", draw(optional(ipv4 | st.just(""))))
        put(f"{host}/ip_addr_v6", draw(optional(ipv6 | st.just(""))))
        put(f"{host}/as_num", draw(optional(st.sampled_from(["64512", "65001"]))))
        put(f"{host}/listen_port", draw(optional(st.sampled_from(["179", "1791"]))))
        put(f"{host}/rr_cluster_id", draw(optional(st.sampled_from(["", "10.0.0.1"]))))
        put(f"{host}/network_v4", draw(optional(network(4, 16, 30))))
    me = draw(st.sampled_from(names))
    if draw(st.integers(0, 9)) < 9:  # mostly, this node has an IPv4 address: its router id
        keys[f"{H}/{me}/ip_addr_v4"] = "10.0.0.200"
    put(f"{H}/{me}/loglevel", draw(optional(st.sampled_from(["debug", "none"]))))
    for version in (4, 6):
        host_len = 32 if version == 4 else 128
        communities = st.lists(st.sampled_from(["65000:100", "65000:1:2", "0:0"]), max_size=3)
        ad = {"cidr": draw(network(version, 8, host_len)), "communities": draw(communities)}
        put(f"{G}/prefix_advertisements/ip_v{version}", draw(optional(st.just(json.dumps([ad])))))
        for i, value in enumerate(draw(st.lists(peer(version), max_size=5))):
            put(f"{draw(st.sampled_from([G, f'{H}/{me}']))}/peer_v{version}/p{i}", value)
        for key, value in draw(st.lists(pool(version), max_size=4)):
            put(key, value)
        states = st.sampled_from(["", "{}", '{"state":"confirmed"}', '{"state":"pending"}'])
        for cidr in draw(st.lists(network(version, host_len - 10, host_len), max_size=6)):
            put(f"/calico/ipam/v2/host/{me}/ipv{version}/block/{cidr.replace('/', '-')}", draw(states))
        v6 = "v6" if version == 6 else ""
        for kind in ("staticroutes", "rejectcidrs"):
            for cidr in draw(st.lists(network(version, 8, host_len), max_size=2)):
                put(f"/calico/{kind}{v6}/{cidr.replace('/', '-')}", cidr)
    router_id = draw(st.sampled_from([None, None, "hash", "192.0.2.1"]))
    return keys, me, router_id


BAD_VALUES = [
    "", "abc", "0", "70000", "{", "[]", "null", "0.0.0.0", "fe80::1", "10.0.0.1/8", "a:b",
    '1.2.3.4; protocol static { route 0.0.0.0/0 blackhole; }', 'x"y', "x\\", "\n", "5000",
]  # fmt: skip
FIELDS = ["ip", "as_num", "rr_cluster_id", "password", "source_addr", "port", "keep_next_hop", "restart_time",
          "cidr", "ipip", "ipip_mode", "vxlan_mode", "state", "enabled", "communities"]  # fmt: skip


@st.composite
def corrupted(draw: st.DrawFn, example: tuple[dict[str, str], str, str | None]) -> dict[str, str]:
    """The cluster with one value made bad: a JSON field, or the whole value."""
    keys = dict(example[0])
    key = draw(st.sampled_from(sorted(keys) or [f"{G}/as_num"]))
    bad: Any = draw(st.sampled_from(BAD_VALUES) | st.integers(-1, 2**33) | st.booleans())
    try:
        document = json.loads(keys.get(key, ""))
    except ValueError:
        document = None
    if isinstance(document, dict) and draw(st.booleans()):
        document[draw(st.sampled_from(FIELDS))] = bad
        keys[key] = json.dumps(document)
    else:
        keys[key] = str(bad)
    return keys


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


NAMES_A_KEY = re.compile(r"key /calico/\S+: |environment variable \w+: ")
# Valid data can still conflict: two nodes or peers at one address, or no router id.
CONFLICT = re.compile(r"is also the address of node|is also configured by|no router id")


def render_and_check(keys: dict[str, str], node: str, router_id: str | None, tset: TemplateSet) -> str | None:
    """None when the set renders and BIRD parses it; the render error otherwise."""
    with environment(BIRD_FLAVOR="stock", CALICO_ROUTER_ID=router_id):
        try:
            files = BirdSet(tset.confdir, node).render(keys)
        except RenderError as exc:
            assert NAMES_A_KEY.search(str(exc)), f"error names no key:\n{exc}"
            conflict = CONFLICT.search(str(exc))
            event(f"refused: {conflict[0] if conflict else 'bad value'}")
            return str(exc)
    event("rendered")
    with tempfile.TemporaryDirectory() as tmp:
        rejected = check_set(files, tset, Path(tmp))
    assert not rejected, f"{node}: " + "\n".join(rejected) + f"\n--- keys:\n{json.dumps(keys, indent=1)}"
    return None


@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.parametrize("tset", checked_sets())
@given(cluster())
def test_valid_cluster_renders_and_parses(
    tset: TemplateSet, example: tuple[dict[str, str], str, str | None]
) -> None:
    keys, node, router_id = example
    error = render_and_check(keys, node, router_id, tset)
    assert error is None or CONFLICT.search(error), error


@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.parametrize("tset", checked_sets())
@given(st.data())
def test_corrupted_cluster_parses_or_fails_cleanly(tset: TemplateSet, data: st.DataObject) -> None:
    example = data.draw(cluster())
    keys = data.draw(corrupted(example))
    render_and_check(keys, example[1], example[2], tset)
