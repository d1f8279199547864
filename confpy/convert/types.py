"""What the converter knows of a value when it writes the Jinja for it.

A Go template is untyped, but most of confd's values have a known type: ``getv``
gives a string, ``ls`` a list of strings, ``len`` an int. Knowing it lets the
converter write plain Jinja (``{{ name }}``, ``a == b``); what it cannot know (JSON
data, ``index`` of it) goes through the ``go`` runtime.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class T(enum.Enum):
    STR = "string"
    INT = "int"
    FLOAT = "float64"
    BOOL = "bool"
    NIL = "nil"
    KV = "memkv.KVPair"
    MAP = "map[string]interface {}"
    TIME = "time.Time"
    LIST_STR = "[]string"
    LIST_KV = "memkv.KVPairs"
    LIST_INT = "[]int"
    LIST_ANY = "[]interface {}"
    ANY = "interface {}"

    @property
    def is_list(self) -> bool:
        return self in (T.LIST_STR, T.LIST_KV, T.LIST_INT, T.LIST_ANY)

    @property
    def element(self) -> T:
        return {T.LIST_STR: T.STR, T.LIST_KV: T.KV, T.LIST_INT: T.INT}.get(self, T.ANY)

    @property
    def prints_as_is(self) -> bool:
        """Python's str() of the value is Go's text of it."""
        return self in (T.STR, T.INT)

    @property
    def comparable(self) -> bool:
        """A kind Go's eq/lt accept (and Python compares the same way)."""
        return self in (T.STR, T.INT, T.BOOL, T.FLOAT)


def union(a: T, b: T) -> T:
    return a if a is b else T.ANY


# Jinja operator precedence, loosest first: what needs parentheses inside what.
OR, AND, NOT, CMP, ADD, CONCAT, MUL, UNARY, FILTER, ATOM = range(1, 11)


@dataclass(frozen=True)
class Expr:
    """Jinja code for a value: its type, the precedence of its outermost operator, and
    whether it is pure: cannot fail and costs nothing to evaluate again (``eq a b c`` may
    then be ``a == b or a == c``)."""

    code: str
    type: T
    prec: int = ATOM
    pure: bool = True
    truthy: T | None = None  # the type when the value is true, if narrower (``and``'s last)

    @property
    def when_true(self) -> T:
        return self.truthy or self.type

    def at(self, prec: int) -> str:
        """The code, parenthesised if its operator binds looser than ``prec``."""
        return self.code if self.prec >= prec else f"({self.code})"
