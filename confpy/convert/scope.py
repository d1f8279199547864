"""Go's variable scopes, mapped onto Jinja's.

Go: ``$x := v`` lives until the ``{{end}}`` of the enclosing if/with/range (a range
body anew each iteration); ``$x = v`` changes the nearest ``$x``; a define sees only
``$``. Jinja: only a for loop (its body, its else) and a macro open a scope, and a
``{% set %}`` inside one never changes a variable outside it.

So each Go declaration gets a Jinja name of its own where it shadows a live one (Go's
``{{if}}{{$x := 2}}{{end}}`` must not change the outer ``$x``), and a variable that is
assigned inside a loop but declared outside lives in a ``namespace()`` made at the start
of the scope that declares it. Which variables need that is learnt on a first pass
(:class:`Facts`), used on the next.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field

from confpy.convert.errors import Position
from confpy.convert.types import T, union
from confpy.funcs import FUNCTIONS

RESERVED = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "elif", "endif", "for", "endfor", "set", "endset",
     "macro", "endmacro", "call", "endcall", "filter", "endfilter", "with", "endwith", "without",
     "import", "from", "include", "extends", "block", "endblock", "raw", "endraw", "do", "break",
     "continue", "true", "false", "none", "True", "False", "None", "loop", "namespace", "range",
     "dict", "lipsum", "cycler", "joiner", "caller", "varargs", "kwargs", "self", "super",
     "getv", "get", "gets", "getvs", "exists", "ls", "lsdir", "node_name", "calico", "go"}
) | frozenset(keyword.kwlist) | frozenset(FUNCTIONS)  # fmt: skip


@dataclass
class DeclFacts:
    """What a pass learnt about one declaration, for the next pass."""

    type: T
    needs_namespace: bool = False  # assigned from a deeper Jinja scope
    as_loop_index: bool = True  # a range index read only in its own loop: loop.index0


@dataclass
class Facts:
    """Everything learnt about a template; a pass that changes nothing here is final."""

    decls: dict[tuple[Position, str], DeclFacts] = field(default_factory=dict)
    namespaces: set[Position] = field(default_factory=set)  # scopes that need a namespace()
    changed: bool = False

    def decl(self, key: tuple[Position, str], type_: T) -> DeclFacts:
        facts = self.decls.get(key)
        if facts is None:
            facts = self.decls[key] = DeclFacts(type_)
            self.changed = True
        return facts

    def widen(self, facts: DeclFacts, type_: T) -> None:
        wider = union(facts.type, type_)
        if wider is not facts.type:
            facts.type = wider
            self.changed = True

    def mark(self, facts: DeclFacts, attr: str, value: bool) -> None:
        if getattr(facts, attr) != value:
            setattr(facts, attr, value)
            self.changed = True


@dataclass
class JinjaScope:
    """The template, a macro, a for body or a for else: where a ``set`` stays."""

    key: Position  # where it opens
    namespace: str | None = None  # the namespace() made at its start, if one is needed
    loop: int = 0  # which for loop this is the body of (0: not a loop body)


@dataclass
class Binding:
    """A Go variable (or dot) as the Jinja code sees it."""

    go_name: str
    jinja: str
    facts: DeclFacts
    scope: JinjaScope
    loop_index_of: int = 0  # for a range index: the loop whose loop.index0 it is

    def code(self) -> str:
        if self.loop_index_of and self.facts.as_loop_index:
            return "loop.index0"
        if self.facts.needs_namespace and self.scope.namespace:
            return f"{self.scope.namespace}.{self.jinja}"
        return self.jinja


class Scopes:
    """The Go frames and Jinja scopes of one pass over a template."""

    def __init__(self, facts: Facts, reserved: set[str], top: Position) -> None:
        self.facts = facts
        self.reserved = set(reserved)
        self.frames: list[list[Binding]] = [[]]
        self.jinja: list[JinjaScope] = []
        self.loops = 0
        self.enter(top)

    # --- Go frames -----------------------------------------------------------------

    def push(self) -> None:
        self.frames.append([])

    def pop(self) -> None:
        self.frames.pop()

    def isolate(self) -> list[list[Binding]]:
        """A define's body sees no variable of its caller: start from nothing."""
        saved, self.frames = self.frames, [[]]
        return saved

    def restore(self, frames: list[list[Binding]]) -> None:
        self.frames = frames

    def lookup(self, go_name: str) -> Binding | None:
        for frame in reversed(self.frames):
            for b in reversed(frame):
                if b.go_name == go_name:
                    return b
        return None

    def live_names(self) -> set[str]:
        names = {b.jinja for frame in self.frames for b in frame}
        names.update(s.namespace for s in self.jinja if s.namespace)
        return names

    def fresh(self, base: str) -> str:
        base = _identifier(base)
        taken = self.reserved | self.live_names()
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        return name

    def declare(self, go_name: str, base: str, key: tuple[Position, str], type_: T) -> Binding:
        """A new binding in the innermost frame (a shadowing one gets a new name)."""
        facts = self.facts.decl(key, type_)
        self.facts.widen(facts, type_)
        scope = self.jinja[-1]
        if facts.needs_namespace and scope.key not in self.facts.namespaces:
            self.facts.namespaces.add(scope.key)
            self.facts.changed = True
        binding = Binding(go_name, self.fresh(base), facts, scope)
        self.frames[-1].append(binding)
        return binding

    def assign(self, binding: Binding, type_: T) -> None:
        self.facts.widen(binding.facts, type_)
        if binding.scope is not self.jinja[-1]:
            self.facts.mark(binding.facts, "needs_namespace", True)
        if binding.loop_index_of:
            self.facts.mark(binding.facts, "as_loop_index", False)

    def use(self, binding: Binding) -> str:
        if binding.loop_index_of and self.jinja[-1].loop != binding.loop_index_of:
            self.facts.mark(binding.facts, "as_loop_index", False)
        return binding.code()

    # --- Jinja scopes --------------------------------------------------------------

    def enter(self, key: Position, loop: bool = False) -> JinjaScope:
        """Open a Jinja scope; its ``namespace`` is set when a variable of it needs one
        (the caller writes ``{% set <namespace> = namespace() %}`` first thing)."""
        scope = JinjaScope(key)
        if loop:
            self.loops += 1
            scope.loop = self.loops
        if key in self.facts.namespaces:
            scope.namespace = self.fresh("ns")
        self.jinja.append(scope)
        return scope

    def leave(self) -> None:
        self.jinja.pop()

    @property
    def current(self) -> JinjaScope:
        return self.jinja[-1]


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name.lstrip("$")) or "value"
    if not cleaned.isidentifier():
        cleaned = "v_" + cleaned
    return cleaned
