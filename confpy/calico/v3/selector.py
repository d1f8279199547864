"""Calico's label selector language, parsed once and evaluated against node labels.

The grammar and meanings are those of libcalico-go's selector package (written anew
here): ``all()``, ``global()``, ``has(k)``, ``k == 'v'``, ``k != 'v'``, ``k in {'a', 'b'}``,
``k not in {...}``, ``k contains 's'``, ``k starts with 's'``, ``k ends with 's'``, ``!``,
``&&``, ``||`` and parentheses. ``||`` binds loosest, then ``&&``, then ``!``. A label
that is absent makes ``!=`` and ``not in`` true and every other comparison false. An
empty selector selects everything. Strings are quoted with ``'`` or ``"`` and have no
escapes. Label names are letters, digits and ``_ . / -``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Labels = Mapping[str, str]

MAX_LABEL_LENGTH = 512  # as Calico's tokenizer
#: Parentheses nested deeper than this are refused: the parser recurses once per level, and
#: Python's stack, unlike Go's, is bounded (a RecursionError is no SelectorError).
MAX_NESTING = 100

_LABEL = re.compile(r"[A-Za-z0-9_./-]+")
# Operators after a label; "not in" may be written "notin", as Calico allows.
_LABEL_OPERATORS = (
    ("contains", re.compile(r"contains(?![A-Za-z0-9_./-])")),
    ("starts with", re.compile(r"starts[ \t]*with(?![A-Za-z0-9_./-])")),
    ("ends with", re.compile(r"ends[ \t]*with(?![A-Za-z0-9_./-])")),
    ("not in", re.compile(r"not[ \t]*in(?![A-Za-z0-9_./-])")),
    ("in", re.compile(r"in(?![A-Za-z0-9_./-])")),
)
_COMPARISONS = frozenset({"==", "!=", *(kind for kind, _ in _LABEL_OPERATORS)})
_FUNCTIONS = tuple((name, re.compile(name + r"\([ \t]*")) for name in ("has", "all", "global"))


class SelectorError(ValueError):
    """A selector that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "label", "string", "has", "all", "global", an operator or punctuation, "end"
    value: str = ""


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while True:
        pos = _skip_space(text, pos)
        if pos == len(text):
            tokens.append(Token("end"))
            return tokens
        after_label = bool(tokens) and tokens[-1].kind == "label"
        c = text[pos]
        two = text[pos : pos + 2]
        if c in "(){},":
            tokens.append(Token(c))
            pos += 1
        elif c in "'\"":
            end = text.find(c, pos + 1)
            if end < 0:
                raise SelectorError(f"unterminated string at offset {pos}")
            tokens.append(Token("string", text[pos + 1 : end]))
            pos = end + 1
        elif two in ("==", "!=", "&&", "||"):
            tokens.append(Token(two))
            pos += 2
        elif c == "!":
            tokens.append(Token("!"))
            pos += 1
        elif c in "=&|":
            raise SelectorError(f"expected {c * 2} at offset {pos}")
        elif after_label:
            pos = _label_operator(text, pos, tokens)
        else:
            pos = _word(text, pos, tokens)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _label_operator(text: str, pos: int, tokens: list[Token]) -> int:
    for kind, pattern in _LABEL_OPERATORS:
        m = pattern.match(text, pos)
        if m:
            tokens.append(Token(kind))
            return m.end()
    raise SelectorError(f"expected an operator after label {tokens[-1].value!r} at offset {pos}")


def _word(text: str, pos: int, tokens: list[Token]) -> int:
    """A function call (``has(k)``, ``all()``, ``global()``) or a label name."""
    for kind, pattern in _FUNCTIONS:
        m = pattern.match(text, pos)
        if not m:
            continue
        pos = m.end()
        value = ""
        if kind == "has":
            value, pos = _label(text, pos)
            pos = _skip_space(text, pos)
        if text[pos : pos + 1] != ")":
            raise SelectorError(f"no closing ')' after {kind}( at offset {pos}")
        tokens.append(Token(kind, value))
        return pos + 1
    label, pos = _label(text, pos)
    tokens.append(Token("label", label))
    return pos


def _label(text: str, pos: int) -> tuple[str, int]:
    m = _LABEL.match(text, pos)
    if not m:
        raise SelectorError(f"expected a label name at offset {pos}")
    if len(m[0]) > MAX_LABEL_LENGTH:
        raise SelectorError(f"label name longer than {MAX_LABEL_LENGTH} characters at offset {pos}")
    return m[0], m.end()


# --- the expression tree ---------------------------------------------------------------

Test = Callable[[Labels], bool]


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed selector; ``matches(labels)`` evaluates it, ``text`` is what was parsed."""

    text: str
    _test: Test = field(compare=False, repr=False)

    def matches(self, labels: Labels) -> bool:
        return self._test(labels)


def parse(text: str) -> Selector:
    """``text`` as a :class:`Selector`; :class:`SelectorError` says what is wrong."""
    tokens = tokenize(text)
    if tokens[0].kind == "end":
        return Selector(text, lambda labels: True)
    parser = _Parser(tokens)
    test = parser.or_expression()
    if parser.peek.kind != "end":
        raise SelectorError(f"unexpected {_show(parser.peek)} after a complete selector")
    return Selector(text, test)


def _show(token: Token) -> str:
    if token.kind in ("label", "string"):
        return f"{token.kind} {token.value!r}"
    return "end of selector" if token.kind == "end" else repr(token.kind)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._i = 0
        self._depth = 0  # parentheses open

    @property
    def peek(self) -> Token:
        return self._tokens[self._i]

    def _take(self) -> Token:
        token = self._tokens[self._i]
        if token.kind != "end":
            self._i += 1
        return token

    def _expect(self, kind: str, what: str) -> Token:
        token = self._take()
        if token.kind != kind:
            raise SelectorError(f"expected {what}, found {_show(token)}")
        return token

    def or_expression(self) -> Test:
        terms = [self.and_expression()]
        while self.peek.kind == "||":
            self._take()
            terms.append(self.and_expression())
        if len(terms) == 1:
            return terms[0]
        return lambda labels: any(t(labels) for t in terms)

    def and_expression(self) -> Test:
        terms = [self.operation()]
        while self.peek.kind == "&&":
            self._take()
            terms.append(self.operation())
        if len(terms) == 1:
            return terms[0]
        return lambda labels: all(t(labels) for t in terms)

    def operation(self) -> Test:
        negated = False
        while self.peek.kind == "!":
            self._take()
            negated = not negated
        test = self._positive()
        if negated:
            return lambda labels: not test(labels)
        return test

    def _positive(self) -> Test:
        token = self._take()
        if token.kind in ("all", "global"):
            # global() means "not namespaced"; nodes are never namespaced.
            return lambda labels: True
        if token.kind == "has":
            name = token.value
            return lambda labels: name in labels
        if token.kind == "(":
            if self._depth == MAX_NESTING:
                raise SelectorError(f"parentheses nested deeper than {MAX_NESTING}")
            self._depth += 1
            test = self.or_expression()
            self._expect(")", "')'")
            self._depth -= 1
            return test
        if token.kind == "label":
            return self._comparison(token.value)
        raise SelectorError(f"unexpected {_show(token)}")

    def _comparison(self, name: str) -> Test:
        op = self._take().kind
        if op not in _COMPARISONS:
            raise SelectorError(f"expected an operator after label {name!r}")
        if op in ("in", "not in"):
            values = self._set_literal()
            if op == "in":
                return lambda labels: labels.get(name) in values
            return lambda labels: labels.get(name) not in values
        value = self._expect("string", "a quoted string").value
        if op == "==":
            return lambda labels: labels.get(name) == value
        if op == "!=":
            return lambda labels: labels.get(name) != value
        compare: Callable[[str, str], bool] = {
            "contains": str.__contains__,
            "starts with": str.startswith,
            "ends with": str.endswith,
        }[op]
        return lambda labels: name in labels and compare(labels[name], value)

    def _set_literal(self) -> frozenset[str]:
        """``{'a', 'b'}``; ``{}`` and a trailing comma are allowed, as in Calico."""
        self._expect("{", "'{'")
        values = []
        while self.peek.kind == "string":
            values.append(self._take().value)
            if self.peek.kind != ",":
                break
            self._take()
        self._expect("}", "'}'")
        return frozenset(values)
