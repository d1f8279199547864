"""One node of the lab: its name, addresses and blocks, and where its files and logs are."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.bgp_lab.plan import address, block_of, mesh_name, node_keys


@dataclass
class Node:
    name: str
    index: int
    dir: Path
    ns: str
    families: tuple[int, ...] = (4,)
    confpy: subprocess.Popen[bytes] | None = None
    bird: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        """The node's IPv4 address."""
        return address(self.index)

    def address(self, family: int) -> str:
        return address(self.index, family)

    @property
    def block(self) -> str:
        """The node's first IPv4 block."""
        return block_of(self.index)

    @property
    def blocks(self) -> list[str]:
        """The node's first block of each family of the lab."""
        return [block_of(self.index, 0, f) for f in self.families]

    @property
    def sessions(self) -> set[str]:
        """Our BGP protocol names of the mesh sessions to this node, one per family."""
        return {mesh_name(self.address(f)) for f in self.families}

    @property
    def confdir(self) -> Path:
        return self.dir / "confd"

    @property
    def out(self) -> Path:
        """Where this node's confpy writes bird.cfg, bird_aggr.cfg, bird_ipam.cfg."""
        return self.dir / "config"

    @property
    def bird_cfg(self) -> Path:
        return self.out / "bird.cfg"

    @property
    def ctl(self) -> Path:
        return self.dir / "bird.ctl"

    @property
    def pidfile(self) -> Path:
        return self.dir / "bird.pid"

    @property
    def bird_log(self) -> Path:
        return self.dir / "bird.log"

    @property
    def confpy_log(self) -> Path:
        return self.dir / "confpy.log"

    def keys(self) -> dict[str, str]:
        return node_keys(self.name, self.index, self.families)

    def confpy_text(self) -> str:
        return self.confpy_log.read_text(errors="replace") if self.confpy_log.exists() else ""

    def bird_text(self) -> str:
        return self.bird_log.read_text(errors="replace") if self.bird_log.exists() else ""


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])
