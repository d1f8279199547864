"""Go template statements to Jinja: if/with/range/define/template, declarations.

Every Go tag becomes one Jinja tag or more, in the Go tag's place, carrying its trim
markers; :mod:`confpy.convert.layout` then writes the source. A pass over a template
learns facts (types, namespaces, whether defines must move to the top) that the next
pass uses; :func:`convert_template` runs passes until nothing new is learnt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confpy.convert import nodes as n
from confpy.convert.errors import Position, Problem
from confpy.convert.exprs import Exprs
from confpy.convert.functions import KNOWN
from confpy.convert.layout import Piece, TagPiece, TextPiece, render_source
from confpy.convert.parser import ParseError, parse
from confpy.convert.scope import RESERVED, Binding, Facts, Scopes
from confpy.convert.types import FILTER, Expr, T

#: Names for the value a range visits or a with binds, by where it comes from.
_DOT_NAMES = {T.KV: "kv", T.STR: "value", T.INT: "n", T.MAP: "data"}


@dataclass
class TemplateFacts(Facts):
    """Facts of one template: its variables', and which defines take dot, and order."""

    takes_dot: set[str] = field(default_factory=set)
    hoist: bool = False

    def need_dot(self, name: str) -> None:
        if name not in self.takes_dot:
            self.takes_dot.add(name)
            self.changed = True


class _Pass(Exprs):
    def __init__(self, tmpl: n.Template, facts: TemplateFacts) -> None:
        self.tmpl = tmpl
        self.facts = facts
        self.macros = {name: _macro_name(name, i) for i, name in enumerate(tmpl.defines)}
        top = Position(tmpl.name, 0, 0)
        super().__init__(Scopes(facts, set(RESERVED) | set(self.macros.values()), top), tmpl.name)
        self.pieces: list[Piece] = []
        self.macro: str | None = None  # the define being written
        self.order = 0  # position of a statement in the document, for hoisting
        self.defined_at: dict[str, int] = {}
        self.calls: list[tuple[str | None, str, int]] = []
        if self.scopes.current.namespace:
            self.tags(None, [f"set {self.scopes.current.namespace} = namespace()"])

    # --- output --------------------------------------------------------------------

    def tags(self, tag: n.Tag | None, bodies: list[str], kind: str = "block") -> None:
        """Jinja tags for one Go tag: its ``{{-`` on the first, its ``-}}`` on the last."""
        for i, body in enumerate(bodies):
            ltrim = bool(tag and tag.ltrim and i == 0)
            rtrim = bool(tag and tag.rtrim and i == len(bodies) - 1)
            self.pieces.append(TagPiece(kind, body, ltrim, rtrim))  # type: ignore[arg-type]

    def namespace_of(self, bodies: list[str]) -> list[str]:
        ns = self.scopes.current.namespace
        return [*bodies, f"set {ns} = namespace()"] if ns else bodies

    # --- statements ----------------------------------------------------------------

    def run(self) -> list[Piece]:
        if self.facts.hoist:
            for define in self.tmpl.defines.values():
                self.define(define, placeholder=False)
        self.nodes(self.tmpl.nodes)
        self.learn_hoisting()
        return self.pieces

    def nodes(self, body: list[n.Node]) -> None:
        for node in body:
            self.order += 1
            self.node(node)

    def node(self, node: n.Node) -> None:
        if isinstance(node, n.Text):
            self.pieces.append(TextPiece(node.raw, node.cut_start, len(node.raw) - node.cut_end))
        elif isinstance(node, n.Comment):
            self.tags(node.tag, [node.text.strip() or "-"], "comment")
        elif isinstance(node, n.Action):
            self.action(node)
        elif isinstance(node, n.Conditional):
            self.conditional(node.keyword, node.branches, node)
        elif isinstance(node, n.Range):
            self.range_(node)
        elif isinstance(node, n.TemplateCall):
            self.template_call(node.tag, node.name, node.pipe)
        elif isinstance(node, n.LoopControl):
            self.tags(node.tag, [node.keyword])
        elif self.facts.hoist:
            self.placeholder(node)
        else:
            self.define(node, placeholder=True)

    def action(self, node: n.Action) -> None:
        self.pos = node.tag.pos
        value = self.pipe(node.pipe)
        if node.pipe.decls:
            self.tags(node.tag, self.bind(node.pipe, value))
        elif value.type.prints_as_is:
            self.tags(node.tag, [value.code], "var")
        else:
            self.tags(node.tag, [f"{value.at(FILTER)} | go"], "var")

    def bind(self, pipe: n.Pipe, value: Expr) -> list[str]:
        """``{% set %}`` for ``$x := value`` or ``$x = value``."""
        decl = pipe.decls[0]
        if pipe.is_assign:
            binding = self.scopes.lookup(decl.name)
            if binding is None:
                self.problem(f"undefined variable: {decl.name} (confd fails here too)")
                return []
            self.scopes.assign(binding, value.type)
        else:
            binding = self.scopes.declare(decl.name, decl.name, (decl.pos, decl.name), value.type)
        return [f"set {binding.code()} = {value.code}"]

    def conditional(self, keyword: str, branches: list[n.Branch], node: n.Conditional) -> None:
        """if / else if / else, and with / else with (which also binds dot)."""
        outer_dot = self.dot
        self.scopes.push()  # the pipelines' variables: visible to the later branches
        ends = 1
        for i, branch in enumerate(branches):
            self.pos = branch.tag.pos
            value = self.pipe(branch.pipe)
            sets = self.bind(branch.pipe, value) if branch.pipe.decls else []
            if branch.pipe.decls:
                bound = self.scopes.lookup(branch.pipe.decls[0].name)
                assert bound is not None
                value = Expr(bound.code(), bound.facts.type)
            elif keyword == "with" and not value.code.isidentifier():
                binding = self.scopes.declare(
                    "", _DOT_NAMES.get(value.type, "it"), (branch.tag.pos, "."), value.type
                )
                sets = [f"set {binding.code()} = {value.code}"]
                value = Expr(binding.code(), value.type)
            if i == 0:
                self.tags(branch.tag, [*sets, f"if {value.code}"])
            elif sets:
                self.tags(branch.tag, ["else", *sets, f"if {value.code}"])
                ends += 1
            else:
                self.tags(branch.tag, [f"elif {value.code}"])
            self.scopes.push()
            self.dot = value if keyword == "with" else outer_dot
            self.nodes(branch.body)
            self.dot = outer_dot
            self.scopes.pop()
        if node.else_tag is not None:
            self.tags(node.else_tag, ["else"])
            self.scopes.push()
            self.nodes(node.else_body)
            self.scopes.pop()
        self.scopes.pop()
        self.tags(node.end, ["endif"] * ends)

    def range_(self, node: n.Range) -> None:
        self.pos = node.tag.pos
        value = self.pipe(node.pipe)
        self.pos = node.tag.pos
        decls = node.pipe.decls
        if node.pipe.is_assign:
            self.problem("range with '=' (assigning existing variables) is not converted")
        if value.type is T.INT:  # Go 1.22: range over an int n visits 0..n-1
            if len(decls) > 1:
                self.problem("range over an int can set only one variable")
            value = Expr(f"range({value.code})", T.LIST_INT)
        elif not (value.type.is_list or value.type in (T.MAP, T.ANY, T.NIL)):
            self.problem(f"range can't iterate over a {value.type.value}")
        outer_dot = self.dot
        self.scopes.push()
        scope = self.scopes.enter(node.tag.pos, loop=True)
        element = value.type.element
        if len(decls) == 2:
            key_type = T.INT if value.type.is_list else T.STR if value.type is T.MAP else T.ANY
            index = self.scopes.declare(decls[0].name, decls[0].name, (decls[0].pos, decls[0].name), key_type)
            item = self.scopes.declare(decls[1].name, decls[1].name, (decls[1].pos, decls[1].name), element)
            if value.type.is_list and index.facts.as_loop_index:
                index.loop_index_of = scope.loop
                head = f"for {item.jinja} in {value.code}"
            else:
                head = f"for {index.jinja}, {item.jinja} in go.range_pairs({value.code})"
        else:
            item = self._range_item(decls, node, element, value)
            iterable = value.code if value.type.is_list else f"go.range({value.code})"
            head = f"for {item.jinja} in {iterable}"
        self.tags(node.tag, self.namespace_of([head]))
        self.dot = Expr(item.code(), element)
        self.nodes(node.body)
        self.dot = outer_dot
        self.scopes.leave()
        self.scopes.pop()
        if node.else_tag is not None:
            self.scopes.enter(node.else_tag.pos)
            self.tags(node.else_tag, self.namespace_of(["else"]))
            self.scopes.push()
            self.nodes(node.else_body)
            self.scopes.pop()
            self.scopes.leave()
        self.tags(node.end, ["endfor"])

    def _range_item(self, decls: tuple[n.Variable, ...], node: n.Range, element: T, value: Expr) -> Binding:
        if decls:
            return self.scopes.declare(decls[0].name, decls[0].name, (decls[0].pos, decls[0].name), element)
        base = _dot_name(node.pipe, element)
        return self.scopes.declare("", base, (node.tag.pos, "."), element)

    # --- define and template -------------------------------------------------------

    def template_call(self, tag: n.Tag, name: str, pipe: n.Pipe | None) -> None:
        self.pos = tag.pos
        if name not in self.macros:
            self.problem(f"template {name!r} is not defined in this file (confd fails here)")
            self.tags(tag, [f"template {name!r}: not defined"], "comment")
            return
        self.calls.append((self.macro, name, self.order))
        arg = ""
        if pipe is not None:
            self.facts.need_dot(name)
            arg = self.pipe(pipe).code
        elif name in self.facts.takes_dot:
            arg = "none"
        self.tags(tag, [f"{self.macros[name]}({arg})"], "var")

    def define(self, node: n.Define, placeholder: bool) -> None:
        self.defined_at.setdefault(node.name, self.order)
        saved_frames, saved_dot, saved_root, saved_macro = (
            self.scopes.isolate(),
            self.dot,
            self.root,
            self.macro,
        )
        self.macro = node.name
        self.scopes.enter(node.tag.pos)
        param = ""
        if node.name in self.facts.takes_dot:
            binding = self.scopes.declare("", "dot", (node.tag.pos, "$"), T.ANY)
            param = f"{binding.jinja}=none"
            self.dot = self.root = Expr(binding.code(), T.ANY)
        else:
            self.dot = self.root = Expr("none", T.NIL)
        tag = node.tag if placeholder else n.Tag(node.tag.pos, False, node.tag.rtrim)
        self.tags(tag, self.namespace_of([f"macro {self.macros[node.name]}({param})"]))
        self.nodes(node.body)
        end = node.end if placeholder and node.call is None else n.Tag(node.end.pos, node.end.ltrim, False)
        self.tags(end, ["endmacro"])
        self.scopes.leave()
        self.scopes.restore(saved_frames)
        self.dot, self.root, self.macro = saved_dot, saved_root, saved_macro
        if placeholder and node.call is not None:
            self.template_call(n.Tag(node.tag.pos, False, node.end.rtrim), node.name, node.call)

    def placeholder(self, node: n.Define) -> None:
        """Where a define moved to the top was: its trim markers, and a block's call."""
        tag = n.Tag(node.tag.pos, node.tag.ltrim, node.end.rtrim)
        if node.call is not None:
            self.template_call(tag, node.name, node.call)
        else:
            self.tags(tag, [f"define {node.name!r}: at the top of the file"], "comment")

    def learn_hoisting(self) -> None:
        """Jinja calls a macro only once it is defined: move the defines to the top when a
        top-level call comes before the definition of what it calls."""
        if self.facts.hoist:
            return
        callees: dict[str | None, set[str]] = {}
        for caller, callee, _ in self.calls:
            callees.setdefault(caller, set()).add(callee)
        for caller, callee, at in self.calls:
            if caller is not None:
                continue
            needed, todo = set(), [callee]
            while todo:
                name = todo.pop()
                if name not in needed:
                    needed.add(name)
                    todo.extend(callees.get(name, ()))
            if any(self.defined_at.get(name, at + 1) > at for name in needed):
                self.facts.hoist = True
                self.facts.changed = True
                return


def _macro_name(name: str, index: int) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if not cleaned.isidentifier() or cleaned in RESERVED:
        cleaned = f"template_{cleaned}" if cleaned.isidentifier() else f"template_{index}"
    return cleaned


def _dot_name(pipe: n.Pipe, element: T) -> str:
    last = pipe.cmds[-1].args[0]
    if isinstance(last, n.Identifier):
        by_function = {"ls": "name", "lsdir": "name", "getvs": "value", "gets": "kv", "split": "part",
                       "jsonArray": "item", "seq": "n", "lookupIP": "ip"}  # fmt: skip
        if last.name in by_function:
            return by_function[last.name]
    return _DOT_NAMES.get(element, "item")


@dataclass
class Converted:
    source: str  # the Jinja template; "" when problems stop it
    problems: list[Problem]


HEADER = "{{# converted from {name} by confpy convert: Go's semantics where needed via go.* #}}\n"


def convert_template(source: str, name: str, header: bool = True) -> Converted:
    """A confd (Go text/template) template as Jinja, or every problem that stops it."""
    try:
        tmpl = parse(source, name, KNOWN)
    except ParseError as exc:
        return Converted("", [exc.problem])
    facts = TemplateFacts()
    for _ in range(6):
        facts.changed = False
        pass_ = _Pass(tmpl, facts)
        pieces = pass_.run()
        if not facts.changed:
            break
    if pass_.problems:
        return Converted("", sorted(set(pass_.problems), key=lambda p: p.pos))
    text = render_source(pieces)
    return Converted((HEADER.format(name=name.rsplit("/", 1)[-1]) if header else "") + text, [])
