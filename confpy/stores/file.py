"""Data files as a store (the embedded default): YAML or JSON, one file or a directory.

Nested maps become ``/a/b/c`` keys and list items ``/key/0``, ``/key/1``; a map key
that starts with ``/`` is a path of its own, so a file of flat keys
(``{"/calico/bgp/v1/global/as_num": "64512"}``) works as written. Scalars become
strings (``true``, ``64512``); a string holding JSON stays that string.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from confpy.keys import covered_by_any
from confpy.stores.base import Snapshot, StoreError, WatchEvent, poll_for_changes

DATA_SUFFIXES = (".yaml", ".yml", ".json")


class DataFileError(StoreError):
    """A data file cannot be read or parsed; the message names the file and line."""


#: Bounds of one file's tree. Deeper nesting is refused (a YAML anchor can hold itself:
#: ``a: &x [*x]``), and so is a tree of more nodes (YAML aliases let a few lines stand for
#: billions: "billion laughs"; this bound reads in a fraction of a second). A cluster's data
#: is a few levels deep and far smaller (10,000 keys for a 1,000-node Calico cluster).
MAX_DEPTH = 100
MAX_NODES = 200_000


def flatten(data: Any, base: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    """The keys of ``data`` below ``base`` into ``out``; ValueError past :data:`MAX_DEPTH`
    or :data:`MAX_NODES`."""
    out = {} if out is None else out
    stack: list[tuple[Any, str, int]] = [(data, base, 0)]
    nodes = 0
    while stack:
        node, path, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ValueError(f"more than {MAX_NODES} values (YAML aliases that expand without end?)")
        if isinstance(node, dict | list):
            if depth == MAX_DEPTH:
                where = path if len(path) <= 60 else path[:57] + "..."
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels, at {where}")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            children = []
            for k, v in items:
                key = str(k)
                children.append((v, path + key if key.startswith("/") else f"{path}/{key}", depth + 1))
            stack.extend(reversed(children))  # in document order: a later duplicate key wins
        else:
            out[path or "/"] = _scalar(node)
    return out


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: cannot read: {exc}") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:  # an integer past 4300 digits; "[[[[..."
            raise DataFileError(f"{path}: invalid JSON: {_why(exc)}") from None
    import yaml  # JSON data files need no YAML parser

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataFileError(f"{where}: invalid YAML: {problem}") from None
    except (ValueError, RecursionError) as exc:  # an integer past 4300 digits; "[[[[..."
        raise DataFileError(f"{path}: invalid YAML: {_why(exc)}") from None


def _why(exc: Exception) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


class FileStore:
    """Keys from data files. Re-read when a file changes (polled: a stat per file)."""

    name = "file"

    def __init__(self, paths: Sequence[str | Path], poll_interval: float = 1.0) -> None:
        if not paths:
            raise StoreError("file store: no data file given (--file PATH)")
        self.paths = [Path(p) for p in paths]
        self.poll_interval = poll_interval
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._values: dict[str, str] = {}
        self._revision = 0

    @property
    def connected_to(self) -> str | None:
        return ", ".join(str(p) for p in self.paths)

    @property
    def endpoints(self) -> list[str]:
        return [", ".join(str(p) for p in self.paths)]

    @property
    def down_since(self) -> float | None:
        return None  # an unreadable file fails its read; there is no connection to lose

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for p in self.paths:
            if p.is_dir():
                files.extend(sorted(f for f in p.iterdir() if f.suffix in DATA_SUFFIXES and f.is_file()))
            elif p.exists():
                files.append(p)
            else:
                raise DataFileError(f"{p}: no such file or directory")
        return files

    def _load(self) -> None:
        files = self._files()
        signature = tuple((str(f), st.st_mtime_ns, st.st_size) for f in files for st in [os.stat(f)])
        if signature == self._signature:
            return
        values: dict[str, str] = {}
        for f in files:
            try:
                flatten(_parse(f), "", values)
            except ValueError as exc:
                raise DataFileError(f"{f}: {exc}") from None
        self._signature = signature
        if values != self._values or self._revision == 0:
            self._values = values
            self._revision += 1

    def read(self, prefixes: Sequence[str]) -> Snapshot:
        self._load()
        return Snapshot(
            self._revision,
            {k: v for k, v in self._values.items() if covered_by_any(prefixes, k)},
        )

    async def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        import asyncio  # the daemon's; a one-shot run reads without an event loop

        return await asyncio.to_thread(self.read, prefixes)

    def watch(self, prefixes: Sequence[str], after: int) -> AsyncIterator[WatchEvent]:
        return poll_for_changes(lambda: self.snapshot(prefixes), after, self.poll_interval)

    async def close(self) -> None:
        return None
