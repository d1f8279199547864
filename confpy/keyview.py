"""What a template sees: a snapshot with the resource prefix cut off, and confd's lookups.

Keys are relative to the resource ``prefix`` (``/calico/bgp/v1/global/as_num`` is
``/global/as_num`` under prefix ``/calico/bgp/v1``). Values are :class:`StoreValue`,
a ``str`` that remembers the full store key, so a filter that rejects a value can name
the key it came from.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from confpy.errors import DataError
from confpy.keys import covers, glob_regex, keys_under, keys_with_prefix, literal_head


class StoreValue(str):
    """A value read from the store; ``.key`` is its full store key.

    ``parsed`` caches what ``json()`` made of it: the cache keeps a value's object for as
    long as the value is unchanged, so an unchanged key is parsed once, not per render.
    """

    __slots__ = ("key", "parsed")
    key: str
    parsed: object

    def __new__(cls, value: str, key: str) -> StoreValue:
        self = super().__new__(cls, value)
        self.key = key
        return self


def parse_json(value: str) -> Any:
    """``value`` parsed as JSON; a store value is parsed once and its object kept (shared
    by every reader: treat it as read-only). A value that is not JSON raises
    :class:`DataError` naming its key (ValueError for a string not from the store)."""
    if type(value) is StoreValue:
        try:
            return value.parsed
        except AttributeError:
            pass
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError, RecursionError) as exc:
        # RecursionError: "[[[[..." nested deeper than Python's parser recurses.
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        if isinstance(value, StoreValue):
            raise DataError(value.key, f"invalid JSON: {why}") from None
        raise ValueError(f"invalid JSON: {why}") from None
    if type(value) is StoreValue:
        value.parsed = parsed
    return parsed


class KVPair(NamedTuple):
    """A key (relative to the prefix) and its value; ``.Key``/``.Value`` for ported Go templates."""

    key: str
    value: StoreValue

    @property
    def Key(self) -> str:  # noqa: N802 - confd's field name
        return self.key

    @property
    def Value(self) -> StoreValue:  # noqa: N802 - confd's field name
        return self.value


class MissingKeyError(LookupError):
    """A lookup named a key the view does not hold."""

    def __init__(self, key: str, full_key: str) -> None:
        super().__init__(full_key)
        self.key = key
        self.full_key = full_key


class KeyView:
    """confd's memkv lookups over the keys of one resource."""

    def __init__(self, prefix: str, values: Mapping[str, str]) -> None:
        self.prefix = "" if prefix in ("", "/") else prefix.rstrip("/")
        cut = len(self.prefix)
        self._values: dict[str, StoreValue] = {
            (k[cut:] or "/"): v if type(v) is StoreValue else StoreValue(v, k) for k, v in values.items()
        }
        self._keys: list[str] = sorted(self._values)

    # --- kept up to date by the cache, change by change (no rebuild of 10,000 keys) ---

    def put(self, full_key: str, value: str) -> None:
        rel = full_key[len(self.prefix) :] or "/"
        if rel not in self._values:
            bisect.insort(self._keys, rel)
        self._values[rel] = _wrap(value, full_key)

    def remove(self, full_key: str) -> None:
        rel = full_key[len(self.prefix) :] or "/"
        if self._values.pop(rel, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, rel)]

    def __len__(self) -> int:
        return len(self._keys)

    def full_key(self, key: str) -> str:
        """The store key behind a relative key."""
        return self.prefix + key

    # --- confd's lookups -------------------------------------------------------------

    def get(self, key: str) -> KVPair:
        try:
            return KVPair(key, self._values[key])
        except KeyError:
            raise MissingKeyError(key, self.full_key(key)) from None

    def getv(self, key: str) -> StoreValue:
        try:
            return self._values[key]
        except KeyError:
            raise MissingKeyError(key, self.full_key(key)) from None

    def exists(self, key: str) -> bool:
        return key in self._values

    def gets(self, pattern: str) -> list[KVPair]:
        """Pairs whose key matches the glob, sorted by key."""
        head = literal_head(pattern)
        values = self._values
        if pattern == head + "*":  # "dir/*", the common case: no regex per key
            cut = len(head)
            return [KVPair(k, values[k]) for k in self._range(head) if "/" not in k[cut:]]
        rx = glob_regex(pattern)
        return [KVPair(k, values[k]) for k in self._range(head) if rx.match(k)]

    def getvs(self, pattern: str) -> list[StoreValue]:
        """Values whose key matches the glob, sorted by value (as confd does)."""
        return sorted(p.value for p in self.gets(pattern))

    def ls(self, path: str) -> list[str]:
        """Sorted, unique names of the immediate children of ``path``."""
        return self._children(path, dirs_only=False)

    def lsdir(self, path: str) -> list[str]:
        """Sorted names of the immediate children of ``path`` that have children."""
        return self._children(path, dirs_only=True)

    # --- for typed context builders: full store keys in, so errors can name them ---

    def items_under_full(self, full_path: str) -> Iterator[tuple[str, StoreValue]]:
        """(full key, value) for ``full_path`` and everything below it, sorted by key."""
        rel = self._relative(full_path)
        if rel is None:
            return
        for k in keys_under(self._keys, rel):
            v = self._values[k]
            yield v.key, v

    def lookup_full(self, full_key: str) -> StoreValue | None:
        """The value at a full store key, or None."""
        rel = self._relative(full_key)
        return None if rel is None else self._values.get(rel)

    # --- internals -------------------------------------------------------------------

    def _relative(self, full_key: str) -> str | None:
        if not covers(self.prefix, full_key):
            return None
        return full_key[len(self.prefix) :] or "/"

    def _range(self, head: str) -> list[str]:
        return keys_with_prefix(self._keys, head)

    def _children(self, path: str, dirs_only: bool) -> list[str]:
        base = path.rstrip("/")
        names: set[str] = set()
        for k in self._range(base + "/"):
            rest = k[len(base) + 1 :]
            name, sep, _ = rest.partition("/")
            if name and (sep or not dirs_only):
                names.add(name)
        return sorted(names)


def _wrap(value: str, full_key: str) -> StoreValue:
    return value if type(value) is StoreValue else StoreValue(value, full_key)
