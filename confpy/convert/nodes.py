"""The parse tree of a Go template: what Go's ``text/template/parse`` builds, plus the
layout (trim markers and the text they remove) a converted template keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from confpy.convert.errors import Position

# --- operands ------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """``.A.B``: fields (or map keys, or methods) of dot."""

    pos: Position
    names: tuple[str, ...]


@dataclass(frozen=True)
class Variable:
    """``$x`` or ``$x.A.B``; ``$`` alone is the data the template was executed with."""

    pos: Position
    name: str  # with its "$"
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dot:
    pos: Position


@dataclass(frozen=True)
class Nil:
    pos: Position


@dataclass(frozen=True)
class Bool:
    pos: Position
    value: bool


@dataclass(frozen=True)
class Number:
    """A numeric constant: the value Go gives it where nothing asks for a type
    (float if written with ``.``, ``e`` or ``p``, else int), and its int value if it has one."""

    pos: Position
    text: str
    value: int | float
    as_int: int | None


@dataclass(frozen=True)
class String:
    pos: Position
    value: str


@dataclass(frozen=True)
class Identifier:
    """A function name."""

    pos: Position
    name: str


@dataclass(frozen=True)
class Chain:
    """``(pipeline).A.B`` or ``function.Method``: fields of a computed value."""

    pos: Position
    node: Operand
    names: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    """One stage of a pipeline: a function and its arguments, or a single operand."""

    pos: Position
    args: tuple[Operand, ...]


@dataclass(frozen=True)
class Pipe:
    """``$x := a | b c``: the variables it declares (or assigns) and its commands."""

    pos: Position
    decls: tuple[Variable, ...]
    is_assign: bool
    cmds: tuple[Command, ...]


Operand = Field | Variable | Dot | Nil | Bool | Number | String | Identifier | Chain | Pipe

# --- statements ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tag:
    """One ``{{ ... }}`` of a statement: where it is and its trim markers."""

    pos: Position
    ltrim: bool
    rtrim: bool


@dataclass(frozen=True)
class Text:
    raw: str  # as written
    cut_start: int  # removed by the trim marker of the tag before
    cut_end: int  # removed by the trim marker of the tag after
    pos: Position

    @property
    def value(self) -> str:
        return self.raw[self.cut_start : len(self.raw) - self.cut_end]


@dataclass(frozen=True)
class Comment:
    tag: Tag
    text: str


@dataclass(frozen=True)
class Action:
    """``{{pipeline}}``: prints the value, unless the pipeline declares variables."""

    tag: Tag
    pipe: Pipe


@dataclass(frozen=True)
class Branch:
    tag: Tag  # {{if p}}, {{else if p}}, {{with p}}, {{else with p}}
    pipe: Pipe
    body: list[Node]


@dataclass(frozen=True)
class Conditional:
    """``if`` / ``with`` with their ``else if`` / ``else with`` chain."""

    keyword: str  # "if" or "with"
    branches: list[Branch]
    else_tag: Tag | None
    else_body: list[Node]
    end: Tag


@dataclass(frozen=True)
class Range:
    tag: Tag
    pipe: Pipe
    body: list[Node]
    else_tag: Tag | None
    else_body: list[Node]
    end: Tag


@dataclass(frozen=True)
class TemplateCall:
    """``{{template "name" pipeline}}``."""

    tag: Tag
    name: str
    pipe: Pipe | None


@dataclass(frozen=True)
class LoopControl:
    """``{{break}}`` or ``{{continue}}``."""

    tag: Tag
    keyword: str


@dataclass(frozen=True)
class Define:
    """``{{define "name"}}...{{end}}``; ``call`` is set for ``{{block "name" p}}``, which
    defines and calls at once."""

    tag: Tag
    name: str
    body: list[Node]
    end: Tag
    call: Pipe | None = None
    is_block: bool = False


Node = Text | Comment | Action | Conditional | Range | TemplateCall | LoopControl | Define


@dataclass
class Template:
    """One parsed file: its top-level nodes (defines stay where they were written)."""

    name: str
    nodes: list[Node]
    defines: dict[str, Define] = field(default_factory=dict)
