"""Render and check one node's BIRD files offline, from a flat key map (tests, bench).

Built the way the product builds it: the confdir loaded by
:meth:`confpy.engine.Loaded.from_settings`, the keys served by a store
(:class:`MemoryStore`) asked for the loaded, collapsed prefixes, and a
:class:`confpy.cache.Cache` handing each resource the keys it reads. A key that the
product would not read (a prefix rule gone wrong) is then missing here too.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from confpy.cache import Cache
from confpy.engine import Loaded
from confpy.keyview import KeyView
from confpy.render import Renderer
from confpy.resource import TemplateResource
from confpy.settings import Settings
from confpy.stores.base import Store
from confpy.stores.memory import MemoryStore

DAEMONS = {4: "bird", 6: "bird6"}


def family_files(family: int) -> tuple[str, str, str]:
    """The main file and its two includes: ``bird.cfg``, ``bird_ipam.cfg``, ``bird_aggr.cfg``."""
    daemon = DAEMONS[family]
    return f"{daemon}.cfg", f"{daemon}_ipam.cfg", f"{daemon}_aggr.cfg"


class BirdSet:
    """The resources of one confdir for one node, ready to render key maps."""

    def __init__(self, confdir: Path, node_name: str) -> None:
        self.node_name = node_name
        self.loaded = Loaded.from_settings(Settings(confdir=confdir, node_name=node_name))

    @property
    def renderer(self) -> Renderer:
        return self.loaded.renderer

    @property
    def resources(self) -> list[TemplateResource]:
        return self.loaded.resources

    def views(self, values: Mapping[str, str] | Store) -> dict[str, tuple[TemplateResource, KeyView]]:
        """Destination file name -> (resource, the keys it reads), from a key map or a store."""
        store = MemoryStore(values) if isinstance(values, Mapping) else values
        cache = Cache(asyncio.run(store.snapshot(self.loaded.prefixes)))
        return {r.dest.name: (r, cache.view(r)) for r in self.resources}

    def render(self, values: Mapping[str, str] | Store) -> dict[str, str]:
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
