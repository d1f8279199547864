"""Jinja source that outputs exactly Go's text, under confpy's Jinja settings.

confpy renders with ``trim_blocks`` (a block tag eats the newline after it),
``lstrip_blocks`` (indentation before a block tag is dropped) and
``keep_trailing_newline``; Jinja also turns ``\\r\\n`` into ``\\n`` and treats
``{{``, ``{%`` and ``{#`` in text as tags. Go does none of that. The emitter gives this
module the Go text (with what Go's trim markers cut off) and the Jinja tags in order;
this module writes the source, choosing for every tag the marker that gives Go's bytes:

- ``-`` where Go had its trim marker (Jinja's ``-`` strips the same spaces and newlines);
- ``+`` where Jinja would otherwise eat a newline or an indentation Go keeps;
- nothing elsewhere.

Text Jinja would misread, or strip where Go does not (a form feed next to a trimmed
tag), becomes a string expression: ``{{ "{{" }}``, ``{{ "\\r" }}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

#: What Jinja's ``-`` markers and ``lstrip_blocks`` treat as white space.
_JINJA_SPACE = re.compile(r"\s", re.UNICODE)
_SPECIAL = re.compile(r"\{[{%#]|\r")


@dataclass(frozen=True)
class TextPiece:
    raw: str  # the text as written
    keep_start: int  # raw[:keep_start] is cut by the tag before (Go's " -}}")
    keep_end: int  # raw[keep_end:] is cut by the tag after (Go's "{{- ")


@dataclass(frozen=True)
class TagPiece:
    kind: Literal["block", "var", "comment"]
    body: str
    ltrim: bool = False  # Go trims the text before
    rtrim: bool = False  # Go trims the text after


Piece = TextPiece | TagPiece


def jinja_string(text: str) -> str:
    """A Jinja string literal for ``text`` (newlines and control characters escaped)."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7F or c in "\u2028\u2029\x85":
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _literal(text: str) -> TagPiece:
    return TagPiece("var", jinja_string(text))


def _kept_tokens(
    kept: str, protect_first: bool, protect_last: bool, before_tag: bool
) -> list[str | TagPiece]:
    """Go's kept text as data and literal expressions Jinja cannot misread."""
    head = tail = ""
    if protect_first and kept and _JINJA_SPACE.match(kept[0]):
        head, kept = kept[0], kept[1:]
    if protect_last and kept and _JINJA_SPACE.match(kept[-1]):
        kept, tail = kept[:-1], kept[-1]
    # "{" + "{{ x }}" would read as "{{{ x }}": a "{" before any tag goes into a literal,
    # before the next piece's tag and before the literals made here alike.
    if kept.endswith("{") and (tail or before_tag):
        kept, tail = kept[:-1], "{" + tail
    out: list[str | TagPiece] = [_literal(head)] if head else []
    pos = 0
    for m in _SPECIAL.finditer(kept):
        chunk, special = kept[pos : m.start()], m.group()
        if chunk.endswith("{"):
            chunk, special = chunk[:-1], "{" + special
        out.append(chunk)
        out.append(_literal(special))
        pos = m.end()
    out.append(kept[pos:])
    if tail:
        out.append(_literal(tail))
    return [t for t in out if t != ""]


def _tokens(pieces: list[Piece]) -> list[str | TagPiece]:
    """Data strings and tags, in source order, adjacent data merged."""
    out: list[str | TagPiece] = []
    for i, p in enumerate(pieces):
        if isinstance(p, TagPiece):
            out.append(p)
            continue
        before = pieces[i - 1] if i else None
        after = pieces[i + 1] if i + 1 < len(pieces) else None
        cut_before = isinstance(before, TagPiece) and before.rtrim
        cut_after = isinstance(after, TagPiece) and after.ltrim
        kept = p.raw[p.keep_start : p.keep_end]
        keep_tail = p.raw[p.keep_end :]
        out.append(p.raw[: p.keep_start])
        out.extend(_kept_tokens(kept, cut_before, cut_after, after is not None and not keep_tail))
        out.append(keep_tail)
    merged: list[str | TagPiece] = []
    for t in out:
        if isinstance(t, str) and merged and isinstance(merged[-1], str):
            merged[-1] += t
        elif t != "":
            merged.append(t)
    return merged


def _lstrips(data: str, at_start: bool) -> bool:
    """Would ``lstrip_blocks`` remove the end of ``data`` before a block tag?"""
    line = data.rfind("\n") + 1
    rest = data[line:]
    return (line > 0 or at_start) and rest != "" and all(_JINJA_SPACE.match(c) for c in rest)


_DELIMS = {"block": ("{%", "%}"), "var": ("{{", "}}"), "comment": ("{#", "#}")}


def render_source(pieces: list[Piece]) -> str:
    """The Jinja source for ``pieces``."""
    tokens = _tokens(pieces)
    out: list[str] = []
    for i, t in enumerate(tokens):
        if isinstance(t, str):
            out.append(t)
            continue
        before = tokens[i - 1] if i else ""
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        plain = t.kind != "var"  # block and comment tags are what trim/lstrip_blocks act on
        left = (
            "-" if t.ltrim else "+" if plain and isinstance(before, str) and _lstrips(before, i == 1) else ""
        )
        right = "-" if t.rtrim else "+" if plain and isinstance(after, str) and after.startswith("\n") else ""
        open_, close = _DELIMS[t.kind]
        body = t.body.replace("#}", "# }") if t.kind == "comment" else t.body
        out.append(f"{open_}{left} {body} {right}{close}")
    return "".join(out)
