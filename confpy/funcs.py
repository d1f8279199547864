"""confd's template functions and confpy's validating filters, under confd's names.

What a template author looks for: every function here is pure (it needs no store;
the lookups ``getv``, ``gets``, ``ls``... are bound to a resource's keys by
:mod:`confpy.render`). A value that fails a check raises :class:`DataError` naming the
store key it came from.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import ipaddress
import os
import posixpath
import socket
from collections.abc import Callable
from typing import Any, NoReturn

import jinja2

from confpy import validate
from confpy.errors import DataError
from confpy.keyview import StoreValue, parse_json


def _fail(value: object, message: str) -> NoReturn:
    """Raise a DataError naming the store key behind ``value`` when there is one."""
    if isinstance(value, StoreValue):
        raise DataError(value.key, message)
    raise ValueError(message)


def _validating(check: Callable[[object], object]) -> Callable[[object], object]:
    def apply(value: object) -> object:
        if isinstance(value, jinja2.Undefined):
            return value
        try:
            return check(value)
        except ValueError as exc:
            _fail(value, str(exc))

    apply.__name__ = getattr(check, "__name__", "check")
    return apply


def _parse_json(value: object) -> Any:
    if isinstance(value, jinja2.Undefined):
        return value
    return parse_json(value)  # type: ignore[arg-type]


def _json_object(value: object) -> Any:
    parsed = _parse_json(value)
    if not isinstance(parsed, dict | jinja2.Undefined):
        _fail(value, "JSON value is not an object")
    return parsed


def _json_array(value: object) -> Any:
    parsed = _parse_json(value)
    if not isinstance(parsed, list | jinja2.Undefined):
        _fail(value, "JSON value is not an array")
    return parsed


def _go_base(path: str) -> str:
    if path == "":
        return "."
    path = path.rstrip("/")
    return "/" if path == "" else path.rsplit("/", 1)[-1]


def _go_dir(path: str) -> str:
    head = path[: path.rfind("/") + 1]
    return posixpath.normpath(head) if head else "."


def _split(value: str, sep: str) -> list[str]:
    return list(value) if sep == "" else str(value).split(sep)


def _getenv(name: str, default: str = "") -> str:
    return os.environ.get(name) or default


def _atoi(value: str) -> int:
    text = str(value)
    if not (text.lstrip("+-").isdigit() and text.isascii()):
        _fail(value, f"{text!r} is not an integer")
    return int(text)


def hash_to_ipv4(name: str) -> str:
    """confd's ``hashToIPv4``: the first four bytes of SHA-256(name) as a dotted quad."""
    return str(ipaddress.IPv4Address(hashlib.sha256(name.encode("utf-8")).digest()[:4]))


def _lookup_ip(name: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(str(name), None)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def _parse_bool(value: str) -> bool:
    text = str(value)
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    _fail(value, f"{text!r} is not a boolean")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json_object,
    "jsonArray": _json_array,
    "base": _go_base,
    "dir": _go_dir,
    "split": _split,
    "join": lambda items, sep: sep.join(str(i) for i in items),
    "getenv": _getenv,
    "contains": lambda s, sub: sub in s,
    "replace": lambda s, old, new, n=-1: str(s).replace(old, new, n),
    "trimSuffix": lambda s, suffix: str(s).removesuffix(suffix),
    "hasSuffix": lambda s, suffix: str(s).endswith(suffix),
    "hasPrefix": lambda s, prefix: str(s).startswith(prefix),
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "atoi": _atoi,
    "parseBool": _parse_bool,
    "seq": lambda first, last: list(range(int(first), int(last) + 1)),
    "datetime": _dt.datetime.now,
    "fileExists": lambda path: os.path.exists(path),
    "base64Encode": lambda s: base64.b64encode(str(s).encode()).decode(),
    "base64Decode": lambda s: base64.b64decode(str(s)).decode(),
    "lookupIP": _lookup_ip,
    "hashToIPv4": hash_to_ipv4,
    "reverse": lambda items: list(reversed(items)),
    "sortByLength": lambda items: sorted(items, key=len),
    "sortKVByLength": lambda pairs: sorted(pairs, key=lambda p: len(p.key)),
}

FILTERS: dict[str, Callable[[object], object]] = {
    "ipv4": _validating(validate.ipv4),
    "ipv6": _validating(validate.ipv6),
    "ip": _validating(validate.ip),
    "cidr": _validating(validate.cidr),
    "asn": _validating(validate.asn),
}
