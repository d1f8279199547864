"""Every rule about store key paths, in one place, with one meaning.

A key path ``K`` *covers* ``K`` itself and everything below it (``K/...``), never a
sibling that merely starts with the same letters (``K10``, ``Kv6``, ``K-b``). A trailing
slash changes nothing (``/a/`` is ``/a``); ``""`` and ``/`` cover every key. confd
compares plain strings, which leaks ``/host/node10`` into ``/host/node1`` and
``/calico/staticroutesv6`` into ``/calico/staticroutes``: confpy never does.

Resources, the cache, the key views and every store use these functions.
"""

from __future__ import annotations

import bisect
import posixpath
import re
import sys
from collections.abc import Iterable
from functools import lru_cache

NODENAME = "//NODENAME"


def join(*parts: str) -> str:
    """Go's ``path.Join("/", ...)``: one leading slash, no doubled or trailing slashes."""
    return posixpath.normpath("/" + "/".join(p for p in parts if p)).replace("//", "/")


def substitute_node(text: str, node_name: str) -> str:
    """confd's ``//NODENAME`` -> ``/<node name>``."""
    return text.replace(NODENAME, "/" + node_name)


def _path(prefix: str) -> str:
    """``prefix`` without its trailing slashes; ``""`` for the root."""
    return prefix.rstrip("/")


def covers(prefix: str, key: str) -> bool:
    """True when ``key`` is ``prefix`` itself or lies below it (``prefix/...``)."""
    p = _path(prefix)
    if not p:
        return True
    return key == p or (key.startswith(p) and key[len(p) : len(p) + 1] == "/")


def covered_by_any(prefixes: Iterable[str], key: str) -> bool:
    return any(covers(p, key) for p in prefixes)


def collapse(prefixes: Iterable[str]) -> list[str]:
    """The fewest prefixes covering what ``prefixes`` cover: ``["/a", "/a/b", "/av6"]``
    -> ``["/a", "/av6"]``. One range read and one watch per distinct subtree.

    Sorted by path segments, so that a prefix's descendants follow it directly
    (``/a``, ``/a/b``, ``/a-b``), and returned in string order.
    """
    out: list[str] = []
    for p in sorted({_path(p) for p in prefixes}, key=lambda p: p.split("/")):
        if out and covers(out[-1], p):
            continue
        out.append(p)
    return sorted(out)


def keys_with_prefix(keys: list[str], head: str) -> list[str]:
    """The keys of a sorted list that start with the *string* ``head``, in order (for
    globs and directory listings): one slice between two bisections."""
    start = bisect.bisect_left(keys, head)
    if not head:
        return keys[start:]
    last = ord(head[-1])
    if last == sys.maxunicode:  # no successor character: walk instead
        end = start
        while end < len(keys) and keys[end].startswith(head):
            end += 1
    else:
        end = bisect.bisect_left(keys, head[:-1] + chr(last + 1), start)
    return keys[start:end]


def keys_under(keys: list[str], prefix: str) -> list[str]:
    """The keys of a sorted list that ``prefix`` covers, in order."""
    p = _path(prefix)
    if not p:
        return keys[:]
    below = keys_with_prefix(keys, p + "/")
    i = bisect.bisect_left(keys, p)
    # ``p`` itself sorts before everything below it.
    return [p, *below] if i < len(keys) and keys[i] == p else below


def byte_range(prefix: bytes) -> tuple[bytes, bytes]:
    """The smallest ``[start, end)`` of byte strings holding every key ``prefix`` covers
    (etcd's range form; ``end == b"\\0"`` means "to the end of the key space").

    ``K`` and ``K/...`` lie in ``[K, K0)`` (``0`` follows ``/``). The range also holds
    ``K-b`` or ``K.x`` (bytes below ``/``), which the reader drops with :func:`covers`.
    """
    p = prefix.rstrip(b"/")
    if not p:
        return b"\0", b"\0"
    return p, p + b"0"


# --- globs (confd's gets/getvs patterns) ------------------------------------------

_GLOB_META = re.compile(r"[*?\[\\]")


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` as a regex: ``*`` and ``?`` never cross ``/``."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("^", "!") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body[:1] in ("^", "!"):
                    body = "^" + body[1:]
                out.append("(?!/)[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def literal_head(pattern: str) -> str:
    """The part of a glob before its first wildcard: every match starts with it."""
    m = _GLOB_META.search(pattern)
    return pattern if m is None else pattern[: m.start()]


def as_bytes(text: str) -> bytes:
    """A key or value as etcd holds it: UTF-8, with the bytes :func:`as_text` kept."""
    return text.encode("utf-8", "surrogateescape")


def as_text(raw: bytes) -> str:
    """A key or value from etcd as ``str``: UTF-8, a byte that is not kept as a lone
    surrogate (``surrogateescape``). Every byte string maps to a distinct ``str`` and
    back, so keys never merge, and a value that is not UTF-8 fails only the resources
    that print it (their writer encodes strictly)."""
    return raw.decode("utf-8", "surrogateescape")
