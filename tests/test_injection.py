"""No config injection: a hostile value in any key the BIRD templates read either fails
the render with an error naming that key, or is harmless: the files BIRD gets still
parse and carry no statement of the attacker's.

Every field of the data model (plain keys, JSON fields, key names, node names, the
environment) is tried with every value of the corpus below, on both template sets:
BIRD 1.6 (``conf.d/``, checked by ``bird``/``bird6``) and BIRD 2 (``bird2/``, checked by
BIRD 2's ``bird``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from confpy.errors import RenderError, printable
from tests.support.birdset import SETS, BirdSet, TemplateSet, check_set
from tests.support.set_params import checked_sets

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = json.loads((ROOT / "tests" / "data" / "calico" / "example-cluster.json").read_text())["keys"]
G = "/calico/bgp/v1/global"
H = "/calico/bgp/v1/host"
B = "/calico/ipam/v2/host/node1"
PAYLOAD = "route 0.0.0.0/0 blackhole"

CORPUS = {
    "statement": f"1.2.3.4; protocol static {{ {PAYLOAD}; }}",
    "newline": f"1.2.3.4\nprotocol static {{ {PAYLOAD}; }}",
    "crlf": f"64512\r\nprotocol static {{ {PAYLOAD}; }}",
    "unicode line separator": f"tunl0\u2028protocol static {{ {PAYLOAD}; }}",
    "quote": f'x"; }} protocol static {{ {PAYLOAD}; }} filter f {{ "',
    "backslash quote": f'x\\"; protocol static {{ {PAYLOAD}; }}',
    "trailing backslash": "s3cret\\",
    "close brace": "}",
    "hash comment": "# comment",
    "c comment": "/* comment */",
    "open c comment": "10.0.0.1 /*",
    "scope id": f"fd00::1%x; protocol static {{ {PAYLOAD}; }}",
    "nul": "64512\x00",
    "non-UTF-8": "tunl0\udcff\udcfe",  # bytes 0xff 0xfe, surrogate-escaped
    "very long number": "1" * 100_000,
    "very long text": "a" * 100_000,
}

# A target puts a value somewhere; it returns (keys, node name, environment, the text
# the error must contain).
Target = Callable[[str], tuple[dict[str, str], str, dict[str, str], str]]


def _with(changes: dict[str, str]) -> dict[str, str]:
    return {**EXAMPLE, **changes}


def plain(key: str) -> Target:
    return lambda v: (_with({key: v}), "node1", {}, f"key {key}: ")


def json_field(key: str, document: Mapping[str, object], field: str) -> Target:
    return lambda v: (_with({key: json.dumps({**document, field: v})}), "node1", {}, f"key {key}: ")


def key_name(base: str, value: str) -> Target:
    return lambda v: (_with({f"{base}/{v}": value}), "node1", {}, f"key {base}/{v}: ")


def environment(name: str) -> Target:
    return lambda v: (dict(EXAMPLE), "node1", {name: v}, f"environment variable {name}: ")


def own_node_name(v: str) -> tuple[dict[str, str], str, dict[str, str], str]:
    keys = {k.replace("/node1/", f"/{v}/"): val for k, val in EXAMPLE.items()}
    return keys, v, {}, f"key {H}/{v}: "


def other_node_name(v: str) -> tuple[dict[str, str], str, dict[str, str], str]:
    return (
        _with({f"{H}/{v}/ip_addr_v4": "172.29.141.50", f"{H}/{v}/ip_addr_v6": ""}),
        "node1",
        {},
        f"key {H}/{v}: ",
    )


PEER4 = {"ip": "10.9.0.1", "as_num": "64512"}
PEER6 = {"ip": "fd00:9::1", "as_num": "64512"}
POOL4 = {"cidr": "10.50.0.0/16", "ipip": "tunl0", "ipip_mode": "cross-subnet"}
POOL6 = {"cidr": "fd00:50::/48"}

TARGETS: dict[str, Target] = {
    **{f"global {k}": plain(f"{G}/{k}") for k in ("as_num", "node_mesh", "loglevel", "listen_port")},
    **{
        f"node1 {k}": plain(f"{H}/node1/{k}")
        for k in ("ip_addr_v4", "ip_addr_v6", "network_v4", "as_num", "rr_cluster_id", "loglevel", "listen_port")
    },
    **{f"node2 {k}": plain(f"{H}/node2/{k}") for k in ("ip_addr_v4", "ip_addr_v6", "as_num", "listen_port")},
    "node_mesh enabled": json_field(f"{G}/node_mesh", {}, "enabled"),
    **{f"prefix advertisements v{f}": plain(f"{G}/prefix_advertisements/ip_v{f}") for f in (4, 6)},
    "advertisement cidr": lambda v: (
        _with({f"{G}/prefix_advertisements/ip_v4": json.dumps([{"cidr": v, "communities": ["1:1"]}])}),
        "node1", {}, f"key {G}/prefix_advertisements/ip_v4: ",
    ),
    "advertisement community": lambda v: (
        _with({f"{H}/node1/prefix_advertisements/ip_v6": json.dumps([{"cidr": "fd00::/8", "communities": [v]}])}),
        "node1", {}, f"key {H}/node1/prefix_advertisements/ip_v6: ",
    ),
    **{
        f"{scope} peer_v{f} {field}": json_field(f"{base}/peer_v{f}/x", PEER4 if f == 4 else PEER6, field)
        for scope, base in (("global", G), ("node1", f"{H}/node1"))
        for f in (4, 6)
        for field in ("ip", "as_num", "rr_cluster_id", "password", "source_addr", "port", "keep_next_hop",
                      "restart_time")
    },
    "peer key name": key_name(f"{G}/peer_v4", json.dumps(PEER4)),
    **{f"pool v4 {field}": json_field("/calico/v1/ipam/v4/pool/x", POOL4, field)
       for field in ("cidr", "ipip", "ipip_mode", "vxlan_mode")},
    **{f"pool v6 {field}": json_field("/calico/v1/ipam/v6/pool/x", POOL6, field) for field in ("cidr", "ipip")},
    "block v4 key name": key_name(f"{B}/ipv4/block", ""),
    "block v6 key name": key_name(f"{B}/ipv6/block", "{}"),
    "block state": json_field(f"{B}/ipv4/block/10.60.0.0-26", {}, "state"),
    "block value": plain(f"{B}/ipv6/block/fd00:60::-122"),
    **{f"{d} key name": key_name(f"/calico/{d}", "") for d in
       ("staticroutes", "staticroutesv6", "rejectcidrs", "rejectcidrsv6")},
    "own node name": own_node_name,
    "other node name": other_node_name,
    "CALICO_ROUTER_ID": environment("CALICO_ROUTER_ID"),
    "BIRD_FLAVOR": environment("BIRD_FLAVOR"),
}  # fmt: skip


def code(text: str) -> str:
    """BIRD config text without its strings and comments, scanned the way BIRD's lexer
    does: a string is ``"`` to the next ``"`` on the same line."""
    return re.sub(r'"[^"\n]*"|#[^\n]*|/\*.*?\*/', " ", text, flags=re.S)


@pytest.mark.bird
@pytest.mark.parametrize("tset", checked_sets())
@pytest.mark.parametrize("target", list(TARGETS))
def test_hostile_values(
    target: str, tset: TemplateSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for label, value in CORPUS.items():
        keys, node, env, must_name = TARGETS[target](value)
        if any("\x00" in setting for setting in env.values()):
            continue  # an environment variable cannot hold NUL
        with monkeypatch.context() as m:
            m.setenv("BIRD_FLAVOR", "stock")
            m.delenv("CALICO_ROUTER_ID", raising=False)
            for name, setting in env.items():
                m.setenv(name, setting)
            try:
                files = BirdSet(tset.confdir, node).render(keys)
            except RenderError as exc:
                # Keys are named with control characters escaped (one log line per error).
                assert printable(must_name) in str(exc), f"{label}: the error does not name the key:\n{exc}"
                continue
        # Accepted (a password is free text; a key name that is not a direct child is
        # not read; BIRD 2 reads no BIRD_FLAVOR): harmless only if nothing of the
        # attacker's is BIRD code.
        assert not any(PAYLOAD in code(text) for text in files.values()), f"{label}: payload in the output"
        rejected = check_set(files, tset, tmp_path / label.replace(" ", "_"))
        assert not rejected, f"{label}: BIRD rejects the output:\n" + "\n".join(rejected)


@pytest.mark.parametrize("tset", [pytest.param(t, id=str(t)) for t in SETS])
def test_free_text_that_is_safe_is_quoted_not_refused(tset: TemplateSet) -> None:
    """Passwords may contain comment markers and non-ASCII text: BIRD reads them literally."""
    key = f"{G}/peer_v4/x"
    password = "#s3cr/*t*/ é"
    files = BirdSet(tset.confdir, "node1").render(_with({key: json.dumps({**PEER4, "password": password})}))
    assert f'password "{password}";' in files["bird.cfg"]
