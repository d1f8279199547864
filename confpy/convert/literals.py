"""Go's literals as its template parser reads them: ``strconv.Unquote`` for strings and
character constants, and the number rules of ``parse.newNumber``."""

from __future__ import annotations

import re

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_HEX = {"x": 2, "u": 4, "U": 8}


def _unescape(body: str, quote: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            if c == quote or c == "\n":
                raise ValueError("invalid syntax")
            out.append(c)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        if e in _SIMPLE:
            out.append(_SIMPLE[e])
            i += 2
        elif e == quote:
            out.append(quote)
            i += 2
        elif e in _HEX:
            digits = body[i + 2 : i + 2 + _HEX[e]]
            if len(digits) != _HEX[e] or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise ValueError("invalid syntax")
            code = int(digits, 16)
            if e == "x":
                # \xNN is a byte; Go strings are bytes, confd's values UTF-8.
                out.append(chr(code))
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError("invalid syntax")
            else:
                out.append(chr(code))
            i += 2 + _HEX[e]
        elif e in "01234567" and e != "":
            digits = body[i + 1 : i + 4]
            if not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


def unquote(token: str) -> str:
    """The value of a Go string literal (``"..."`` or a raw ``...`` one); ValueError if bad."""
    if len(token) >= 2 and token[0] == token[-1] == "`":
        return token[1:-1].replace("\r", "")
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return _unescape(token[1:-1], '"')
    raise ValueError("invalid syntax")


def unquote_char(token: str) -> int:
    """The code point of a Go character constant such as ``'a'`` or ``'\\n'``."""
    if len(token) < 3 or token[0] != "'" or token[-1] != "'":
        raise ValueError(f"malformed character constant: {token}")
    value = _unescape(token[1:-1], "'")
    if len(value) != 1:
        raise ValueError(f"malformed character constant: {token}")
    return ord(value)


_OLD_OCTAL = re.compile(r"[+-]?0[0-7_]+")


def _parse_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)``: 0x, 0o, 0b, a leading 0 for octal, underscores."""
    try:
        if _OLD_OCTAL.fullmatch(text):
            value = int(text.replace("0", "0o", 1) if text[0] == "0" else text[0] + "0o" + text[2:], 0)
        else:
            value = int(text, 0)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**64 else None


def _parse_float(text: str) -> float | None:
    body = text.lstrip("+-")
    try:
        if body[:2] in ("0x", "0X"):
            value = float.fromhex(body.replace("_", ""))
            return -value if text.startswith("-") else value
        return float(text)
    except ValueError:
        return None


def parse_number(text: str) -> tuple[int | float, int | None]:
    """(the value Go gives a constant where no type is asked for, its int value if any).

    Go makes it a float64 when it is written with ``.``, ``e`` or ``p`` (not a hex int),
    else an int. Complex constants are refused by the caller. ValueError if not a number.
    """
    as_int = _parse_int(text)
    if as_int is not None:
        if as_int >= 2**63:
            raise ValueError(f"{text} overflows int")
        return as_int, as_int
    value = _parse_float(text)
    if value is None:
        raise ValueError(f"illegal number syntax: {text!r}")
    if not re.search("[.eEpP]", text):
        raise ValueError(f"integer overflow: {text!r}")
    integral = int(value) if value == value and abs(value) != float("inf") and value == int(value) else None
    return value, integral
