"""What the lab's BIRDs and kernels say, and what they should say: read with ``birdc``
and ``ip``, inside the nodes' namespaces, never changing anything.

:class:`LabState` is the reading half of :class:`~tests.support.bgp_lab.cluster.Lab`:
sessions, kernel routes, the routes expected from the blocks, reload counts from BIRD's
and confpy's own logs, and the diagnostics printed when a wait runs out.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter

from tests.support.bgp_lab.node import Node, tail
from tests.support.bgp_lab.plan import LabBird, family_of
from tests.support.bird_daemon import bird_binary

IP_PATH = bird_binary("ip")
IP = IP_PATH or "ip"
CMD_TIMEOUT = 15.0


class LabError(RuntimeError):
    """The lab could not be built, or a bounded wait ran out (with diagnostics)."""


def run(
    args: list[str], check: bool = True, timeout: float = CMD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout:g} s: {' '.join(args)}") from None
    if check and r.returncode != 0:
        raise LabError(f"failed (rc={r.returncode}): {' '.join(args)}\n{r.stdout}{r.stderr}")
    return r


class LabState:
    """Reads the state of a lab's nodes (``nodes``, running ``bird``; set by the Lab)."""

    nodes: dict[str, Node]
    bird: LabBird

    def birdc(self, node: str, *args: str) -> str:
        birdc = self.bird.binary("birdc")
        assert birdc is not None
        r = run([birdc, "-s", str(self.nodes[node].ctl), *args], check=False, timeout=10)
        return r.stdout + r.stderr

    def protocols(self, node: str) -> dict[str, str]:
        """BGP protocols of ``node``'s BIRD: name -> the state/info columns."""
        out = {}
        for line in self.birdc(node, "show", "protocols").splitlines():
            f = line.split()
            if len(f) >= 4 and f[1] == "BGP":
                out[f[0]] = " ".join(f[3:])
        return out

    def session_restarts(self, node: str) -> Counter[str]:
        """Protocol name -> how often BIRD logged it leaving "up" or starting over (the
        templates trace states). A reconfiguration re-feeds a session (feed, up) without
        a restart. Unchanged counts mean no session restarted; BIRD 1.6's "since" column
        cannot say that: it moves by a second with no change of state."""
        return Counter(
            re.findall(r"(\S+): State changed to (?:stop|down|start)", self.nodes[node].bird_text())
        )

    def established(self, node: str) -> set[str]:
        return {p for p, info in self.protocols(node).items() if "Established" in info}

    def kernel_routes(self, node: str, proto_bird: bool = True) -> dict[str, str]:
        """Routes of the lab's families in ``node``'s kernel (``proto bird`` by default):
        prefix -> route text."""
        out = {}
        for family in self.bird.families:
            args = [IP, f"-{family}", "-n", self.nodes[node].ns, "route", "show"]
            for line in run(args + (["proto", "bird"] if proto_bird else []), timeout=5).stdout.splitlines():
                f = line.split()
                if not f:
                    continue
                prefix = f[1] if f[0] in ("blackhole", "unreachable", "prohibit") else f[0]
                if prefix == "default":
                    prefix = "0.0.0.0/0" if family == 4 else "::/0"
                if "/" not in prefix:
                    prefix += "/32" if family == 4 else "/128"
                out[prefix] = line.strip()
        return out

    def expected_routes(self, node: str, blocks: dict[str, list[str]] | None = None) -> dict[str, str]:
        """What ``node``'s kernel should have from BIRD: other nodes' blocks via their
        address, its own as blackholes. ``blocks``: node -> its CIDRs (default: one per family)."""
        blocks = blocks or {n: self.nodes[n].blocks for n in self.nodes}
        want = {}
        for owner, cidrs in blocks.items():
            for cidr in cidrs:
                if owner == node:
                    want[cidr] = f"blackhole {cidr}"
                else:
                    via = self.nodes[owner].address(family_of(cidr))
                    want[cidr] = f"{cidr} via {via} dev eth0"
        return want

    def routes_match(self, node: str, want: dict[str, str], exact: bool = True) -> bool:
        have = self.kernel_routes(node)
        if exact and set(have) != set(want):
            return False
        return all(have.get(p, "").startswith(text) for p, text in want.items())

    def mesh_sessions(self, node: str) -> set[str]:
        """The mesh sessions ``node`` should have: one per other node and family."""
        return {s for name, n in self.nodes.items() if name != node for s in n.sessions}

    def mesh_up(self) -> bool:
        """Every node has exactly its mesh sessions Established (and no other BGP protocol)."""
        for name in self.nodes:
            want = self.mesh_sessions(name)
            protos = self.protocols(name)
            if set(protos) != want or self.established(name) != want:
                return False
        return True

    def converged(self, blocks: dict[str, list[str]] | None = None) -> bool:
        return self.mesh_up() and all(
            self.routes_match(n, self.expected_routes(n, blocks)) for n in self.nodes
        )

    # ------------------------------------------------------------------ reload accounting
    def bird_reloads(self, node: str) -> int:
        """Reconfigurations BIRD itself logged (one "Reconfiguring" per accepted configure)."""
        return len(re.findall(r"^bird: Reconfiguring", self.nodes[node].bird_text(), re.M))

    def confpy_reloads(self, node: str) -> int:
        """Reloads confpy logged as done ("unit bird: reloaded: ...")."""
        return len(re.findall(r"unit bird: reloaded", self.nodes[node].confpy_text()))

    def reload_counts(self) -> dict[str, tuple[int, int]]:
        return {n: (self.bird_reloads(n), self.confpy_reloads(n)) for n in self.nodes}

    def settled(self, node: str) -> bool:
        """confpy owes no reload (no pending marker left by a reload that failed)."""
        return not list(self.nodes[node].out.glob(".confpy-pending-*"))

    def pids(self) -> dict[str, int | None]:
        return {n.name: n.confpy.pid if n.confpy else None for n in self.nodes.values()}

    def watchers_alive(self) -> bool:
        return all(n.confpy is not None and n.confpy.poll() is None for n in self.nodes.values())

    def show(self, node: str) -> str:
        n = self.nodes[node]
        route = "\n".join(
            run([IP, f"-{f}", "-n", n.ns, "route", "show"], check=False).stdout.rstrip() for f in n.families
        )
        return (
            f"===== {node} (netns {n.ns}, {n.addr}, BIRD pid {n.bird.pid if n.bird else '-'}, "
            f"confpy pid {n.confpy.pid if n.confpy else '-'})\n"
            f"--- ip route\n{route}\n--- birdc show protocols\n{self.birdc(node, 'show', 'protocols').rstrip()}"
        )

    def report(self) -> str:
        parts = []
        for name, n in self.nodes.items():
            try:
                parts.append(self.show(name))
            except LabError as exc:
                parts.append(f"===== {name}: {exc}")
            parts.append(
                f"--- confpy log (tail)\n{tail(n.confpy_text())}\n--- BIRD log (tail)\n{tail(n.bird_text(), 8)}"
            )
        return "\n".join(parts)
