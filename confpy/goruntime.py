"""Go's text/template semantics for templates ``confpy convert`` wrote from confd's.

A converted template is plain Jinja where the value types are known when converting
(store values are strings, ``len`` is an int...). Where they are not (JSON data, the
result of ``index``), it calls the ``go`` global, which does what Go's text/template
does (Go 1.18 and later, as Go's documentation describes it): ``go.eq`` compares like
kinds only and a missing value (nil) equals only nil, ``go.json`` gives float64
numbers and a map whose missing keys are nil, ``{{ x | go }}`` prints a value as Go
does (``<no value>``, ``1e+06``, ``[a b]``, ``map[a:1]``). Errors are
:class:`GoTemplateError`, in Go's words.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from confpy import gofmt
from confpy.funcs import FUNCTIONS
from confpy.gofmt import GoArray
from confpy.keyview import KVPair, parse_json


class GoTemplateError(Exception):
    """What Go's template engine would have stopped the render with."""


class GoMap(dict[str, Any]):
    """A ``map[string]interface{}`` from JSON: a missing key is nil, as in Go."""

    def __missing__(self, key: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        # Jinja's data.ip tries the attribute first: answer it without an exception.
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]


def _go_value(v: Any) -> Any:
    """A parsed JSON value in Go's shapes: float64 numbers, GoMap, GoArray."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float):
        f = float(v)
        if math.isinf(f) or math.isnan(f):
            raise GoTemplateError(f"json: cannot unmarshal number {v} into a float64")
        return f
    if isinstance(v, dict):
        return GoMap({k: _go_value(x) for k, x in v.items()})
    return GoArray(_go_value(x) for x in v)


_BASIC = frozenset({"bool", "int", "float64", "string"})


def _kind(v: object) -> str:
    """Go's basicKind, for lt/le/gt/ge: only these four have an order (bool not even)."""
    kind = gofmt.type_name(v)
    if kind not in _BASIC:
        raise GoTemplateError("invalid type for comparison")
    return kind


def _eq(a: object, b: object) -> bool:
    """Go's eq (1.18 on): like basic kinds compare; nil equals only nil; a nil against
    anything is false; other values compare only with their own kind."""
    if a is None or b is None:
        return a is b
    ka, kb = gofmt.type_name(a), gofmt.type_name(b)
    if ka in _BASIC and kb in _BASIC:
        if ka != kb:
            raise GoTemplateError(f"incompatible types for comparison: {ka} and {kb}")
        return a == b
    if ka != kb:
        raise GoTemplateError(
            f"non-comparable types {gofmt.value_text(a)}: {ka}, {kb}: {gofmt.value_text(b)}"
        )
    if isinstance(a, KVPair):
        return a == b
    raise GoTemplateError(f"non-comparable type {gofmt.value_text(b)}: {kb}")


def _lt(a: object, b: object) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        raise GoTemplateError(f"incompatible types for comparison: {ka} and {kb}")
    if ka == "bool":
        raise GoTemplateError("invalid type for comparison")
    return bool(a < b)  # type: ignore[operator]


def _calling(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except GoTemplateError as exc:
            raise GoTemplateError(f"error calling {name}: {exc}") from None

    call.__name__ = name
    return call


def _eq_any(a: object, *others: object) -> bool:
    if not others:
        raise GoTemplateError("missing argument for comparison")
    return any(_eq(a, b) for b in others)


def _expected(kind: str, v: object) -> GoTemplateError:
    if v is None:
        return GoTemplateError(f"invalid value; expected {kind}")
    return GoTemplateError(f"wrong type for value; expected {kind}; got {gofmt.type_name(v)}")


def arg(v: object, kind: str) -> Any:
    """``v`` as an argument of a Go function taking ``kind`` (``string``, ``int``,
    ``[]string``): Go refuses another type, and so does this."""
    ok = {
        "string": isinstance(v, str),
        "int": isinstance(v, int) and not isinstance(v, bool),
        "[]string": isinstance(v, list) and not isinstance(v, GoArray) and all(isinstance(e, str) for e in v),
    }[kind]
    if not ok:
        raise _expected(kind, v)
    return v


def field(v: object, *names: str) -> Any:
    """``x.A.B`` in Go: map keys (a missing one is nil), KVPair's Key/Value; the field
    of nil is nil."""
    for name in names:
        if v is None:
            return None
        if isinstance(v, Mapping):
            v = v.get(name)
        elif isinstance(v, KVPair) and name in ("Key", "Value"):
            v = v.key if name == "Key" else v.value
        else:
            raise GoTemplateError(f"can't evaluate field {name} in type {gofmt.type_name(v)}")
    return v


def index(item: object, *keys: object) -> Any:
    """Go's ``index``: slices and strings by int (a string gives a byte), maps by key."""
    v = item
    for k in keys:
        if isinstance(v, str | list):
            if not isinstance(k, int) or isinstance(k, bool):
                raise GoTemplateError(f"cannot index slice/array with type {gofmt.type_name(k)}")
            seq: Sequence[Any] = v.encode() if isinstance(v, str) else v
            if not 0 <= k < len(seq):
                raise GoTemplateError(f"index out of range: {k}")
            v = seq[k]
        elif isinstance(v, Mapping):
            if not isinstance(k, str):
                raise GoTemplateError(f"{gofmt.type_name(k)} is not index type for map[string]interface {{}}")
            v = v.get(k)
        elif isinstance(v, KVPair):
            raise GoTemplateError("can't index item of type memkv.KVPair")
        else:
            raise GoTemplateError(f"can't index item of type {gofmt.type_name(v)}")
    return v


def slice_(item: object, *bounds: object) -> Any:
    """Go's ``slice x i j``: a string is sliced by bytes."""
    if len(bounds) > 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
        raise GoTemplateError("invalid slice index")
    if not isinstance(item, str | list):
        raise GoTemplateError(f"can't slice item of type {gofmt.type_name(item)}")
    seq: Any = item.encode() if isinstance(item, str) else item
    low = bounds[0] if bounds else 0
    high = bounds[1] if len(bounds) > 1 else len(seq)
    assert isinstance(low, int) and isinstance(high, int)
    if not 0 <= low <= high <= len(seq):
        raise GoTemplateError(f"index out of range: {high}")
    part = seq[low:high]
    return part.decode(errors="replace") if isinstance(item, str) else type(item)(part)


def length(v: object) -> int:
    """Go's ``len``: bytes of a string, items of a slice or map."""
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, list | Mapping):
        return len(v)
    raise GoTemplateError(f"len of type {gofmt.type_name(v)}")


def go_range(v: object) -> Iterable[Any]:
    """What ``{{range $v := x}}`` visits: slice items, map values by sorted key; nil: none."""
    return [value for _, value in range_pairs(v)]


def range_pairs(v: object) -> Iterable[tuple[Any, Any]]:
    """``{{range $k, $v := x}}``: (index, item) of a slice, (key, value) of a map by key;
    an int n (Go 1.22 on) gives 0..n-1."""
    if v is None:
        return []
    if isinstance(v, int) and not isinstance(v, bool):
        return [(i, i) for i in range(v)]
    if isinstance(v, list):
        return list(enumerate(v))
    if isinstance(v, Mapping):
        return [(k, v[k]) for k in sorted(v)]
    raise GoTemplateError(f"range can't iterate over {gofmt.value_text(v)}")


def _unmarshal(text: object, shape: type[GoMap] | type[GoArray]) -> Any:
    """confd's json / jsonArray: JSON null is an empty map or list, another shape an error."""
    value = _go_value(parse_json(arg(text, "string")))
    if value is None:
        return shape()
    if not isinstance(value, shape):
        target = "map[string]interface {}" if shape is GoMap else "[]interface {}"
        raise GoTemplateError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type {target}")
    return value


def _json_kind(v: object) -> str:
    if isinstance(v, GoMap):
        return "object"
    return {bool: "bool", float: "number", str: "string"}.get(type(v), "array")


def _make_map(*pairs: Any) -> GoMap:
    if len(pairs) % 2:
        raise GoTemplateError("invalid map call")
    if not all(isinstance(k, str) for k in pairs[::2]):
        raise GoTemplateError("map keys must be strings")
    return GoMap(zip(pairs[::2], pairs[1::2], strict=True))


def _int_op(name: str, op: Callable[[int, int], int]) -> Callable[[object, object], int]:
    def apply(a: object, b: object) -> int:
        x, y = arg(a, "int"), arg(b, "int")
        if name in ("div", "mod") and y == 0:
            raise GoTemplateError("runtime error: integer divide by zero")
        return op(x, y)

    return _calling(name, apply)


def _go_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def _eval_args(args: Sequence[object]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return gofmt.sprint(*("<no value>" if a is None else a for a in args))


def _js(*args: object) -> str:
    out = []
    for c in _eval_args(args):
        if c in _JS:
            out.append(_JS[c])
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _html(*args: object) -> str:
    return html.escape(_eval_args(args), quote=True).replace("&#x27;", "&#39;").replace("&quot;", "&#34;")


def _lookup(family: str) -> Callable[[object], list[str]]:
    def lookup(name: object) -> list[str]:
        return [ip for ip in FUNCTIONS["lookupIP"](arg(name, "string")) if family in ip]

    return lookup


_LAYOUT = re.compile(
    r"January|Jan|Monday|Mon|2006|__2|002|_2|06|01|02|15|03|04|05|MST|Z07:00|Z0700|-07:00|-0700|-07"
    r"|PM|pm|[.,](?:0+|9+)|1|2|3|4|5"
)


def _layout_token(t: _dt.datetime, token: str) -> str:
    simple = {
        "January": "%B", "Jan": "%b", "Monday": "%A", "Mon": "%a", "2006": "%Y", "06": "%y",
        "01": "%m", "02": "%d", "15": "%H", "03": "%I", "04": "%M", "05": "%S", "MST": "%Z",
    }  # fmt: skip
    if token in simple:
        return t.strftime(simple[token])
    offset = t.strftime("%z") or "+0000"
    numeric = {
        "1": str(t.month), "2": str(t.day), "_2": f"{t.day:2d}", "3": str(t.hour % 12 or 12),
        "4": str(t.minute), "5": str(t.second), "002": t.strftime("%j"), "__2": f"{t.timetuple().tm_yday:3d}",
        "PM": "PM" if t.hour >= 12 else "AM", "pm": "pm" if t.hour >= 12 else "am",
        "-0700": offset, "-07:00": f"{offset[:3]}:{offset[3:]}", "-07": offset[:3],
        "Z0700": "Z" if offset == "+0000" else offset,
        "Z07:00": "Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}",
    }  # fmt: skip
    if token in numeric:
        return numeric[token]
    digits = f"{t.microsecond:06d}000"[: len(token) - 1]
    if token[1] == "9":
        digits = digits.rstrip("0")
        return token[0] + digits if digits else ""
    return token[0] + digits


def time_format(t: object, layout: object) -> str:
    """Go's ``Time.Format(layout)`` (``datetime.Format "2006-01-02"`` in a confd template)."""
    if not isinstance(t, _dt.datetime):
        raise GoTemplateError(f"can't evaluate field Format in type {gofmt.type_name(t)}")
    when = t.astimezone() if t.tzinfo is None else t
    return _LAYOUT.sub(lambda m: _layout_token(when, m.group()), arg(layout, "string"))


class GoRuntime:
    """The ``go`` global of converted templates. Its attributes are plain functions."""

    eq = staticmethod(_calling("eq", _eq_any))
    ne = staticmethod(_calling("ne", lambda a, b: not _eq(a, b)))
    lt = staticmethod(_calling("lt", _lt))
    le = staticmethod(_calling("le", lambda a, b: _lt(a, b) or _eq(a, b)))
    gt = staticmethod(_calling("gt", lambda a, b: not (_lt(a, b) or _eq(a, b))))
    ge = staticmethod(_calling("ge", lambda a, b: not _lt(a, b)))
    arg = staticmethod(arg)
    field = staticmethod(field)
    index = staticmethod(_calling("index", index))
    slice = staticmethod(_calling("slice", slice_))
    len = staticmethod(_calling("len", length))
    range = staticmethod(go_range)
    range_pairs = staticmethod(range_pairs)
    printf = staticmethod(gofmt.sprintf)
    print = staticmethod(gofmt.sprint)
    println = staticmethod(gofmt.sprintln)
    json = staticmethod(_calling("json", lambda text: _unmarshal(text, GoMap)))
    jsonArray = staticmethod(_calling("jsonArray", lambda text: _unmarshal(text, GoArray)))  # noqa: N815 - confd's name
    map = staticmethod(_calling("map", _make_map))
    add = staticmethod(_int_op("add", lambda a, b: a + b))
    sub = staticmethod(_int_op("sub", lambda a, b: a - b))
    mul = staticmethod(_int_op("mul", lambda a, b: a * b))
    div = staticmethod(_int_op("div", _go_div))
    mod = staticmethod(_int_op("mod", lambda a, b: a - b * _go_div(a, b)))
    html = staticmethod(_html)
    js = staticmethod(_js)
    urlquery = staticmethod(lambda *args: urllib.parse.quote_plus(_eval_args(args), safe=""))
    lookupIPV4 = staticmethod(_lookup("."))  # noqa: N815 - confd's name
    lookupIPV6 = staticmethod(_lookup(":"))  # noqa: N815 - confd's name
    time_format = staticmethod(time_format)


GO = GoRuntime()
