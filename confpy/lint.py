"""``confpy lint [-confdir DIR]``: every resource loaded and every template compiled,
every problem of every file in one run; no store needed. Exit 0 or 2.

A template that is Go (confd's) rather than Jinja is named as such, with the place of
its first Go action: ``confpy convert`` turns it into Jinja.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from confpy.engine import TEMPLATE_PLUGINS
from confpy.errors import EXIT_OK, EXIT_USAGE, ConfigError
from confpy.render import Renderer
from confpy.resource import TemplateResource, load_resource
from confpy.settings import DEFAULT_CONFDIR

#: What only a Go template writes: {{if x}}, {{end}}, {{.Field}}, {{$var}}, {{template "x"}}...
_GO_ACTION = re.compile(
    r"\{\{-?\s*(?:(?:if|range|with|define|template|block|else|end)\b(?!\s*[(=.])|\.[A-Za-z_]|\$)"
)
GO_HINT = "this looks like a confd Go template: see confpy convert"


def go_action(text: str) -> tuple[int, int, str] | None:
    """(line, column, action) of the first Go-only action in ``text``, if any."""
    m = _GO_ACTION.search(text)
    if m is None:
        return None
    line = text.count("\n", 0, m.start()) + 1
    col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
    end = text.find("}}", m.start())
    return line, col, text[m.start() : end + 2 if end >= 0 else m.end()]


def lint_confdir(confdir: Path, node_name: str = "node", prefix: str = "") -> tuple[list[str], int, int]:
    """(every problem, resources loaded, templates compiled)."""
    conf_d = confdir / "conf.d"
    if not conf_d.is_dir():
        return [f"{conf_d}: no such directory (confdir is {confdir})"], 0, 0
    problems: list[str] = []
    resources: list[TemplateResource] = []
    tomls = sorted(conf_d.rglob("*.toml"))
    if not tomls:
        problems.append(f"{conf_d}: no template resources (*.toml)")
    for path in tomls:
        try:
            resources.append(load_resource(path, conf_d, node_name, prefix))
        except ConfigError as exc:
            problems.append(str(exc))
    dests: dict[Path, Path] = {}
    for r in resources:
        if r.dest in dests:
            problems.append(f"{r.path}: dest {r.dest} is also the dest of {dests[r.dest]}")
        dests.setdefault(r.dest, r.path)
    templates = confdir / "templates"
    renderer = Renderer(templates, TEMPLATE_PLUGINS)
    compiled = 0
    for src in sorted({r.src for r in resources}):
        users = ", ".join(str(r.path) for r in resources if r.src == src)
        path = templates / src
        found = go_action(path.read_text(errors="replace")) if path.is_file() else None
        go = f"{path}:{found[0]}:{found[1]}: {found[2]}: {GO_HINT}" if found else None
        try:
            renderer.compile(src)
            compiled += 1
        except ConfigError as exc:
            problems.append(f"{exc} (src of {users})" + (f"\n  {go}" if go else ""))
            continue
        if go:
            problems.append(go)
    return problems, len(resources), compiled


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="confpy lint",
        description="Load every resource and compile every template of a confdir; list every problem.",
        allow_abbrev=False,
    )
    p.add_argument(
        "--confdir", default=DEFAULT_CONFDIR, help=f"holds conf.d/ and templates/ (default {DEFAULT_CONFDIR})"
    )
    p.add_argument("--node-name", default="node", help="node name for //NODENAME in resources")
    p.add_argument("--prefix", default="", help="prefix added in front of every resource prefix")
    return p


def main(argv: Sequence[str]) -> int:
    from confpy.cli import go_style

    parser = build_parser()
    args = parser.parse_args(go_style(argv, parser))
    problems, resources, templates = lint_confdir(Path(args.confdir), args.node_name, args.prefix)
    for p in problems:
        print(f"confpy lint: {p}", file=sys.stderr)
    if problems:
        print(f"confpy lint: {len(problems)} problem(s) in {args.confdir}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.confdir}: {resources} resource(s), {templates} template(s): ok")
    return EXIT_OK
