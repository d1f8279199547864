"""Where a problem is and what it is: ``file:line:col: message``, as compilers say it."""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Position:
    file: str
    line: int  # 1-based
    col: int  # 1-based, in characters

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Problem:
    """One thing the converter refuses (or warns about), at one place."""

    pos: Position
    message: str

    def __str__(self) -> str:
        return f"{self.pos}: {self.message}"


class SourceMap:
    """Offsets in one source text to line and column."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self._starts = [0] + [i + 1 for i, c in enumerate(source) if c == "\n"]

    def position(self, offset: int) -> Position:
        line = bisect.bisect_right(self._starts, offset)
        return Position(self.name, line, offset - self._starts[line - 1] + 1)


class ConvertError(Exception):
    """Problems that stop one template from converting (every one found, in order)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
