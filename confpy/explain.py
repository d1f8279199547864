"""``confpy explain KEY [flags]``: which resources and units read a store key, under
which prefix, and which files would change if it changed.

With the store (the usual ``-node``/``-file`` flags) each resource that reads the key
is rendered twice: as the store has it, and with the key changed (removed if it is
there, set if it is not). A file whose text differs depends on the key now.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from confpy.cli import build_parser, parse_flags
from confpy.engine import Engine
from confpy.errors import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, ConfigError, RenderError
from confpy.keyview import KeyView
from confpy.logs import setup_logging
from confpy.resource import TemplateResource
from confpy.settings import build_settings

#: The value a missing key is given, to see whether a template would use it.
PROBE = "confpy-explain-probe"


def _changed(view: KeyView, key: str) -> KeyView:
    """A copy of ``view`` with ``key`` removed, or set if it is absent."""
    copy = KeyView(view.prefix, dict(view.items_under_full(view.prefix or "/")))
    if copy.lookup_full(key) is None:
        copy.put(key, PROBE)
    else:
        copy.remove(key)
    return copy


def _effect(engine: Engine, r: TemplateResource, view: KeyView, key: str) -> str:
    render, node, redact = engine.loaded.renderer.render, engine.settings.node_name, engine.redactor
    change = "set" if view.lookup_full(key) is None else "removed"
    try:
        before = render(r.src, view, node)
    except RenderError as exc:
        return f"does not render now: {redact(str(exc).splitlines()[0])}"
    try:
        after = render(r.src, _changed(view, key), node)
    except RenderError as exc:
        return f"would fail to render if the key were {change}: {redact(str(exc).splitlines()[0])}"
    if before == after:
        return f"{r.dest} would not change if the key were {change}: the template does not use it now"
    return f"{r.dest} would change if the key changed: its text depends on it"


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    parser.prog = "confpy explain"
    parser.usage = "confpy explain KEY [-confdir DIR] [-node URL | -file DATA] [other confpy flags]"
    parser.add_argument(
        "key", metavar="KEY", help="a full store key, e.g. /calico/bgp/v1/host/node1/ip_addr_v4"
    )
    try:
        flags = parse_flags(argv, parser)
        key = "/" + flags.pop("key").strip("/")
        settings = build_settings({**flags, "stdout": True})  # read once, write nothing
        setup_logging("error", settings.log_format)
        engine = Engine.create(settings)
    except ConfigError as exc:
        print(f"confpy explain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    readers = [r for r in engine.loaded.resources if r.reads(key)]
    if not readers:
        print(f"{key}: no resource reads it")
        for r in engine.loaded.resources:
            print(f"  {r.name} reads {', '.join(r.keys)}")
        return EXIT_FAILED
    cache = engine.read_once()
    if cache is None:
        return EXIT_UNREACHABLE
    value = next((v for k, v in cache.items_under(key) if k == key), None)
    print(f"{key}: {'absent' if value is None else repr(engine.redactor(value))} in the store")
    for r in readers:
        unit = next(u for u in engine.loaded.units if u.name == r.unit)
        others = [x.name for x in unit.resources if x is not r]
        applied = f"unit {unit.name}, applied with {', '.join(others)}" if others else f"unit {unit.name}"
        print(f"  {r.name} ({applied}) reads it as {key[len(r.prefix) :] or '/'} (prefix {r.prefix or '/'})")
        print(f"    {_effect(engine, r, cache.view(r), key)}")
    return EXIT_OK
