"""The tokenizer of Go's text/template language, as Go 1.16+ reads it.

It follows the state machine of Go's ``text/template/parse/lex.go``: text up to
``{{``; inside an action, spaces (newlines included), ``:=``, ``=``, ``|``, strings,
raw strings, character constants, numbers, ``$variables``, ``.fields``, identifiers,
keywords, parentheses; comments ``{{/* ... */}}``; trim markers ``{{- `` and `` -}}``.

Unlike Go's lexer, a text item keeps the text a trim marker removes (``raw`` and the
cut lengths): the converter lays the Jinja template out as the Go one was laid out
and lets Jinja's own markers do the trimming.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

from confpy.convert.errors import Position, Problem, SourceMap

#: What Go's trim markers remove, and what separates words in an action.
GO_SPACE = " \t\r\n"


class Kind(enum.Enum):
    TEXT = "text"
    COMMENT = "comment"
    LEFT = "{{"
    RIGHT = "}}"
    SPACE = "space"
    DECLARE = ":="
    ASSIGN = "="
    PIPE = "|"
    LPAREN = "("
    RPAREN = ")"
    CHAR = "character"  # printable ASCII, e.g. the comma of "range $i, $v :="
    STRING = "string"
    RAW_STRING = "raw string"
    CHAR_CONSTANT = "character constant"
    NUMBER = "number"
    COMPLEX = "complex constant"
    BOOL = "bool"
    VARIABLE = "variable"
    FIELD = "field"
    IDENTIFIER = "identifier"
    KEYWORD = "keyword"
    DOT = "."
    EOF = "EOF"


KEYWORDS = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "nil", "range", "template", "with"}
)


@dataclass(frozen=True)
class Item:
    kind: Kind
    val: str
    pos: Position
    #: TEXT: the text as written and how much of each end a trim marker removes.
    raw: str = ""
    cut_start: int = 0
    cut_end: int = 0
    #: LEFT and COMMENT: ``{{-``; RIGHT and COMMENT: ``-}}``.
    ltrim: bool = False
    rtrim: bool = False

    def describe(self) -> str:
        if self.kind is Kind.KEYWORD:
            return f"<{self.val}>"
        if self.kind in (Kind.EOF, Kind.SPACE):
            return str(self.kind.value)
        return repr(self.val) if len(self.val) <= 12 else repr(self.val[:12]) + "..."


def _is_space(c: str) -> bool:
    return c != "" and c in GO_SPACE


def _is_alnum(c: str) -> bool:
    if c == "":
        return False
    return c == "_" or unicodedata.category(c)[0] == "L" or unicodedata.category(c) == "Nd"


class LexError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Lexer:
    def __init__(self, source: str, where: SourceMap) -> None:
        self.src = source
        self.where = where
        self.pos = 0
        self.start = 0
        self.items: list[Item] = []
        self.paren_depth = 0

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def error(self, message: str, at: int | None = None) -> LexError:
        return LexError(Problem(self.where.position(self.start if at is None else at), message))

    def emit(self, kind: Kind, **extra: object) -> None:
        val = self.src[self.start : self.pos]
        self.items.append(Item(kind, val, self.where.position(self.start), **extra))  # type: ignore[arg-type]
        self.start = self.pos

    def left_trim_at(self, i: int) -> bool:
        return self.src.startswith("-", i) and _is_space(self.src[i + 1 : i + 2])

    def at_right_delim(self) -> tuple[bool, bool]:
        """(at a right delimiter, with a trim marker before it)."""
        if _is_space(self.peek()) and self.src.startswith("-}}", self.pos + 1):
            return True, True
        return self.src.startswith("}}", self.pos), False

    def space_run(self) -> int:
        rest = self.src[self.pos :]
        return len(rest) - len(rest.lstrip(GO_SPACE))

    # --- text and delimiters -----------------------------------------------------

    def run(self) -> list[Item]:
        cut_start = 0
        while True:
            found = self.src.find("{{", self.pos)
            end = len(self.src) if found < 0 else found
            raw = self.src[self.start : end]
            cut_end = len(raw) - len(raw.rstrip(GO_SPACE)) if found >= 0 and self.left_trim_at(end + 2) else 0
            self.pos = end
            if raw:
                self.emit(Kind.TEXT, raw=raw, cut_start=cut_start, cut_end=min(cut_end, len(raw) - cut_start))
            if found < 0:
                self.emit(Kind.EOF)
                return self.items
            cut_start = self.action()

    def action(self) -> int:
        """One ``{{ ... }}``; returns how much of the next text its right trim removes."""
        self.pos += 2
        ltrim = self.left_trim_at(self.pos)
        if self.src.startswith("/*", self.pos + (2 if ltrim else 0)):
            return self.comment(ltrim)
        self.emit(Kind.LEFT, ltrim=ltrim)
        if ltrim:
            self.pos += 2
            self.start = self.pos
        self.paren_depth = 0
        while True:
            delim, rtrim = self.at_right_delim()
            if delim:
                if self.paren_depth:
                    raise self.error("unclosed left paren", self.pos)
                self.pos += 1 if rtrim else 0
                self.start = self.pos
                self.pos += 3 if rtrim else 2
                self.emit(Kind.RIGHT, rtrim=rtrim)
                return self.space_run() if rtrim else 0
            self.inside()

    def comment(self, ltrim: bool) -> int:
        begin = self.start
        body = self.pos + (2 if ltrim else 0) + 2
        close = self.src.find("*/", body)
        if close < 0:
            raise self.error("unclosed comment", begin)
        self.pos = close + 2
        delim, rtrim = self.at_right_delim()
        if not delim:
            raise self.error("comment ends before closing delimiter", begin)
        self.pos += 4 if rtrim else 2
        self.items.append(
            Item(Kind.COMMENT, self.src[body:close], self.where.position(begin), ltrim=ltrim, rtrim=rtrim)
        )
        self.start = self.pos
        return self.space_run() if rtrim else 0

    # --- inside an action --------------------------------------------------------

    def inside(self) -> None:
        self.start = self.pos
        c = self.peek()
        if c == "":
            raise self.error("unclosed action")
        if _is_space(c):
            while _is_space(self.peek()):
                self.pos += 1
            if self.src.startswith("-}}", self.pos):
                self.pos -= 1  # the last space belongs to " -}}"
            if self.pos > self.start:
                self.emit(Kind.SPACE)
            return
        self.pos += 1
        if c == ":":
            if self.peek() != "=":
                raise self.error("expected :=")
            self.pos += 1
            self.emit(Kind.DECLARE)
        elif c in "=|()":
            self.paren(c)
        elif c == '"':
            self.quoted('"', Kind.STRING, "unterminated quoted string")
        elif c == "'":
            self.quoted("'", Kind.CHAR_CONSTANT, "unterminated character constant")
        elif c == "`":
            close = self.src.find("`", self.pos)
            if close < 0:
                raise self.error("unterminated raw quoted string")
            self.pos = close + 1
            self.emit(Kind.RAW_STRING)
        elif c == "$":
            self.word(Kind.VARIABLE)
        elif c == "." and self.peek() != "" and not "0" <= self.peek() <= "9":
            self.word(Kind.FIELD)
        elif c in "+-." or "0" <= c <= "9":
            self.pos -= 1
            self.number()
        elif _is_alnum(c):
            self.identifier()
        elif c.isascii() and c.isprintable():
            self.emit(Kind.CHAR)
        else:
            raise self.error(f"unrecognized character in action: U+{ord(c):04X}")

    def paren(self, c: str) -> None:
        kinds = {"=": Kind.ASSIGN, "|": Kind.PIPE, "(": Kind.LPAREN, ")": Kind.RPAREN}
        if c == "(":
            self.paren_depth += 1
        elif c == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                raise self.error("unexpected right paren U+0029 ')'")
        self.emit(kinds[c])

    def at_terminator(self) -> bool:
        c = self.peek()
        return c == "" or _is_space(c) or c in ".,|:)(}"

    def bad_character(self) -> LexError:
        return self.error(f"bad character U+{ord(self.peek()):04X} {self.peek()!r}", self.pos)

    def word(self, kind: Kind) -> None:
        """``$name`` or ``.Name`` (sigil read); a lone ``$`` or ``.`` stands alone."""
        if self.at_terminator():
            self.emit(Kind.DOT if kind is Kind.FIELD else kind)
            return
        while _is_alnum(self.peek()):
            self.pos += 1
        if not self.at_terminator():
            raise self.bad_character()
        self.emit(kind)

    def identifier(self) -> None:
        while _is_alnum(self.peek()):
            self.pos += 1
        if not self.at_terminator():
            raise self.bad_character()
        word = self.src[self.start : self.pos]
        if word in KEYWORDS:
            self.emit(Kind.KEYWORD)
        else:
            self.emit(Kind.BOOL if word in ("true", "false") else Kind.IDENTIFIER)

    def quoted(self, quote: str, kind: Kind, unterminated: str) -> None:
        while True:
            c = self.peek()
            self.pos += 1
            if c == "\\":
                if self.peek() in ("", "\n"):
                    raise self.error(unterminated)
                self.pos += 1
            elif c in ("", "\n"):
                raise self.error(unterminated)
            elif c == quote:
                break
        self.emit(kind)

    def number(self) -> None:
        if not self.scan_number():
            raise self.error(f"bad number syntax: {self.src[self.start : self.pos]!r}")
        if self.peek() in ("+", "-") and self.peek() != "":
            if not self.scan_number() or self.src[self.pos - 1] != "i":
                raise self.error(f"bad number syntax: {self.src[self.start : self.pos]!r}")
            self.emit(Kind.COMPLEX)
        else:
            self.emit(Kind.NUMBER)

    def accept(self, valid: str) -> bool:
        if self.peek() != "" and self.peek() in valid:
            self.pos += 1
            return True
        return False

    def accept_run(self, valid: str) -> None:
        while self.accept(valid):
            pass

    def scan_number(self) -> bool:
        """Go's scanNumber: loose on purpose; the parser rejects what is not a number."""
        self.accept("+-")
        digits, exponent = "0123456789_", "eE"
        if self.accept("0"):
            if self.accept("xX"):
                digits, exponent = "0123456789abcdefABCDEF_", "pP"
            elif self.accept("oO"):
                digits, exponent = "01234567_", ""
            elif self.accept("bB"):
                digits, exponent = "01_", ""
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if exponent and self.accept(exponent):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if _is_alnum(self.peek()):
            self.pos += 1
            return False
        return True


def tokenize(source: str, where: SourceMap) -> list[Item]:
    """Every item of ``source``, ending with EOF; raises :class:`LexError`."""
    return _Lexer(source, where).run()
