"""Go's ``fmt`` for the values a converted confd template handles: ``Sprintf``,
``Sprint``, ``Sprintln`` and the ``%v`` text of a value, as Go prints them.

Values are Python's stand-ins for Go's (see :mod:`confpy.goruntime`): ``str`` for
string, ``bool``, ``int``, ``float`` for float64 (every JSON number), ``None`` for nil,
lists for slices, dicts for maps, :class:`~confpy.keyview.KVPair` for memkv.KVPair.
A wrong verb or a missing argument is printed as Go prints it (``%!d(string=x)``,
``%!s(MISSING)``), not raised.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from confpy.keyview import KVPair


class GoArray(list[Any]):
    """A ``[]interface{}`` (what confd's ``jsonArray`` returns): lists are ``[]string`` otherwise."""


#: Go's names of the types converted templates meet, most specific first (bool is an int).
_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "bool"), (int, "int"), (float, "float64"), (str, "string"), (KVPair, "memkv.KVPair"),
    (Mapping, "map[string]interface {}"), (_dt.datetime, "time.Time"), (GoArray, "[]interface {}"),
)  # fmt: skip


def type_name(v: object) -> str:
    """Go's ``%T`` of a value."""
    if v is None:
        return "<nil>"
    for kind, name in _TYPE_NAMES:
        if isinstance(v, kind):
            return name
    if isinstance(v, Sequence):
        if v and all(isinstance(e, KVPair) for e in v):
            return "memkv.KVPairs"
        if v and all(isinstance(e, int) and not isinstance(e, bool) for e in v):
            return "[]int"
        return "[]string"
    return type(v).__name__


# --- floats --------------------------------------------------------------------------


def _digits(v: float) -> tuple[str, int]:
    """Shortest decimal digits of ``v`` > 0 that read back as ``v``, and the position of
    the decimal point (``v`` = 0.DIGITS × 10**point), as Go's strconv finds them."""
    mant, _, exp = repr(v).partition("e")
    whole, _, frac = mant.partition(".")
    joined = whole + frac
    stripped = joined.lstrip("0")
    point = len(whole) + int(exp or 0) - (len(joined) - len(stripped))
    return stripped.rstrip("0") or "0", point


def _special(v: float) -> str | None:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return None


def format_float_shortest(v: float, e: str = "e") -> str:
    """``strconv.FormatFloat(v, 'g', -1, 64)``: what ``%v`` prints for a float64
    (``64512``, ``1e+06``, ``1.5``, ``1e-05``)."""
    special = _special(v)
    if special is not None:
        return special
    if v == 0:
        return "-0" if math.copysign(1, v) < 0 else "0"
    sign = "-" if v < 0 else ""
    digits, point = _digits(abs(v))
    exp = point - 1
    if exp < -4 or exp >= 6:  # Go: "if precision was the shortest possible, use precision 6"
        frac = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{frac}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


# --- %v ------------------------------------------------------------------------------


def go_time_string(t: _dt.datetime) -> str:
    """Go's ``Time.String()`` (without the monotonic clock reading)."""
    t = t.astimezone() if t.tzinfo is None else t
    offset = t.strftime("%z") or "+0000"
    return f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond:06d}000".rstrip("0").rstrip(".") + f" {offset} {t:%Z}"


def value_text(v: object, plus: bool = False) -> str:
    """``fmt.Sprint`` of one value (``%v``; ``%+v`` names struct fields)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str | int):
        return str(v)
    if isinstance(v, float):
        return format_float_shortest(v)
    if isinstance(v, KVPair):
        return f"{{Key:{v.key} Value:{v.value}}}" if plus else f"{{{v.key} {v.value}}}"
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{value_text(k)}:{value_text(v[k], plus)}" for k in sorted(v)) + "]"
    if isinstance(v, _dt.datetime):
        return go_time_string(v)
    if isinstance(v, Sequence):
        return "[" + " ".join(value_text(e, plus) for e in v) + "]"
    return str(v)


def print_value(v: object) -> str:
    """What ``{{ pipeline }}`` writes: Go's printValue (a missing value is ``<no value>``)."""
    return "<no value>" if v is None else value_text(v)


def sprint(*args: object) -> str:
    """``fmt.Sprint``: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(value_text(a))
    return "".join(out)


def sprintln(*args: object) -> str:
    return " ".join(value_text(a) for a in args) + "\n"


# --- Sprintf -------------------------------------------------------------------------

_SPEC = re.compile(r"%([-+# 0]*)(\[\d+\]\*|\*|\d+)?(?:\.(\[\d+\]\*|\*|\d*))?(\[\d+\])?(.?)", re.DOTALL)


class _Spec:
    def __init__(self, flags: str, width: int | None, prec: int | None, verb: str) -> None:
        self.minus = "-" in flags
        self.plus = "+" in flags
        self.sharp = "#" in flags
        self.space = " " in flags
        self.zero = "0" in flags and not self.minus
        self.width = width
        self.prec = prec
        self.verb = verb

    def pad(self, text: str, zero_ok: bool = True) -> str:
        if self.width is None or len(text) >= self.width:
            return text
        fill = self.width - len(text)
        if self.minus:
            return text + " " * fill
        if self.zero and zero_ok:
            sign = text[0] if text[:1] in ("+", "-", " ") and len(text) > 1 else ""
            return sign + "0" * fill + text[len(sign) :]
        return " " * fill + text


def _bad(verb: str, v: object) -> str:
    return f"%!{verb}(<nil>)" if v is None else f"%!{verb}({type_name(v)}={value_text(v)})"


def _integer(s: _Spec, v: int) -> str:
    verb = s.verb
    if verb == "c":
        return s.pad(chr(v) if 0 <= v <= 0x10FFFF else "\ufffd")
    if verb == "q":
        return s.pad(_quote_rune(v))
    if verb == "U":
        text = f"U+{v:04X}"
        return s.pad(text + (f" '{chr(v)}'" if s.sharp and chr(v).isprintable() else ""))
    base = {"d": 10, "v": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}[verb]
    digits = {2: f"{abs(v):b}", 8: f"{abs(v):o}", 10: str(abs(v)), 16: f"{abs(v):x}"}[base]
    if verb == "X":
        digits = digits.upper()
    if s.prec is not None:
        digits = digits.zfill(s.prec) if not (s.prec == 0 and v == 0) else ""
    elif s.zero and s.width is not None:
        room = s.width - (v < 0 or s.plus or s.space)
        digits = digits.zfill(room)
    prefix = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "") if s.sharp else ""
    if verb == "O":
        prefix = "0o"
    if verb == "o" and s.sharp and digits.startswith("0"):
        prefix = ""
    sign = "-" if v < 0 else "+" if s.plus else " " if s.space else ""
    return s.pad(sign + prefix + digits, zero_ok=False)


def _float(s: _Spec, v: float) -> str:
    verb = s.verb
    special = _special(v)
    if special is not None:
        text = special
        if special[0] == "+" and not s.plus:
            text = (" " if s.space else "") + special[1:]
        return s.pad(text, zero_ok=False)
    if verb in ("v", "g", "G") and s.prec is None:
        text = format_float_shortest(v, "E" if verb == "G" else "e")
    elif verb in ("e", "E", "f", "F", "g", "G", "v"):
        py = {"v": "g", "F": "f"}.get(verb, verb)
        text = f"{v:.{6 if s.prec is None else s.prec}{py}}"
    elif verb == "b":
        mant, exp = math.frexp(abs(v))
        text = f"{'-' if v < 0 else ''}{int(mant * 2**53)}p{exp - 53:+d}"
    else:
        return _bad(verb, v)
    if s.plus and not text.startswith("-"):
        text = "+" + text
    elif s.space and not text.startswith("-"):
        text = " " + text
    return s.pad(text)


_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}


def _quote_char(c: str, quote: str, ascii_only: bool) -> str:
    if c == quote or c == "\\":
        return "\\" + c
    if c in _ESCAPES:
        return _ESCAPES[c]
    code = ord(c)
    if (c.isprintable() or c == " ") and not (ascii_only and code > 0x7E):
        return c
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def go_quote(text: str, ascii_only: bool = False) -> str:
    """``strconv.Quote`` (``QuoteToASCII`` with ``ascii_only``)."""
    return '"' + "".join(_quote_char(c, '"', ascii_only) for c in text) + '"'


def _quote_rune(code: int) -> str:
    return "'" + _quote_char(chr(code), "'", False) + "'" if 0 <= code <= 0x10FFFF else "'\ufffd'"


def _string(s: _Spec, v: str) -> str:
    if s.prec is not None:
        v = v[: s.prec]
    if s.verb == "v" and s.sharp:
        return s.pad(go_quote(v))
    if s.verb in ("s", "v"):
        return s.pad(v)
    if s.verb == "q":
        if s.sharp and "`" not in v and all(c.isprintable() or c == "\t" for c in v):
            return s.pad("`" + v + "`")
        return s.pad(go_quote(v, ascii_only=s.plus))
    if s.verb in ("x", "X"):
        hexes = [f"{b:02x}" for b in v.encode()]
        prefix = "0x" if s.sharp else ""
        text = (
            (" " if s.space else "").join(prefix + h for h in hexes) if s.space else prefix + "".join(hexes)
        )
        return s.pad(text.upper() if s.verb == "X" else text)
    return _bad(s.verb, v)


def _format(s: _Spec, v: object) -> str:
    verb = s.verb
    if verb == "T":
        return s.pad(type_name(v))
    if v is None:
        return s.pad("<nil>") if verb == "v" else _bad(verb, v)
    if isinstance(v, bool):
        return s.pad("true" if v else "false") if verb in ("t", "v") else _bad(verb, v)
    if isinstance(v, str):
        return _string(s, v)
    if isinstance(v, int):
        return _integer(s, v) if verb in "dvbcoOqxXU" else _bad(verb, v)
    if isinstance(v, float):
        return _float(s, v)
    if verb == "v" and s.sharp:
        return s.pad(_go_syntax(v))
    if isinstance(v, KVPair):
        inner = _Spec("", None, s.prec, verb)
        if s.plus and verb == "v":
            return s.pad(f"{{Key:{_format(inner, v.key)} Value:{_format(inner, v.value)}}}")
        return s.pad(f"{{{_format(inner, v.key)} {_format(inner, v.value)}}}")
    if isinstance(v, Mapping):
        inner = _Spec("+" if s.plus else "", None, s.prec, verb)
        return "map[" + " ".join(f"{_format(inner, k)}:{_format(inner, v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, _dt.datetime):
        return s.pad(go_time_string(v)) if verb in ("v", "s") else _bad(verb, v)
    if isinstance(v, Sequence):
        inner = _Spec("+" if s.plus else "", s.width, s.prec, verb)
        return "[" + " ".join(_format(inner, e) for e in v) + "]"
    return _bad(verb, v)


def _go_syntax(v: object) -> str:
    """``%#v`` for the composite values (maps, slices, KVPair)."""
    if v is None:
        return "interface {}(nil)"
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, bool | int | float):
        return value_text(v)
    if isinstance(v, KVPair):
        return f"memkv.KVPair{{Key:{go_quote(v.key)}, Value:{go_quote(v.value)}}}"
    if isinstance(v, Mapping):
        return (
            "map[string]interface {}{"
            + ", ".join(f"{go_quote(k)}:{_go_syntax(v[k])}" for k in sorted(v))
            + "}"
        )
    if isinstance(v, Sequence):
        return type_name(v) + "{" + ", ".join(_go_syntax(e) for e in v) + "}"
    return value_text(v)


def sprintf(fmt: str, *args: Any) -> str:
    """``fmt.Sprintf`` with Go's verbs, flags, width, precision, ``*`` and ``[n]``."""
    out: list[str] = []
    argi = 0
    reordered = False
    i = 0
    while i < len(fmt):
        pct = fmt.find("%", i)
        if pct < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:pct])
        m = _SPEC.match(fmt, pct)
        assert m is not None  # every group is optional
        i = m.end()
        flags, width_t, prec_t, index_t, verb = m.groups()
        if verb == "%" and not (width_t or prec_t is not None or index_t):
            out.append("%")
            continue

        def star(text: str | None, what: str) -> tuple[int | None, str | None]:
            nonlocal argi, reordered
            if text is None or text == "":
                return (0 if text == "" else None), None
            if text.isdigit():
                return int(text), None
            if text.startswith("["):
                argi = int(text[1:-2]) - 1
                reordered = True
            if argi >= len(args) or not isinstance(args[argi], int) or isinstance(args[argi], bool):
                argi += 1
                return None, f"%!(BAD{what})"
            argi += 1
            return args[argi - 1], None

        width, bad_w = star(width_t, "WIDTH")
        prec, bad_p = star(prec_t, "PREC")
        if bad_w:
            out.append(bad_w)
        if bad_p:
            out.append(bad_p)
        if width is not None and width < 0:
            flags, width = flags + "-", -width
        if index_t:
            argi = int(index_t[1:-1]) - 1
            reordered = True
        if verb == "":
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        if argi < 0 or argi >= len(args):
            out.append(f"%!{verb}(BADINDEX)" if index_t else f"%!{verb}(MISSING)")
            continue
        out.append(_format(_Spec(flags, width, prec, verb), args[argi]))
        argi += 1
    if not reordered and argi < len(args):
        extra = ", ".join(_bad_extra(a) for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _bad_extra(v: object) -> str:
    return "<nil>" if v is None else f"{type_name(v)}={value_text(v)}"
