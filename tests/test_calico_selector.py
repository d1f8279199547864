"""Calico's label selector language (confpy/calico/v3/selector.py)."""

from __future__ import annotations

import pytest

from confpy.calico.v3.selector import SelectorError, parse

LABELS = {"rack": "a", "zone": "z1", "role": "route-reflector", "kubernetes.io/hostname": "node1"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("all()", True),
        (" all( ) ", True),
        ("global()", True),
        ("rack == 'a'", True),
        ('rack == "b"', False),
        ("rack != 'a'", False),
        ("missing != 'a'", True),  # an absent label differs from every value
        ("missing == ''", False),
        ("rack in {'a', 'b'}", True),
        ("rack in {}", False),
        ("rack in {'b',}", False),
        ("rack not in {'b'}", True),
        ("missing not in {'a'}", True),
        ("rack notin {'a'}", False),
        ("has(zone)", True),
        ("has( zone )", True),
        ("has(missing)", False),
        ("!has(missing)", True),
        ("!!has(zone)", True),
        ("kubernetes.io/hostname == 'node1'", True),
        ("role contains 'reflect'", True),
        ("role starts with 'route'", True),
        ("role startswith 'x'", False),
        ("role ends with 'reflector'", True),
        ("missing contains ''", False),
        ("rack == 'a' && zone == 'z2'", False),
        ("rack == 'b' || zone == 'z1'", True),
        # && binds tighter than ||
        ("rack == 'b' && zone == 'z1' || has(role)", True),
        ("rack == 'b' && (zone == 'z1' || has(role))", False),
        ("!(rack == 'a' && has(zone))", False),
        ("! rack == 'b'", True),
    ],
)
def test_selector_meaning(text: str, matches: bool) -> None:
    assert parse(text).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rack = 'a'", "expected =="),
        ("rack ==", "expected a quoted string"),
        ("rack == a", "expected a quoted string"),
        ("rack == 'a", "unterminated string"),
        ("rack", "expected an operator after label 'rack'"),
        ("rack is 'a'", "expected an operator after label 'rack'"),
        ("has(", "expected a label name"),
        ("has(rack", "no closing ')'"),
        ("all(x)", "no closing ')'"),
        ("(rack == 'a'", "expected ')'"),
        ("rack == 'a' zone == 'b'", "unexpected label 'zone' after a complete selector"),
        ("rack in 'a'", "expected '{'"),
        ("rack in {'a' 'b'}", "expected '}'"),
        ("rack == 'a' &", "expected &&"),
        ("&& has(x)", "unexpected '&&'"),
        ("|| has(x)", "unexpected '||'"),
    ],
)
def test_bad_selectors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_selectors_compare_by_text() -> None:
    assert parse("has(a)") == parse("has(a)")
    assert parse("has(a)") != parse("has(b)")


def test_nesting_is_bounded_and_a_deeper_selector_is_a_selector_error() -> None:
    # Suspected from reading, confirmed with the selector harness (tests/fuzz/corpus/selector/
    # regress-deep-parentheses): 300 nested
    # parentheses were a RecursionError, which escaped resources.parse and V1View.apply.
    import json

    from confpy.calico.v3.resources import parse as parse_resource
    from confpy.errors import DataError

    assert parse("(" * 100 + "has(a)" + ")" * 100).matches({"a": ""})
    with pytest.raises(SelectorError, match="parentheses nested deeper than 100"):
        parse("(" * 101 + "has(a)" + ")" * 101)
    deep = "(" * 300 + "all()" + ")" * 300
    key = "/calico/resources/v3/projectcalico.org/bgppeers/p1"
    peer = {"spec": {"nodeSelector": deep, "peerIP": "10.0.0.1", "asNumber": 65001}}
    with pytest.raises(DataError, match=f"key {key}: spec.nodeSelector: parentheses nested deeper than 100"):
        parse_resource(key, json.dumps(peer))
