"""Reading one resource's JSON field by field; every error names the etcd key and the field.

``Fields(key, obj).child("spec").string("peerIP")`` returns the value, a default when the
field is absent or null, or raises :class:`DataError`
``key /calico/resources/v3/projectcalico.org/bgppeers/p1: spec.peerIP: 42 is not a string``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from confpy.errors import DataError

T = TypeVar("T")

MAX_ASN = 4294967295


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Fields:
    """A JSON object inside a resource, at ``path`` (``""`` for the resource itself)."""

    def __init__(self, key: str, obj: object, path: str = "") -> None:
        if not isinstance(obj, dict):
            raise DataError(key, f"{path or 'the value'}: {_show(obj)} is not a JSON object")
        self.key = key
        self.path = path
        self._obj: dict[str, Any] = obj

    def where(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> DataError:
        return DataError(self.key, f"{self.where(name)}: {message}")

    def has(self, name: str) -> bool:
        return self._obj.get(name) is not None

    def raw(self, name: str) -> Any:
        return self._obj.get(name)

    def child(self, name: str) -> Fields:
        """The object at ``name``; an absent or null one reads as an empty object."""
        value = self._obj.get(name)
        return Fields(self.key, {} if value is None else value, self.where(name))

    def _typed(self, name: str, kinds: type | tuple[type, ...], what: str, default: T) -> Any:
        value = self._obj.get(name)
        if value is None:
            return default
        if not isinstance(value, kinds) or isinstance(value, bool) != (kinds is bool):
            raise self.error(name, f"{_show(value)} is not {what}")
        return value

    def string(self, name: str, default: str = "") -> str:
        result: str = self._typed(name, str, "a string", default)
        return result

    def boolean(self, name: str, default: bool = False) -> bool:
        result: bool = self._typed(name, bool, "true or false", default)
        return result

    def integer(self, name: str, low: int, high: int, default: int = 0) -> int:
        value: int = self._typed(name, int, "an integer", default)
        if value != default and not low <= value <= high:
            raise self.error(name, f"{value} is not between {low} and {high}")
        return value

    def strings(self, name: str) -> dict[str, str]:
        """A map of strings to strings (labels)."""
        obj = self.child(name)
        for k, v in obj._obj.items():
            if not isinstance(v, str):
                raise obj.error(k, f"{_show(v)} is not a string")
        return dict(obj._obj)

    def items(self, name: str) -> Iterator[tuple[str, Any]]:
        """The elements of the list at ``name`` with their paths (``name[0]``, ...)."""
        value = self._obj.get(name)
        if value is None:
            return
        if not isinstance(value, list):
            raise self.error(name, f"{_show(value)} is not a list")
        for i, item in enumerate(value):
            yield f"{self.where(name)}[{i}]", item

    def objects(self, name: str) -> Iterator[Fields]:
        for path, item in self.items(name):
            yield Fields(self.key, item, path)

    def checked(self, name: str, check: Callable[[str], T], text: str) -> T:
        """``check(text)`` with a ValueError turned into an error naming this field."""
        try:
            return check(text)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def asn(self, name: str) -> int:
        """An AS number as Calico's API takes it: a JSON number, a decimal string or the
        dotted ``a.b`` form; 0 when absent (which Calico treats as "not set")."""
        value = self._obj.get(name)
        if value is None:
            return 0
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ASN:
            return value
        if isinstance(value, str):
            number = _asn_text(value)
            if number is not None:
                return number
        raise self.error(name, f"{_show(value)} is not an AS number")

    def unsupported(self, name: str, why: str, allowed: Callable[[Any], bool] = lambda v: not v) -> None:
        """An error when ``name`` holds a value other than its "off" values: a setting whose
        effect confpy's templates cannot express must not be dropped without a word."""
        value = self._obj.get(name)
        if value is not None and not allowed(value):
            raise self.error(name, f"{_show(value)}: {why}")


def _asn_text(text: str) -> int | None:
    if text.isascii() and text.isdigit():
        number = int(text)
        return number if number <= MAX_ASN else None
    high, dot, low = text.partition(".")
    if dot and all(p.isascii() and p.isdigit() and int(p) <= 65535 for p in (high, low)):
        return (int(high) << 16) + int(low)
    return None
