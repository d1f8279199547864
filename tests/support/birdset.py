"""Render and check one node's BIRD files offline, from a flat key map (tests, bench).

Two template sets: :data:`BIRD16` (``conf.d/``, read by ``bird`` and ``bird6``) and
:data:`BIRD2` (``bird2/``, read by one BIRD 2 daemon).

Built the way the product builds it: the confdir loaded by
:meth:`confpy.engine.Loaded.from_settings`, the keys served by a store
(:class:`MemoryStore`) asked for the loaded, collapsed prefixes, and a
:class:`confpy.cache.Cache` handing each resource the keys it reads. A key that the
product would not read (a prefix rule gone wrong) is then missing here too.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from confpy.cache import Cache
from confpy.engine import Loaded
from confpy.keyview import KeyView
from confpy.render import Renderer
from confpy.resource import TemplateResource
from confpy.settings import Settings
from confpy.stores.base import Store
from confpy.stores.memory import MemoryStore
from tests.support.bird_daemon import bird2_binary, bird2_missing, bird_binary

ROOT = Path(__file__).resolve().parents[2]

#: The files each BIRD daemon reads: its main file first, then the two it includes.
DAEMON_FILES = {
    "bird": ("bird.cfg", "bird_ipam.cfg", "bird_aggr.cfg"),
    "bird6": ("bird6.cfg", "bird6_ipam.cfg", "bird6_aggr.cfg"),
    "bird2": ("bird.cfg", "bird_ipam.cfg", "bird_aggr.cfg"),
}


@dataclass(frozen=True)
class TemplateSet:
    """One of the project's BIRD confdirs and the daemons that read what it renders."""

    name: str
    confdir: Path
    daemons: tuple[str, ...]

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(name for daemon in self.daemons for name in DAEMON_FILES[daemon])

    def missing(self) -> str | None:
        """Why this set's daemons cannot check files here (None: they can)."""
        absent = [d for d in self.daemons if daemon_binary(d) is None]
        if not absent:
            return None
        return bird2_missing() if absent == ["bird2"] else f"Debian's {'/'.join(absent)} not installed"

    def __str__(self) -> str:
        return self.name


#: Calico's fork / Debian's BIRD 1.6 (conf.d/, one daemon per family) and BIRD 2 (bird2/).
BIRD16 = TemplateSet("bird1.6", ROOT, ("bird", "bird6"))
BIRD2 = TemplateSet("bird2", ROOT / "bird2", ("bird2",))
SETS = (BIRD16, BIRD2)


def daemon_binary(daemon: str) -> str | None:
    """The ``bird`` binary that is ``daemon`` (``bird``, ``bird6`` or ``bird2``), or None."""
    return bird2_binary() if daemon == "bird2" else bird_binary(daemon)


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
    files: Mapping[str, str], daemon: str, workdir: Path, timeout: float = 120
) -> tuple[bool, str]:
    """Write ``daemon``'s three files into ``workdir`` and run ``bird -p -c`` on the main
    one (BIRD resolves the includes against its directory). Returns (ok, output)."""
    binary = daemon_binary(daemon)
    if binary is None:
        raise FileNotFoundError(f"{daemon} cannot be run here")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in DAEMON_FILES[daemon]:
        (workdir / name).write_text(files[name])
    proc = subprocess.run(
        [binary, "-p", "-c", str(workdir / DAEMON_FILES[daemon][0])],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def check_set(files: Mapping[str, str], tset: TemplateSet, workdir: Path) -> list[str]:
    """Every daemon of ``tset`` parses its files from ``files``: the rejections, with BIRD's words."""
    rejected = []
    for daemon in tset.daemons:
        ok, output = bird_check(files, daemon, workdir / daemon)
        if not ok:
            rejected.append(f"{daemon} -p rejected the {tset} set:\n{output}")
    return rejected


def assert_parses(files: Mapping[str, str], tset: TemplateSet, workdir: Path) -> None:
    """Every daemon of ``tset`` accepts its files (an AssertionError with BIRD's words if not)."""
    rejected = check_set(files, tset, workdir)
    assert not rejected, "\n".join(rejected)
