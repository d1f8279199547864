"""confd's template functions (kelseyhightower/confd's and Calico's) and Go's builtins,
as the Jinja a converted template calls.

Each confd function keeps its confpy name (``getv``, ``split``...); the ones whose Go
result confpy's would not match are the ``go`` runtime's (``go.json`` gives float64
numbers, ``go.printf`` Go's verbs). Arguments are checked as Go checks them: a value of
the wrong type is refused when converting if its type is known, else at render time
(``go.arg``), where Go fails too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confpy.convert.types import ADD, AND, ATOM, CMP, FILTER, MUL, NOT, OR, Expr, T

#: A function emitter: (the converter, Go's name, the arguments) -> the call.
Emitter = Callable[["Calls", str, list[Expr]], Expr]


@dataclass(frozen=True)
class Spec:
    jinja: str
    params: tuple[str, ...]  # "string", "int", "[]string", "kvs" or "any"
    result: T
    pure: bool = True  # cannot fail
    optional: str | None = None  # the kind of one optional last argument (Go: variadic)


SPECS: dict[str, Spec] = {
    # memkv's lookups, bound to the resource's keys by confpy
    "exists": Spec("exists", ("string",), T.BOOL),
    "get": Spec("get", ("string",), T.KV, pure=False),
    "gets": Spec("gets", ("string",), T.LIST_KV),
    "getv": Spec("getv", ("string",), T.STR, pure=False, optional="string"),
    "getvs": Spec("getvs", ("string",), T.LIST_STR),
    "ls": Spec("ls", ("string",), T.LIST_STR),
    "lsdir": Spec("lsdir", ("string",), T.LIST_STR),
    # confd's functions
    "atoi": Spec("atoi", ("string",), T.INT, pure=False),
    "base": Spec("base", ("string",), T.STR),
    "base64Decode": Spec("base64Decode", ("string",), T.STR, pure=False),
    "base64Encode": Spec("base64Encode", ("string",), T.STR),
    "contains": Spec("contains", ("string", "string"), T.BOOL),
    "datetime": Spec("datetime", (), T.TIME),
    "dir": Spec("dir", ("string",), T.STR),
    "fileExists": Spec("fileExists", ("string",), T.BOOL),
    "getenv": Spec("getenv", ("string",), T.STR, optional="string"),
    "hasSuffix": Spec("hasSuffix", ("string", "string"), T.BOOL),
    "hashToIPv4": Spec("hashToIPv4", ("string",), T.STR),
    "join": Spec("join", ("[]string", "string"), T.STR),
    "json": Spec("go.json", ("string",), T.MAP, pure=False),
    "jsonArray": Spec("go.jsonArray", ("string",), T.LIST_ANY, pure=False),
    "lookupIP": Spec("lookupIP", ("string",), T.LIST_STR),
    "lookupIPV4": Spec("go.lookupIPV4", ("string",), T.LIST_STR),
    "lookupIPV6": Spec("go.lookupIPV6", ("string",), T.LIST_STR),
    "parseBool": Spec("parseBool", ("string",), T.BOOL, pure=False),
    "replace": Spec("replace", ("string", "string", "string", "int"), T.STR),
    "seq": Spec("seq", ("int", "int"), T.LIST_INT),
    "sortByLength": Spec("sortByLength", ("[]string",), T.LIST_STR),
    "sortKVByLength": Spec("sortKVByLength", ("kvs",), T.LIST_KV),
    "split": Spec("split", ("string", "string"), T.LIST_STR),
    "toLower": Spec("toLower", ("string",), T.STR),
    "toUpper": Spec("toUpper", ("string",), T.STR),
    "trimSuffix": Spec("trimSuffix", ("string", "string"), T.STR),
    "div": Spec("go.div", ("int", "int"), T.INT, pure=False),
    "mod": Spec("go.mod", ("int", "int"), T.INT, pure=False),
    # Go's builtins with a fixed shape
    "html": Spec("go.html", (), T.STR, optional="any"),
    "js": Spec("go.js", (), T.STR, optional="any"),
    "urlquery": Spec("go.urlquery", (), T.STR, optional="any"),
    "slice": Spec("go.slice", ("any",), T.ANY, pure=False, optional="any"),
}

#: Functions Go's parser knows in a confd template but the converter refuses, and why.
REFUSED = {
    "lookupSRV": "lookupSRV (DNS SRV records) has no confpy counterpart",
    **{
        name: f"{name} reads values encrypted with confd's -keyring, which confpy does not do"
        for name in ("cget", "cgets", "cgetv", "cgetvs")
    },
    "call": "call needs a function value, which confd's data never holds",
}


class Calls:
    """Function calls of one template; ``problem`` reports what cannot convert."""

    def problem(self, message: str) -> None:
        raise NotImplementedError

    def coerce(self, e: Expr, kind: str, where: str) -> Expr:
        """``e`` as an argument of Go type ``kind`` (``where`` names it for a refusal)."""
        want = {"string": T.STR, "int": T.INT, "[]string": T.LIST_STR, "kvs": T.LIST_KV}.get(kind)
        if want is None or e.type is want:
            return e
        if e.type is T.ANY:
            return Expr(f'go.arg({e.code}, "{kind}")', want, pure=False)
        if kind == "kvs" and e.type is T.LIST_ANY:
            return e
        self.problem(f"{where} must be a {kind}, not {e.type.value} (confd fails there too)")
        return Expr(e.code, want, e.prec, e.pure)

    def call(self, name: str, args: list[Expr]) -> Expr:
        if name in REFUSED:
            self.problem(REFUSED[name])
            return Expr("none", T.NIL)
        special = _SPECIAL.get(name)
        if special is not None:
            return special(self, name, args)
        spec = SPECS[name]
        count = len(spec.params)
        if len(args) < count or (len(args) > count and spec.optional is None):
            self.problem(f"wrong number of args for {name}: want {count} got {len(args)}")
        params = list(spec.params) + [spec.optional or "any"] * max(0, len(args) - count)
        if spec.optional == "string" and len(args) > count + 1:
            args = args[: count + 1]  # confd's getv/getenv take the first default, as Go's variadic
        coerced = [
            self.coerce(a, k, f"argument {i + 1} of {name}")
            for i, (a, k) in enumerate(zip(args, params, strict=False))
        ]
        code = f"{spec.jinja}({', '.join(a.code for a in coerced)})"
        return Expr(code, spec.result, ATOM, spec.pure and all(a.pure for a in coerced))


def _logic(calls: Calls, name: str, args: list[Expr]) -> Expr:
    if not args:
        calls.problem(f"wrong number of args for {name}: want at least 1 got 0")
        return Expr("none", T.NIL)
    if len(args) == 1:
        return args[0]
    # and: the first false operand or the last; or: the first true operand or the last.
    if name == "and":
        kinds, truthy = {a.type for a in args}, args[-1].when_true
    else:
        kinds, truthy = {a.when_true for a in args[:-1]} | {args[-1].type}, None
    result = kinds.pop() if len(kinds) == 1 else T.ANY
    # Go (1.18 on) evaluates left to right and stops at the operand that decides: Jinja's and/or.
    prec = AND if name == "and" else OR
    return Expr(
        f" {name} ".join(a.at(prec + 1) for a in args), result, prec, all(a.pure for a in args), truthy
    )


def _not(calls: Calls, name: str, args: list[Expr]) -> Expr:
    if len(args) != 1:
        calls.problem(f"wrong number of args for not: want 1 got {len(args)}")
        return Expr("false", T.BOOL)
    return Expr(f"not {args[0].at(NOT)}", T.BOOL, NOT, args[0].pure)


_OPS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _compare(calls: Calls, name: str, args: list[Expr]) -> Expr:
    if len(args) < 2 or (name != "eq" and len(args) != 2):
        calls.problem(f"wrong number of args for {name}: want 2 got {len(args)}")
        return Expr("false", T.BOOL)
    first, others = args[0], args[1:]
    known = [a.type for a in args if a.type is not T.ANY]
    basic = {t for t in known if t.comparable}
    other = {t for t in known if not t.comparable}
    if name in ("eq", "ne"):
        # Go 1.18 on: nil equals only nil; KVPairs compare; slices, maps and times do not.
        if other - {T.NIL, T.KV}:
            bad = sorted(t.value for t in other - {T.NIL, T.KV})[0]
            calls.problem(f"{name}: a {bad} cannot be compared (Go: non-comparable type)")
        elif len(basic) > 1 or (basic and T.KV in other):
            kinds = " and ".join(sorted({t.value for t in known} - {T.NIL.value}))
            calls.problem(f"{name}: {kinds} are incompatible types for comparison")
    elif other:
        calls.problem(
            f"{name}: a {sorted(t.value for t in other)[0]} has no order (Go: invalid type for comparison)"
        )
    elif len(basic) > 1:
        calls.problem(
            f"{name}: {' and '.join(sorted(t.value for t in basic))} are incompatible types for comparison"
        )
    elif T.BOOL in basic:
        calls.problem(f"{name}: bools have no order (Go: invalid type for comparison)")
    if len(known) < len(args) or not basic <= {T.STR, T.INT, T.BOOL} or other:
        # A value of unknown type, a float, nil or a pair: Go's rules at render time.
        code = f"go.{name}({', '.join(a.code for a in args)})"
        return Expr(code, T.BOOL, ATOM, pure=False)
    op = _OPS[name]
    if len(others) > 1 and not first.pure:
        return Expr(f"go.eq({', '.join(a.code for a in args)})", T.BOOL, ATOM, pure=False)
    parts = [f"{first.at(ADD)} {op} {o.at(ADD)}" for o in others]
    pure = all(a.pure for a in args)
    if len(parts) == 1:
        return Expr(parts[0], T.BOOL, CMP, pure)
    return Expr(" or ".join(parts), T.BOOL, OR, pure)


def _len(calls: Calls, name: str, args: list[Expr]) -> Expr:
    if len(args) != 1:
        calls.problem(f"wrong number of args for len: want 1 got {len(args)}")
        return Expr("0", T.INT)
    (a,) = args
    if a.type.is_list or a.type is T.MAP:
        return Expr(f"{a.at(FILTER)} | length", T.INT, FILTER, a.pure)
    if a.type in (T.STR, T.ANY, T.NIL):
        return Expr(f"go.len({a.code})", T.INT, ATOM, pure=False)
    calls.problem(f"len of type {a.type.value}")
    return Expr("0", T.INT)


def _index(calls: Calls, name: str, args: list[Expr]) -> Expr:
    if not args:
        calls.problem("wrong number of args for index: want at least 1 got 0")
        return Expr("none", T.NIL)
    item, keys = args[0], args[1:]
    code, type_ = item.at(ATOM), item.type
    for k in keys:
        literal_int = k.type is T.INT and k.code.isdigit()
        if type_.is_list and literal_int:
            code, type_ = f"{code}[{k.code}]", type_.element
        elif type_ is T.MAP and k.type is T.STR and k.pure:
            code, type_ = f"{code}[{k.code}]", T.ANY
        else:
            result = T.INT if item.type is T.STR and len(keys) == 1 else T.ANY
            return Expr(f"go.index({', '.join(a.code for a in args)})", result, ATOM, pure=False)
    return Expr(code, type_, ATOM, pure=False)


def _printing(calls: Calls, name: str, args: list[Expr]) -> Expr:
    return Expr(f"go.{name}({', '.join(a.code for a in args)})", T.STR, ATOM, all(a.pure for a in args))


def _arithmetic(calls: Calls, name: str, args: list[Expr]) -> Expr:
    if len(args) != 2:
        calls.problem(f"wrong number of args for {name}: want 2 got {len(args)}")
        return Expr("0", T.INT)
    a, b = (calls.coerce(x, "int", f"argument {i + 1} of {name}") for i, x in enumerate(args))
    op, prec = {"add": ("+", ADD), "sub": ("-", ADD), "mul": ("*", MUL)}[name]
    if a.pure and b.pure:
        return Expr(f"{a.at(prec)} {op} {b.at(prec + 1)}", T.INT, prec, True)
    return Expr(f"go.{name}({a.code}, {b.code})", T.INT, ATOM, pure=False)


def _reverse(calls: Calls, name: str, args: list[Expr]) -> Expr:
    if len(args) != 1:
        calls.problem(f"wrong number of args for reverse: want 1 got {len(args)}")
        return Expr("none", T.NIL)
    return Expr(f"reverse({args[0].code})", args[0].type, ATOM, args[0].pure)


def _map(calls: Calls, name: str, args: list[Expr]) -> Expr:
    return Expr(f"go.map({', '.join(a.code for a in args)})", T.MAP, ATOM, pure=False)


_SPECIAL: dict[str, Emitter] = {
    "and": _logic,
    "or": _logic,
    "not": _not,
    **dict.fromkeys(_OPS, _compare),
    "len": _len,
    "index": _index,
    "print": _printing,
    "println": _printing,
    "add": _arithmetic,
    "sub": _arithmetic,
    "mul": _arithmetic,
    "reverse": _reverse,
    "map": _map,
}

#: Every function name a confd template may use (Go's parser refuses any other).
KNOWN = frozenset(SPECS) | frozenset(_SPECIAL) | frozenset(REFUSED) | {"printf"}
