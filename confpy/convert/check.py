"""``confpy convert --check DATA``: render a converted confdir from a data file and say,
file by file, what came out (and whether it is what confd wrote, with ``--compare``)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from confpy.cache import Cache
from confpy.engine import TEMPLATE_PLUGINS
from confpy.errors import RenderError
from confpy.keys import collapse
from confpy.keyview import KeyView
from confpy.render import Renderer
from confpy.resource import load_resources
from confpy.stores.file import FileStore


@dataclass(frozen=True)
class CheckLine:
    resource: str
    ok: bool
    text: str


def _first_difference(got: str, want: str) -> str:
    a, b = got.splitlines(keepends=True), want.splitlines(keepends=True)
    for i, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            return f"line {i}: {y!r} expected, {x!r} rendered"
    return f"{len(a)} lines rendered, {len(b)} expected"


def check_confdir(
    confdir: Path, data: list[str], node_name: str, prefix: str = "", compare: Path | None = None
) -> list[CheckLine]:
    """One line per resource: rendered (lines, bytes) or why not; with ``compare``, whether
    the text is byte for byte ``compare/<dest's name>``. Raises ConfigError / StoreError."""
    renderer = Renderer(confdir / "templates", TEMPLATE_PLUGINS)
    resources = load_resources(confdir, node_name, prefix, renderer.compile)
    store = FileStore(data)
    snap = asyncio.run(store.snapshot(collapse(k for r in resources for k in r.keys)))
    cache = Cache(snap)
    # confd's templates read the node name from the environment (getenv "NODENAME").
    saved = os.environ.get("NODENAME")
    os.environ["NODENAME"] = node_name
    try:
        return [
            _check_one(renderer, r.name, r.src, r.dest, cache.view(r), node_name, compare) for r in resources
        ]
    finally:
        if saved is None:
            del os.environ["NODENAME"]
        else:
            os.environ["NODENAME"] = saved


def _check_one(
    renderer: Renderer, name: str, src: str, dest: Path, view: KeyView, node: str, compare: Path | None
) -> CheckLine:
    try:
        text = renderer.render(src, view, node)
    except RenderError as exc:
        return CheckLine(name, False, f"{name}: {exc}")
    size = f"{text.count(chr(10))} lines, {len(text.encode())} bytes"
    if compare is None:
        return CheckLine(name, True, f"{name} -> {dest}: rendered, {size}")
    expected = compare / dest.name
    try:
        want = expected.read_text()
    except OSError as exc:
        return CheckLine(name, False, f"{name}: rendered ({size}); cannot read {expected}: {exc.strerror}")
    if text == want:
        return CheckLine(name, True, f"{name} -> {dest}: rendered, {size}: same as {expected}")
    return CheckLine(
        name, False, f"{name} -> {dest}: differs from {expected}: {_first_difference(text, want)}"
    )
