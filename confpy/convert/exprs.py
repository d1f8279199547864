"""Go pipelines, commands and operands to Jinja expressions.

``a | f b`` is ``f(b, a)``; ``.A.B`` is a field chain of dot; ``printf`` with plain
``%s`` on strings becomes a ``~`` concatenation, anything else ``go.printf``.
"""

from __future__ import annotations

import re

from confpy.convert import nodes as n
from confpy.convert.errors import Position, Problem
from confpy.convert.functions import Calls
from confpy.convert.layout import jinja_string
from confpy.convert.scope import RESERVED, Scopes
from confpy.convert.types import ATOM, CONCAT, MUL, UNARY, Expr, T
from confpy.goruntime import GoMap

#: Names that are not a map key when written ``data.name`` in Jinja (dict's methods).
_NOT_ATTRIBUTES = frozenset(dir(GoMap)) | RESERVED

_SIMPLE_VERB = re.compile(r"%(.)", re.DOTALL)


class Exprs(Calls):
    """Expressions of one pass over a template."""

    def __init__(self, scopes: Scopes, file: str) -> None:
        self.scopes = scopes
        self.problems: list[Problem] = []
        self.pos = Position(file, 1, 1)
        self.dot = Expr("none", T.NIL)  # Go executes confd's templates with nil data
        self.root = self.dot

    def problem(self, message: str) -> None:
        self.problems.append(Problem(self.pos, message))

    # --- pipelines -----------------------------------------------------------------

    def pipe(self, pipe: n.Pipe) -> Expr:
        """The value of a pipeline (its declarations are the caller's business)."""
        value: Expr | None = None
        for cmd in pipe.cmds:
            value = self.command(cmd, value)
        assert value is not None  # the parser refuses an empty pipeline
        return value

    def command(self, cmd: n.Command, final: Expr | None) -> Expr:
        self.pos = cmd.pos
        first, rest = cmd.args[0], cmd.args[1:]
        if isinstance(first, n.Identifier):
            args = [self.operand(a) for a in rest] + ([final] if final else [])
            self.pos = first.pos
            if first.name == "printf":
                fmt = rest[0].value if rest and isinstance(rest[0], n.String) else None
                return self.printf(fmt, args)
            return self.call(first.name, args)
        if isinstance(first, n.Field | n.Variable | n.Chain) and (rest or final):
            args = [self.operand(a) for a in rest] + ([final] if final else [])
            return self.method(first, args)
        if rest or final:
            self.problem("can't give argument to non-function")
        if isinstance(first, n.Nil):
            self.problem("nil is not a command")
        return self.operand(first)

    def operand(self, node: n.Operand) -> Expr:
        self.pos = node.pos
        if isinstance(node, n.String):
            return Expr(jinja_string(node.value), T.STR)
        if isinstance(node, n.Number):
            return _number(node.value)
        if isinstance(node, n.Bool):
            return Expr("true" if node.value else "false", T.BOOL)
        if isinstance(node, n.Nil):
            return Expr("none", T.NIL)
        if isinstance(node, n.Dot):
            return self.use_dot()
        if isinstance(node, n.Field):
            return self.fields(self.use_dot(), node.names)
        if isinstance(node, n.Variable):
            base = self.variable(node.name)
            return self.fields(base, node.fields) if node.fields else base
        if isinstance(node, n.Identifier):
            return self.call(node.name, [])
        if isinstance(node, n.Chain):
            return self.fields(self.operand(node.node), node.names)
        if node.decls:
            self.problem("a variable declared inside parentheses is not converted")
        return self.pipe(node)

    def use_dot(self) -> Expr:
        return self.dot

    def variable(self, name: str) -> Expr:
        if name == "$":
            return self.root
        binding = self.scopes.lookup(name)
        if binding is None:
            self.problem(f"variable {name} is not set here (confd fails with: undefined variable)")
            return Expr("none", T.NIL)
        return Expr(self.scopes.use(binding), binding.facts.type)

    # --- fields and methods --------------------------------------------------------

    def fields(self, base: Expr, names: tuple[str, ...]) -> Expr:
        if not names:
            return base
        if base.type is T.KV:
            head, rest = names[0], names[1:]
            if head not in ("Key", "Value"):
                self.problem(f"can't evaluate field {head} in type memkv.KVPair (it has Key and Value)")
            value = Expr(f"{base.at(ATOM)}.{head}", T.STR, ATOM, base.pure)
            if rest:
                self.problem(f"can't evaluate field {rest[0]} in type string")
            return value
        if base.type is T.MAP:
            head, rest = names[0], names[1:]
            if head.isidentifier() and head.isascii() and head not in _NOT_ATTRIBUTES:
                first = Expr(f"{base.at(ATOM)}.{head}", T.ANY, ATOM, base.pure)
            else:
                first = Expr(f"{base.at(ATOM)}[{jinja_string(head)}]", T.ANY, ATOM, base.pure)
            return self.fields(first, rest) if rest else first
        if base.type in (T.ANY, T.NIL):
            keys = ", ".join(jinja_string(name) for name in names)
            return Expr(f"go.field({base.code}, {keys})", T.ANY, ATOM, pure=False)
        if base.type is T.TIME:
            self.problem(f"time.Time's {names[0]} is not converted (only datetime.Format is)")
        else:
            self.problem(f"can't evaluate field {names[0]} in type {base.type.value}")
        return Expr("none", T.NIL)

    def method(self, node: n.Field | n.Variable | n.Chain, args: list[Expr]) -> Expr:
        """``.Method args``: of confd's values only time.Time's Format has a use."""
        if isinstance(node, n.Field):
            receiver, names = self.use_dot(), node.names
        elif isinstance(node, n.Variable):
            receiver, names = self.variable(node.name), node.fields
        else:
            receiver, names = self.operand(node.node), node.names
        if not names:
            self.problem("can't give argument to non-function")
            return receiver
        receiver = self.fields(receiver, names[:-1])
        if receiver.type in (T.TIME, T.ANY) and names[-1] == "Format" and len(args) == 1:
            layout = self.coerce(args[0], "string", "the layout of Format")
            return Expr(f"go.time_format({receiver.code}, {layout.code})", T.STR, ATOM, pure=False)
        self.problem(f"{names[-1]} is not a method but has arguments")
        return Expr("none", T.NIL)

    # --- printf --------------------------------------------------------------------

    def printf(self, fmt: str | None, args: list[Expr]) -> Expr:
        if not args:
            self.problem("wrong number of args for printf: want at least 1 got 0")
            return Expr('""', T.STR)
        fmt_arg = self.coerce(args[0], "string", "the format of printf")
        values = args[1:]
        concat = _concatenation(fmt, values) if fmt is not None else None
        if concat is not None:
            return concat
        code = f"go.printf({', '.join([fmt_arg.code] + [v.code for v in values])})"
        return Expr(code, T.STR, ATOM, all(a.pure for a in args))


def _number(value: int | float) -> Expr:
    code = repr(value)
    return Expr(code, T.INT if isinstance(value, int) else T.FLOAT, UNARY if code.startswith("-") else ATOM)


def _concatenation(fmt: str, values: list[Expr]) -> Expr | None:
    """``printf "/host/%s/ip" $n`` as ``"/host/" ~ n ~ "/ip"`` when that is exactly what Go
    prints: only ``%s``/``%v`` of strings and ints, ``%d`` of ints, ``%%``."""
    pieces = _SIMPLE_VERB.split(fmt)  # text, verb, text, verb, ..., text
    texts, verbs = pieces[::2], pieces[1::2]
    if any("%" in t for t in texts) or len([v for v in verbs if v != "%"]) != len(values):
        return None
    parts: list[Expr] = []
    literal = texts[0]
    args = iter(values)
    for verb, text in zip(verbs, texts[1:], strict=True):
        if verb == "%":
            literal += "%" + text
            continue
        v = next(args)
        if not (v.type.prints_as_is if verb in "sv" else verb == "d" and v.type is T.INT):
            return None
        if literal:
            parts.append(Expr(jinja_string(literal), T.STR))
        parts.append(v)
        literal = text
    if literal or not parts:
        parts.append(Expr(jinja_string(literal), T.STR))
    if len(parts) == 1:
        return parts[0] if parts[0].type is T.STR else None
    return Expr(" ~ ".join(p.at(MUL) for p in parts), T.STR, CONCAT, all(p.pure for p in parts))
