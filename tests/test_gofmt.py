"""Go's fmt as converted templates need it. Expected texts are Go's, by the fmt and
strconv documentation (shortest digits; %v of a float64 switches to an exponent from
1e+06 and below 1e-04; bad verbs and missing arguments are printed, not raised)."""

from __future__ import annotations

import datetime as dt

import pytest

from confpy.gofmt import GoArray, format_float_shortest, print_value, sprint, sprintf
from confpy.goruntime import GoMap, time_format
from confpy.keyview import KVPair, StoreValue


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"), (-0.0, "-0"), (1.0, "1"), (64512.0, "64512"), (999999.0, "999999"),
        (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (4200000000.0, "4.2e+09"), (1.5, "1.5"),
        (0.0001, "0.0001"), (0.00001, "1e-05"), (123.456, "123.456"), (1e21, "1e+21"),
        (float("inf"), "+Inf"), (float("nan"), "NaN"),
    ],
)  # fmt: skip
def test_float64_prints_as_percent_v(value: float, text: str) -> None:
    assert format_float_shortest(value) == text


@pytest.mark.parametrize(
    ("fmt", "args", "text"),
    [
        ("%s|%v|%d", ("a", "b", 42), "a|b|42"),
        ("%5d|%-5d|%05d|%+d|% d", (42, 42, -42, 42, 42), "   42|42   |-0042|+42| 42"),
        ("%x|%X|%#x|%o|%#o|%b|%c|%U|%q", (255, 255, 255, 8, 8, 5, 65, 65, 65), "ff|FF|0xff|10|010|101|A|U+0041|'A'"),
        ("%.2f|%8.3f|%e|%E|%g|%.3g|%v", (3.14159, 2.5, 1234.5678, 0.5, 1e6, 3.14159, 2.0), "3.14|   2.500|1.234568e+03|5.000000E-01|1e+06|3.14|2"),
        ("%q|%#q|%+q|%x|% x|%.2s|%6s|%-6s|", ("a\"b", "ab", "é", "hi", "hi", "hello", "ab", "ab"),
         '"a\\"b"|`ab`|"\\u00e9"|6869|68 69|he|    ab|ab    |'),
        ("%t|%v|%s", (True, False, True), "true|false|%!s(bool=true)"),
        ("%d|%s|%f", ("x", 5, "y"), "%!d(string=x)|%!s(int=5)|%!f(string=y)"),
        ("%s %s", ("a",), "a %!s(MISSING)"),
        ("%s", ("a", "b", 3), "a%!(EXTRA string=b, int=3)"),
        ("%v|%s|%d", (None, None, None), "<nil>|%!s(<nil>)|%!d(<nil>)"),
        ("%*d|%-*d|%.*f", (4, 7, 3, 7, 1, 2.25), "   7|7  |2.2"),
        ("%[2]s %[1]s", ("a", "b"), "b a"),
        ("100%%|%z|%", (1,), "100%|%!z(int=1)|%!(NOVERB)"),
        ("%T %T %T %T %T %T", ("s", 1, 1.5, True, None, GoMap()), "string int float64 bool <nil> map[string]interface {}"),
        ("%v|%d|%s", (["a", "b"], [1, 2], GoArray(["x", 2.0])), "[a b]|[1 2]|[x %!s(float64=2)]"),
        ("%v|%+v", (KVPair("/k", StoreValue("v", "/p/k")), KVPair("/k", StoreValue("v", "/p/k"))), "{/k v}|{Key:/k Value:v}"),
        ("%v", (GoMap(b=1.0, a="x"),), "map[a:x b:1]"),
        ("%#v|%#v|%#v", ("s", GoMap(a=1.0), GoArray(["x"])), '"s"|map[string]interface {}{"a":1}|[]interface {}{"x"}'),
    ],
)  # fmt: skip
def test_sprintf(fmt: str, args: tuple[object, ...], text: str) -> None:
    assert sprintf(fmt, *args) == text


def test_sprint_spaces_only_between_non_strings_and_print_value_says_no_value() -> None:
    assert sprint("a", 1, 2, "b", 3.0, None) == "a1 2b3 <nil>"
    assert print_value(None) == "<no value>"
    assert print_value(True) == "true"
    assert print_value(GoArray([1.0, None])) == "[1 <nil>]"


def test_time_format_follows_gos_reference_layout() -> None:
    t = dt.datetime(2024, 3, 5, 14, 7, 9, 120000, tzinfo=dt.timezone(dt.timedelta(hours=2), "CEST"))
    assert time_format(t, "2006-01-02 15:04:05.000 -0700 MST") == "2024-03-05 14:07:09.120 +0200 CEST"
    assert (
        time_format(t, "Jan 2, 2006 at 3:04pm (Monday) _2 002 .999")
        == "Mar 5, 2024 at 2:07pm (Tuesday)  5 065 .12"
    )
