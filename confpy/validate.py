"""Validators for values that reach a configuration file.

Each returns the value in canonical text form or raises :class:`ValueError` with a
message saying what the value is not; callers add the store key (see
:class:`confpy.errors.DataError`).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata


def _show(value: object) -> str:
    text = repr(str(value))
    return text if len(text) <= 80 else text[:77] + "...'"


def _no_scope(value: object) -> str:
    """Python accepts ``fe80::1%<anything but / and %>`` as an IPv6 address; the scope
    id is free text that would reach the config file, so it is refused."""
    text = str(value)
    if "%" in text:
        raise ValueError
    return text


def ipv4(value: object) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise ValueError(f"{_show(value)} is not an IPv4 address") from None


def ipv6(value: object) -> str:
    try:
        return str(ipaddress.IPv6Address(_no_scope(value)))
    except ValueError:
        raise ValueError(f"{_show(value)} is not an IPv6 address") from None


def ip(value: object) -> str:
    try:
        return str(ipaddress.ip_address(_no_scope(value)))
    except ValueError:
        raise ValueError(f"{_show(value)} is not an IP address") from None


def cidr(value: object, version: int | None = None) -> str:
    """A network in CIDR form (host bits must be zero), e.g. ``192.168.0.0/16``."""
    try:
        text = _no_scope(value)
        if "/" not in text:
            raise ValueError
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise ValueError(f"{_show(value)} is not a CIDR") from None
    if version is not None and net.version != version:
        raise ValueError(f"{_show(value)} is not an IPv{version} CIDR")
    return str(net)


def asn(value: object) -> int:
    """An AS number, 1 to 4294967295 (4-byte ASNs as plain integers)."""
    text = str(value).strip() if isinstance(value, str) else value
    if isinstance(text, bool):
        raise ValueError(f"{_show(value)} is not an AS number")
    if isinstance(text, float) and text.is_integer():
        text = int(text)
    if isinstance(text, str) and text.isdigit() and text.isascii() and len(text) <= 10:
        text = int(text)
    if not isinstance(text, int) or not 1 <= text <= 4294967295:
        raise ValueError(f"{_show(value)} is not an AS number")
    return text


def integer(value: object, what: str, low: int, high: int) -> int:
    """An integer ``low``..``high`` from a JSON number or an ASCII decimal string."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        number: object = int(value)
    else:
        number = value
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ValueError(f"{_show(value)} is not {what} ({low}-{high})")
    return number


def port(value: object) -> int:
    return integer(value, "a TCP port", 1, 65535)


# Linux interface names: at most IFNAMSIZ-1 = 15 bytes. The kernel allows nearly any
# byte except "/" and whitespace; real tunnel devices (tunl0, vxlan.calico) use these.
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}")


def interface_name(value: object) -> str:
    text = str(value)
    if not _IFNAME.fullmatch(text):
        raise ValueError(f"{_show(value)} is not an interface name")
    return text


def community(value: object) -> tuple[int, ...]:
    """A BGP community: ``a:b`` (standard, each 0-65535) or ``a:b:c`` (large, each 0-4294967295)."""
    parts = str(value).split(":")
    limit = {2: 65535, 3: 4294967295}.get(len(parts))
    if limit is not None and all(p.isascii() and p.isdigit() and len(p) <= 10 for p in parts):
        numbers = tuple(int(p) for p in parts)
        if all(n <= limit for n in numbers):
            return numbers
    raise ValueError(f"{_show(value)} is not a BGP community (a:b or a:b:c)")


def cluster_id(value: object) -> str:
    """A route-reflector cluster id, written as a dotted quad."""
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise ValueError(f"{_show(value)} is not a cluster id (a dotted quad such as 10.0.0.1)") from None


_WORD = re.compile(r"[A-Za-z]{0,16}")


def log_level(value: object) -> str:
    """Calico's BIRD log level: ``debug``, ``none``, or ``info`` for any other word.

    Calico's templates treat every value but ``debug`` and ``none`` as "states only";
    that is kept, but a value that is not a word is refused rather than ignored.
    """
    text = str(value)
    if not _WORD.fullmatch(text):
        raise ValueError(f"{_show(value)} is not a log level (debug, info or none)")
    return text if text in ("debug", "none") else "info"


# Kubernetes node names (RFC 1123 subdomains) and host names, with "_" tolerated.
_NODE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")


def node_name(value: object) -> str:
    text = str(value)
    if not _NODE_NAME.fullmatch(text):
        raise ValueError(f"{_show(value)} is not a node name")
    return text


# Control, format (bidi overrides), surrogate and line/paragraph separator characters.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def bird_string(value: object, max_bytes: int | None = None) -> str:
    """``value`` as a BIRD string literal, quotes included.

    BIRD 1.6 reads a string as ``"`` then anything but ``"`` and newline, then ``"``:
    there is no escape sequence, so a value that could end the literal cannot be
    written at all and is refused. Backslashes are refused too (BIRD 2 reads them
    as escapes), and so are control characters and text that is not valid UTF-8.
    """
    text = str(value)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{_show(value)} is not valid UTF-8") from None
    bad = next((c for c in text if c in '"\\' or unicodedata.category(c) in _UNPRINTABLE), None)
    if bad is not None:
        raise ValueError(f"{_show(value)} contains {bad!r}, which cannot be written in a BIRD string")
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{_show(value)} is longer than {max_bytes} bytes")
    return f'"{text}"'
