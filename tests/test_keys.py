"""confpy.keys: the one meaning of a key path. ``K`` covers ``K`` and ``K/...``, never
a sibling that starts with the same letters (``K10``, ``Kv6``, ``K-b``)."""

import pytest

from confpy.keys import (
    byte_range,
    collapse,
    covers,
    glob_regex,
    join,
    keys_under,
    keys_with_prefix,
    literal_head,
    substitute_node,
)

SIBLINGS = ["/a", "/a-b", "/av6", "/a/", "/a/x", "/a/x/y", "/a10", "/b"]


@pytest.mark.parametrize(
    ("prefix", "covered"),
    [
        ("/a", ["/a", "/a/", "/a/x", "/a/x/y"]),
        ("/a/", ["/a", "/a/", "/a/x", "/a/x/y"]),  # a trailing slash changes nothing
        ("/a-b", ["/a-b"]),
        ("/av6", ["/av6"]),
        ("/a/x", ["/a/x", "/a/x/y"]),
        ("", SIBLINGS),
        ("/", SIBLINGS),
    ],
)
def test_a_prefix_covers_itself_and_what_lies_below_never_a_sibling(prefix: str, covered: list[str]) -> None:
    assert [k for k in SIBLINGS if covers(prefix, k)] == covered


def test_collapse_keeps_siblings_apart_and_drops_what_is_covered() -> None:
    assert collapse(["/a/b", "/a", "/c", "/a"]) == ["/a", "/c"]
    assert collapse(["/a", "/a-b", "/av6", "/a/"]) == ["/a", "/a-b", "/av6"]
    # The bundled conf.d reads both: neither swallows the other.
    assert collapse(["/calico/staticroutesv6", "/calico/staticroutes"]) == [
        "/calico/staticroutes",
        "/calico/staticroutesv6",
    ]
    # A descendant sorts after a sibling in string order ("/a-b" < "/a/b"): still dropped.
    assert collapse(["/a", "/a-b", "/a/b", "/a.c"]) == ["/a", "/a-b", "/a.c"]
    assert collapse(["/x", "/"]) == [""]


def test_join_and_nodename() -> None:
    assert join("/calico", "bgp/v1/", "//host") == "/calico/bgp/v1/host"
    assert join("", "") == "/"
    assert substitute_node("/calico/bgp/v1/host//NODENAME", "node1") == "/calico/bgp/v1/host/node1"


def test_byte_range_holds_every_covered_key_and_no_v6_sibling() -> None:
    assert byte_range(b"/a/") == (b"/a", b"/a0")
    assert byte_range(b"/a") == (b"/a", b"/a0")
    assert byte_range(b"/a\xff") == (b"/a\xff", b"/a\xff0")
    assert byte_range(b"") == (b"\0", b"\0")
    assert byte_range(b"/") == (b"\0", b"\0")
    start, end = byte_range(b"/calico/staticroutes")
    for key in (b"/calico/staticroutes", b"/calico/staticroutes/10.96.0.0-12"):
        assert start <= key < end
    assert not start <= b"/calico/staticroutesv6/fd00:96::-108" < end


def test_glob_classes_and_escapes() -> None:
    assert glob_regex("/a/[bc]?").match("/a/bx")
    assert not glob_regex("/a/[bc]?").match("/a/b/")
    assert glob_regex(r"/a/\*").match("/a/*")
    assert not glob_regex(r"/a/\*").match("/a/x")


KEYS = sorted(
    ["/a", "/a-b", "/a.c", "/a/", "/a/x", "/a/x/y", "/ab", "/b", "/a\U0010ffff", "/a\U0010ffff/z", "c"]
)


@pytest.mark.parametrize("head", ["", "/", "/a", "/a/", "/a/x", "/a\U0010ffff", "/zz", "c", "\U0010ffff"])
def test_keys_with_prefix_is_the_startswith_filter(head: str) -> None:
    assert keys_with_prefix(KEYS, head) == [k for k in KEYS if k.startswith(head)]


@pytest.mark.parametrize("prefix", ["", "/", "/a", "/a/", "/a/x", "/a\U0010ffff", "/ab", "/zz", "c"])
def test_keys_under_is_the_covers_filter(prefix: str) -> None:
    # "/a-b", "/a.c" and "/ab" sort between "/a" and "/a/..." but are not under "/a".
    assert keys_under(KEYS, prefix) == [k for k in KEYS if covers(prefix, k)]


def test_literal_head_is_what_every_match_starts_with() -> None:
    assert literal_head("/peers/*") == "/peers/"
    assert literal_head("/a/[bc]") == "/a/"
    assert literal_head("/plain") == "/plain"
