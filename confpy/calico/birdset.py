"""Render and check one node's BIRD files offline, from a flat key map.

Renders every resource of a confdir (``conf.d/*.toml`` + ``templates/``) the way the
daemon does (each resource sees only the keys it reads, with its prefix cut off), and
checks a family's main file with ``bird -p`` / ``bird6 -p`` with its includes beside
it. Used by the tests and the benchmarks; the daemon goes through the
scheduler and the writer instead.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from confpy.cache import Cache
from confpy.keyview import KeyView
from confpy.render import Renderer
from confpy.resource import TemplateResource, load_resources
from confpy.stores.base import Snapshot

DAEMONS = {4: "bird", 6: "bird6"}


def family_files(family: int) -> tuple[str, str, str]:
    """The main file and its two includes: ``bird.cfg``, ``bird_ipam.cfg``, ``bird_aggr.cfg``."""
    daemon = DAEMONS[family]
    return f"{daemon}.cfg", f"{daemon}_ipam.cfg", f"{daemon}_aggr.cfg"


class BirdSet:
    """The resources of one confdir for one node, ready to render key maps."""

    def __init__(self, confdir: Path, node_name: str) -> None:
        self.node_name = node_name
        self.resources: list[TemplateResource] = load_resources(confdir, node_name)
        self.renderer = Renderer(confdir / "templates")

    def views(self, values: Mapping[str, str]) -> dict[str, tuple[TemplateResource, KeyView]]:
        """Destination file name -> (resource, the keys it reads)."""
        cache = Cache(Snapshot(0, dict(values)))
        return {r.dest.name: (r, cache.view(r)) for r in self.resources}

    def render(self, values: Mapping[str, str]) -> dict[str, str]:
        """Destination file name -> rendered text; raises RenderError on the first failure."""
        return {
            name: self.renderer.render(r.src, view, self.node_name)
            for name, (r, view) in self.views(values).items()
        }


def bird_check(
    files: Mapping[str, str], family: int, workdir: Path, timeout: float = 120
) -> tuple[bool, str]:
    """Write the family's three files into ``workdir`` and run ``bird -p -c`` on the main
    one (BIRD resolves the includes against its directory). Returns (ok, output)."""
    binary = shutil.which(DAEMONS[family]) or f"/usr/sbin/{DAEMONS[family]}"
    workdir.mkdir(parents=True, exist_ok=True)
    for name in family_files(family):
        (workdir / name).write_text(files[name])
    main = workdir / family_files(family)[0]
    proc = subprocess.run(
        [binary, "-p", "-c", str(main)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()
