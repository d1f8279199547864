"""The parser of Go's text/template language: items to a :class:`~nodes.Template`.

It follows Go's ``text/template/parse/parse.go``: the same grammar, the same checks
(undefined variables, unknown functions, ``{{break}}`` outside ``{{range}}``, a
non-executable command in a later pipeline stage) and messages close to Go's, each
with ``file:line:col``. ``{{else with}}`` (Go 1.23) and ``break``/``continue`` (1.18)
are read too.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager

from confpy.convert import nodes as n
from confpy.convert.errors import Position, Problem, SourceMap
from confpy.convert.lexer import Item, Kind, LexError, tokenize
from confpy.convert.literals import parse_number, unquote, unquote_char

#: Control structures and parenthesized pipelines nested deeper than this are refused: the
#: parser, the emitter and Jinja's compiler recurse per level (Jinja's expression parser some
#: 14 frames for a call in a call: about 65 levels fit in Python's stack), and Python's stack,
#: unlike Go's, is bounded (a RecursionError is no ParseError). Real templates nest a few levels.
MAX_NESTING = 32


class ParseError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _End:
    """The ``{{end}}`` or ``{{else ...}}`` that closed a list."""

    def __init__(self, keyword: str, tag: n.Tag, follows: str | None = None) -> None:
        self.keyword = keyword  # "end" or "else"
        self.tag = tag
        self.follows = follows  # "if" / "with" for "else if" / "else with"


class _Parser:
    def __init__(self, items: list[Item], functions: Container[str], name: str) -> None:
        self.items = items
        self.i = 0
        self.functions = functions
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.nesting = 0  # control structures and parentheses open
        self.template = n.Template(name, [])

    # --- items ---------------------------------------------------------------------

    def next(self) -> Item:
        item = self.items[self.i]
        self.i += 1
        return item

    def backup(self, count: int = 1) -> None:
        self.i -= count

    def peek(self) -> Item:
        return self.items[self.i]

    def next_non_space(self) -> Item:
        item = self.next()
        while item.kind is Kind.SPACE:
            item = self.next()
        return item

    def peek_non_space(self) -> Item:
        item = self.next_non_space()
        self.backup()
        # the spaces stay consumed: Go's peekNonSpace does the same
        return item

    def error(self, message: str, at: Position | None = None) -> ParseError:
        return ParseError(Problem(at or self.items[max(self.i - 1, 0)].pos, message))

    def unexpected(self, item: Item, context: str) -> ParseError:
        return self.error(f"unexpected {item.describe()} in {context}", item.pos)

    def expect(self, kind: Kind, context: str) -> Item:
        item = self.next_non_space()
        if item.kind is not kind:
            raise self.unexpected(item, context)
        return item

    def close_tag(self, context: str, opening: Item) -> n.Tag:
        right = self.expect(Kind.RIGHT, context)
        return n.Tag(opening.pos, opening.ltrim, right.rtrim)

    # --- lists ---------------------------------------------------------------------

    def parse(self) -> n.Template:
        body, end = self.item_list(top=True)
        if end is not None:
            raise self.error(f"unexpected {{{{{end.keyword}}}}}", end.tag.pos)
        self.template.nodes = body
        return self.template

    @contextmanager
    def nested(self, at: Position) -> Iterator[None]:
        if self.nesting == MAX_NESTING:
            raise self.error(
                f"nested deeper than {MAX_NESTING} levels (control structures and parentheses)", at
            )
        self.nesting += 1
        try:
            yield
        finally:
            self.nesting -= 1

    def item_list(self, top: bool = False) -> tuple[list[n.Node], _End | None]:
        if top:
            return self._items(top)
        with self.nested(self.items[self.i].pos):
            return self._items(top)

    def _items(self, top: bool) -> tuple[list[n.Node], _End | None]:
        out: list[n.Node] = []
        while True:
            item = self.next()
            if item.kind is Kind.EOF:
                if top:
                    return out, None
                raise self.error("unexpected EOF", item.pos)
            if item.kind is Kind.TEXT:
                out.append(n.Text(item.raw, item.cut_start, item.cut_end, item.pos))
            elif item.kind is Kind.COMMENT:
                out.append(n.Comment(n.Tag(item.pos, item.ltrim, item.rtrim), item.val))
            else:
                node = self.action(item, top)
                if isinstance(node, _End):
                    return out, node
                out.append(node)

    def action(self, left: Item, top: bool) -> n.Node | _End:
        word = self.next_non_space()
        if word.kind is Kind.KEYWORD:
            handlers: dict[str, Callable[[Item, Item], n.Node | _End]] = {
                "if": self.if_or_with,
                "with": self.if_or_with,
                "range": self.range_control,
                "template": self.template_control,
                "block": self.block_control,
                "define": self.define_control,
                "else": self.else_control,
                "end": self.end_control,
                "break": self.loop_control,
                "continue": self.loop_control,
            }
            handler = handlers.get(word.val)
            if handler is not None:
                if word.val == "define" and not top:
                    raise self.error("unexpected <define> in command", word.pos)
                return handler(left, word)
        self.backup()
        pipe = self.pipeline("command", Kind.RIGHT)
        return n.Action(n.Tag(left.pos, left.ltrim, self.items[self.i - 1].rtrim), pipe)

    def end_control(self, left: Item, word: Item) -> _End:
        return _End("end", self.close_tag("end", left))

    def else_control(self, left: Item, word: Item) -> _End:
        follow = self.peek_non_space()
        if follow.kind is Kind.KEYWORD and follow.val in ("if", "with"):
            self.next()
            # the rest of the tag is the pipeline of the chained if/with
            return _End("else", n.Tag(left.pos, left.ltrim, False), follow.val)
        return _End("else", self.close_tag("else", left))

    def loop_control(self, left: Item, word: Item) -> n.LoopControl:
        if self.range_depth == 0:
            raise self.error(f"{{{{{word.val}}}}} outside {{{{range}}}}", word.pos)
        return n.LoopControl(self.close_tag(word.val, left), word.val)

    def control(self, context: str, opening: n.Tag) -> tuple[n.Branch, _End]:
        """The pipeline and body of if/with/range; ``opening`` gives position and ``{{-``."""
        pipe = self.pipeline(context, Kind.RIGHT)
        tag = n.Tag(opening.pos, opening.ltrim, self.items[self.i - 1].rtrim)
        if context == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if context == "range":
            self.range_depth -= 1
        assert end is not None
        return n.Branch(tag, pipe, body), end

    def else_list(self, end: _End, context: str) -> tuple[n.Tag | None, list[n.Node], n.Tag]:
        """After the last branch: the ``{{else}}`` body if any, and the ``{{end}}``."""
        if end.keyword != "else":
            return None, [], end.tag
        if end.follows is not None:
            raise self.error(f"unexpected <{end.follows}> in input", end.tag.pos)
        body, close = self.item_list()
        assert close is not None
        if close.keyword != "end":
            raise self.error(f"expected end; found {{{{{close.keyword}}}}} in {context}", close.tag.pos)
        return end.tag, body, close.tag

    def if_or_with(self, left: Item, word: Item) -> n.Conditional:
        keyword = word.val
        mark = len(self.vars)
        opening = n.Tag(left.pos, left.ltrim, False)
        branches: list[n.Branch] = []
        while True:
            branch, end = self.control(keyword, opening)
            branches.append(branch)
            if end.keyword != "else" or end.follows != keyword:
                break
            # {{else if p}} / {{else with p}}: one more branch; one {{end}} closes them all
            opening = end.tag
        else_tag, else_body, end_tag = self.else_list(end, keyword)
        del self.vars[mark:]
        return n.Conditional(keyword, branches, else_tag, else_body, end_tag)

    def range_control(self, left: Item, word: Item) -> n.Range:
        mark = len(self.vars)
        branch, end = self.control("range", n.Tag(left.pos, left.ltrim, False))
        else_tag, else_body, end_tag = self.else_list(end, "range")
        del self.vars[mark:]
        return n.Range(branch.tag, branch.pipe, branch.body, else_tag, else_body, end_tag)

    def template_name(self, context: str) -> str:
        item = self.next_non_space()
        if item.kind not in (Kind.STRING, Kind.RAW_STRING):
            raise self.unexpected(item, context)
        try:
            return unquote(item.val)
        except ValueError:
            raise self.error(f"bad string syntax: {item.val}", item.pos) from None

    def template_control(self, left: Item, word: Item) -> n.TemplateCall:
        name = self.template_name("template clause")
        pipe = None
        if self.next_non_space().kind is not Kind.RIGHT:
            self.backup()
            pipe = self.pipeline("template clause", Kind.RIGHT)
        return n.TemplateCall(n.Tag(left.pos, left.ltrim, self.items[self.i - 1].rtrim), name, pipe)

    def definition(self, left: Item, name: str, context: str, call: n.Pipe | None) -> n.Define:
        if name in self.template.defines:
            raise self.error(f"template: multiple definition of template {name!r}", left.pos)
        outer_vars, outer_depth = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        tag = n.Tag(left.pos, left.ltrim, self.items[self.i - 1].rtrim)
        body, end = self.item_list()
        self.vars, self.range_depth = outer_vars, outer_depth
        assert end is not None
        if end.keyword != "end":
            raise self.error(f"unexpected {{{{{end.keyword}}}}} in {context}", end.tag.pos)
        define = n.Define(tag, name, body, end.tag, call, is_block=context == "block clause")
        self.template.defines[name] = define
        return define

    def define_control(self, left: Item, word: Item) -> n.Define:
        name = self.template_name("define clause")
        self.expect(Kind.RIGHT, "define clause")
        return self.definition(left, name, "define clause", None)

    def block_control(self, left: Item, word: Item) -> n.Define:
        name = self.template_name("block clause")
        pipe = self.pipeline("block clause", Kind.RIGHT)
        return self.definition(left, name, "block clause", pipe)

    # --- pipelines -----------------------------------------------------------------

    def pipeline(self, context: str, end: Kind) -> n.Pipe:
        start = self.peek_non_space()
        decls: list[n.Variable] = []
        is_assign = False
        while True:
            v = self.peek_non_space()
            if v.kind is not Kind.VARIABLE:
                break
            at_variable = self.i
            self.next()
            nxt = self.peek_non_space()
            if nxt.kind in (Kind.DECLARE, Kind.ASSIGN):
                is_assign = nxt.kind is Kind.ASSIGN
                self.next()
                decls.append(n.Variable(v.pos, v.val))
                self.vars.append(v.val)
                break
            if nxt.kind is Kind.CHAR and nxt.val == ",":
                self.next()
                decls.append(n.Variable(v.pos, v.val))
                self.vars.append(v.val)
                if context == "range" and len(decls) < 2:
                    if self.peek_non_space().kind in (Kind.VARIABLE, Kind.RIGHT, Kind.RPAREN):
                        continue
                    raise self.error("range can only initialize variables", nxt.pos)
                raise self.error(f"too many declarations in {context}", nxt.pos)
            self.i = at_variable  # not a declaration: the variable is the first operand
            break
        cmds: list[n.Command] = []
        while True:
            item = self.next_non_space()
            if item.kind is end:
                self.check_pipeline(cmds, context, item)
                return n.Pipe(start.pos, tuple(decls), is_assign, tuple(cmds))
            if item.kind in _OPERAND_START or (item.kind is Kind.KEYWORD and item.val == "nil"):
                self.backup()
                cmds.append(self.command())
            else:
                raise self.unexpected(item, context)

    def check_pipeline(self, cmds: list[n.Command], context: str, at: Item) -> None:
        if not cmds:
            raise self.error(f"missing value for {context}", at.pos)
        for stage, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], n.Bool | n.Dot | n.Nil | n.Number | n.String):
                raise self.error(f"non executable command in pipeline stage {stage}", cmd.pos)

    def command(self) -> n.Command:
        args: list[n.Operand] = []
        start = self.peek_non_space().pos
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            item = self.next()
            if item.kind is Kind.SPACE:
                continue
            if item.kind in (Kind.RIGHT, Kind.RPAREN):
                self.backup()
            elif item.kind is not Kind.PIPE:
                raise self.unexpected(item, "operand")
            break
        if not args:
            raise self.error("empty command", start)
        return n.Command(start, tuple(args))

    def operand(self) -> n.Operand | None:
        node = self.term()
        if node is None or self.peek().kind is not Kind.FIELD:
            return node
        names: list[str] = []
        while self.peek().kind is Kind.FIELD:
            names.append(self.next().val[1:])
        if isinstance(node, n.Field):
            return n.Field(node.pos, node.names + tuple(names))
        if isinstance(node, n.Variable):
            return n.Variable(node.pos, node.name, node.fields + tuple(names))
        if isinstance(node, n.Bool | n.String | n.Number | n.Nil | n.Dot):
            raise self.error(f"unexpected . after term {_describe(node)}", node.pos)
        return n.Chain(node.pos, node, tuple(names))

    def term(self) -> n.Operand | None:
        item = self.next_non_space()
        kind, pos = item.kind, item.pos
        if kind is Kind.IDENTIFIER:
            if item.val not in self.functions:
                raise self.error(f"function {item.val!r} not defined", pos)
            return n.Identifier(pos, item.val)
        if kind is Kind.DOT:
            return n.Dot(pos)
        if kind is Kind.KEYWORD and item.val == "nil":
            return n.Nil(pos)
        if kind is Kind.VARIABLE:
            if item.val not in self.vars:
                raise self.error(f"undefined variable {item.val!r}", pos)
            return n.Variable(pos, item.val)
        if kind is Kind.FIELD:
            return n.Field(pos, (item.val[1:],))
        if kind is Kind.BOOL:
            return n.Bool(pos, item.val == "true")
        if kind in (Kind.NUMBER, Kind.CHAR_CONSTANT):
            return self.number(item)
        if kind is Kind.COMPLEX:
            raise self.error(f"complex constant {item.val} (confd has no use for complex numbers)", pos)
        if kind is Kind.LPAREN:
            with self.nested(pos):
                return self.pipeline("parenthesized pipeline", Kind.RPAREN)
        if kind in (Kind.STRING, Kind.RAW_STRING):
            try:
                return n.String(pos, unquote(item.val))
            except ValueError:
                raise self.error(f"bad string syntax: {item.val}", pos) from None
        self.backup()
        return None

    def number(self, item: Item) -> n.Number:
        try:
            if item.kind is Kind.CHAR_CONSTANT:
                code = unquote_char(item.val)
                return n.Number(item.pos, item.val, code, code)
            if item.val.endswith("i"):
                raise ValueError(f"complex constant {item.val} (confd has no use for complex numbers)")
            value, as_int = parse_number(item.val)
        except ValueError as exc:
            raise self.error(str(exc), item.pos) from None
        return n.Number(item.pos, item.val, value, as_int)


_OPERAND_START = frozenset(
    {Kind.BOOL, Kind.CHAR_CONSTANT, Kind.COMPLEX, Kind.DOT, Kind.FIELD, Kind.IDENTIFIER, Kind.NUMBER,
     Kind.RAW_STRING, Kind.STRING, Kind.VARIABLE, Kind.LPAREN}
)  # fmt: skip


def _describe(node: n.Operand) -> str:
    if isinstance(node, n.String):
        return repr(node.value)
    if isinstance(node, n.Number):
        return node.text
    if isinstance(node, n.Bool):
        return "true" if node.value else "false"
    return "nil" if isinstance(node, n.Nil) else "."


def parse(source: str, name: str, functions: Container[str]) -> n.Template:
    """Parse one template file; raises :class:`ParseError` at the first syntax error."""
    where = SourceMap(name, source)
    try:
        items = tokenize(source, where)
    except LexError as exc:
        raise ParseError(exc.problem) from None
    return _Parser(items, functions, name).parse()
