"""A Calico-style cluster in network namespaces: etcd -> confpy -> BIRD, for real.

Layout (lab prefix ``P`` = ``cpl<pid>``, unique per run)::

    root namespace   etcd on 127.0.0.1:<free port> (keys as in the spec's layout)
                     one ``confpy -watch`` per node (its own confdir copy and output dir)
    netns P-hub      bridge br0, one veth port per node
    netns P-nodeN    eth0 = 10.99.0.N/24 (veth to the hub), lo; BIRD 1.6 (``bird -d``)
                     reading the files that node's confpy writes

Every node has one /26 block (node N: 192.168.(100+N).0/26) from the pool
192.168.0.0/16 (no IPIP: this kernel has no ipip module), so once the mesh is up each
kernel has the other nodes' blocks ``proto bird`` via their node address and its own
block as a blackhole.

Each node's confpy reloads only its own BIRD, through that BIRD's control socket
(``reload_birdc``), never by process name. Each BIRD runs in the foreground (``-d``),
its log (stderr) in ``<node dir>/bird.log``: BIRD's own "Reconfiguring" lines count
the reloads it received, independently of what confpy logs.

Cleanup: everything created is recorded in ``state.json`` (see ``cleanup.py``) before
it is used, :meth:`Lab.close` undoes it, and a detached watchdog undoes it if the
owning process dies without closing the lab. Traffic stays on loopback (etcd) and
inside the lab's namespaces; no host interface or route is touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.bgp_lab import cleanup
from tests.support.bird_daemon import SBIN_PATH, bird_answers, bird_binary
from tests.support.etcd_server import ETCD, ETCDCTL, EtcdServer

ROOT = Path(__file__).resolve().parents[3]
BIRD = bird_binary("bird")
BIRDC = bird_binary("birdc")
IP_PATH = bird_binary("ip")
IP = IP_PATH or "ip"

LAB_NET = "10.99.0.0/24"
POOL = "192.168.0.0/16"
AS_NUM = "64512"
CMD_TIMEOUT = 15.0

G = "/calico/bgp/v1/global"
H = "/calico/bgp/v1/host"
POOL_KEY = "/calico/v1/ipam/v4/pool/192.168.0.0-16"


class LabError(RuntimeError):
    """The lab could not be built, or a bounded wait ran out (with diagnostics)."""


def missing_requirements() -> str | None:
    """Why the lab cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    missing = [
        n
        for n, p in (("bird", BIRD), ("birdc", BIRDC), ("ip", IP_PATH), ("etcd", ETCD), ("etcdctl", ETCDCTL))
        if not p
    ]
    if missing:
        return f"missing binaries: {', '.join(missing)} (Debian: apt-get install bird iproute2 etcd-server etcd-client)"
    return None


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


def block_of(index: int, sub: int = 0) -> str:
    """Node ``index``'s ``sub``-th /26: node 1 -> 192.168.101.0/26, 192.168.101.64/26, ..."""
    return f"192.168.{100 + index}.{64 * sub}/26"


def block_key(node: str, cidr: str) -> str:
    return f"/calico/ipam/v2/host/{node}/ipv4/block/{cidr.replace('/', '-')}"


def cluster_keys() -> dict[str, str]:
    """Global settings and the pool, as Calico's backend writes them."""
    pool = {
        "cidr": POOL,
        "ipip": "",
        "ipip_mode": "",
        "vxlan_mode": "",
        "masquerade": True,
        "ipam": True,
        "disabled": False,
    }
    return {
        f"{G}/as_num": AS_NUM,
        f"{G}/node_mesh": json.dumps({"enabled": True}),
        f"{G}/loglevel": "info",
        POOL_KEY: json.dumps(pool),
    }


@dataclass
class Node:
    name: str
    index: int
    dir: Path
    ns: str
    confpy: subprocess.Popen[bytes] | None = None
    bird: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"10.99.0.{self.index}"

    @property
    def block(self) -> str:
        return block_of(self.index)

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
        """This node's keys as Calico writes them (ip_addr_v6 and rr_cluster_id always, empty)."""
        return {
            f"{H}/{self.name}/ip_addr_v4": self.addr,
            f"{H}/{self.name}/ip_addr_v6": "",
            f"{H}/{self.name}/network_v4": LAB_NET,
            f"{H}/{self.name}/rr_cluster_id": "",
            block_key(self.name, self.block): json.dumps({"state": "confirmed", "deleted": False}),
        }

    def confpy_text(self) -> str:
        return self.confpy_log.read_text(errors="replace") if self.confpy_log.exists() else ""

    def bird_text(self) -> str:
        return self.bird_log.read_text(errors="replace") if self.bird_log.exists() else ""


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Lab:
    """A lab of ``size`` nodes; :meth:`up` builds it, :meth:`close` removes it all."""

    workdir: Path
    size: int = 3
    wait_min: str = "50ms"
    wait_max: str = "1s"
    log_level: str = "info"
    say: Callable[[str], None] = field(default=lambda msg: None)
    nodes: dict[str, Node] = field(default_factory=dict)
    etcd: EtcdServer | None = None

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.prefix = f"cpl{os.getpid()}-"
        self.hub = self.prefix + "hub"
        self.token = uuid.uuid4().hex
        self.state: cleanup.State | None = None

    # ------------------------------------------------------------------ build / remove
    def up(self) -> None:
        """etcd with the keys, a confpy watcher per node (until bird.cfg exists),
        the namespaces, then BIRD per node; returns when every daemon answers."""
        why = missing_requirements()
        if why:
            raise LabError(why)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if len(str(self.workdir / "node99" / "bird.ctl")) > 100:
            raise LabError(f"workdir {self.workdir} too long for a control socket path")
        self.state = cleanup.State(self.workdir / "state.json", self.token, self.prefix)
        wd_pid, _ = cleanup.start_watchdog(self.state.path, self.token)
        self.say(f"watchdog pid {wd_pid} (tears the lab down if this process dies)")
        try:
            self._start_etcd()
            keys = cluster_keys()
            for i in range(1, self.size + 1):
                keys.update(self._node(i).keys())
            self.etcd_txn(keys)
            self._add_netns(self.hub)
            run([IP, "-n", self.hub, "link", "add", "br0", "type", "bridge"])
            run([IP, "-n", self.hub, "link", "set", "br0", "up"])
            nodes = list(self.nodes.values())
            for n in nodes:
                self._start_confpy(n)
            for n in nodes:
                self._wait_file(n)
            for n in nodes:
                self._plug(n)
            for n in nodes:
                self._start_bird(n)
            for n in nodes:
                self._wait_bird(n)
        except BaseException:
            self.close()
            raise

    def _node(self, index: int) -> Node:
        name = f"node{index}"
        node = Node(name, index, self.workdir / name, self.prefix + name)
        self.nodes[name] = node
        return node

    def _start_etcd(self) -> None:
        self.etcd = EtcdServer(self.workdir / "etcd")
        self.etcd.start()
        self._record_etcd()
        self.say(f"etcd at {self.etcd.endpoint} (pid {self.etcd.pid})")

    def _record_etcd(self) -> None:
        assert self.state is not None and self.etcd is not None and self.etcd.pid is not None
        self.state.add_proc("etcd", self.etcd.pid, str(self.etcd.data_dir))

    def _add_netns(self, name: str) -> None:
        assert self.state is not None
        if name in cleanup.netns_list():
            raise LabError(f"netns {name} exists and is not ours; not touching it")
        self.state.add_netns(name)  # recorded first: cleanup deletes it if add half-failed
        run([IP, "netns", "add", name])
        run([IP, "-n", name, "link", "set", "lo", "up"])

    def _plug(self, n: Node) -> None:
        """n's namespace, eth0 with its address, veth to the hub's bridge."""
        self._add_netns(n.ns)
        port = f"v{n.index}"
        run([IP, "-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.ns])
        run([IP, "-n", self.hub, "link", "set", port, "master", "br0", "up"])
        run([IP, "-n", n.ns, "addr", "add", f"{n.addr}/24", "dev", "eth0"])
        run([IP, "-n", n.ns, "link", "set", "eth0", "up"])

    def _write_confdir(self, n: Node) -> None:
        """Copy conf.d/ and templates/; dests into n.out, reload through n's BIRD socket only."""
        if n.confdir.exists():
            shutil.rmtree(n.confdir)
        shutil.copytree(ROOT / "templates", n.confdir / "templates")
        (n.confdir / "conf.d").mkdir(parents=True)
        n.out.mkdir(parents=True, exist_ok=True)
        for toml in sorted((ROOT / "conf.d").glob("*.toml")):
            family = "bird6" if toml.name.startswith("bird6") else "bird"
            ctl = n.dir / f"{family}.ctl"
            lines = []
            for line in toml.read_text().splitlines():
                if re.match(
                    r"\s*(reload_signal|reload_process|reload_pidfile|reload_cmd|reload_birdc)\s*=", line
                ):
                    continue
                m = re.match(r'\s*dest\s*=\s*"([^"]+)"', line)
                if m:
                    line = f'dest = "{n.out / Path(m.group(1)).name}"'
                lines.append(line)
            lines.append(f'reload_birdc = "{ctl}"')
            text = "\n".join(lines) + "\n"
            t = tomllib.loads(text)["template"]  # the rewrite must still be a valid resource
            assert t["reload_birdc"] == str(ctl) and t["dest"].startswith(str(n.out)), text
            assert not {"reload_signal", "reload_process"} & set(t), text
            (n.confdir / "conf.d" / toml.name).write_text(text)

    def _start_confpy(self, n: Node) -> None:
        assert self.state is not None and self.etcd is not None
        if n.dir.exists():
            shutil.rmtree(n.dir)  # a fresh node: no file, log or socket of an earlier run
        n.dir.mkdir(parents=True)
        self._write_confdir(n)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("CONFPY_") and "proxy" not in k.lower()
        }
        env.update(
            PATH=f"{os.path.dirname(sys.executable)}:{SBIN_PATH}",
            PYTHONPATH=str(ROOT),
            BIRD_FLAVOR="stock",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        env.pop("NODENAME", None)
        env.pop("CALICO_ROUTER_ID", None)
        args = [
            sys.executable, "-m", "confpy", "-watch",
            "-config-file=/dev/null",  # no settings from /etc/confpy
            "-confdir", str(n.confdir),
            "-node", self.etcd.endpoint,
            "-node-name", n.name,
            "--resource", "bird",  # the IPv4 unit (bird.cfg + bird_aggr.cfg + bird_ipam.cfg)
            "-wait-min", self.wait_min,
            "-wait-max", self.wait_max,
            "-log-level", self.log_level,
        ]  # fmt: skip
        with n.confpy_log.open("ab") as logf:
            n.confpy = subprocess.Popen(
                args,
                cwd=n.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.state.add_proc(f"confpy-{n.name}", n.confpy.pid, str(n.confdir))
        self.say(f"{n.name}: confpy pid {n.confpy.pid}, writing {n.out}")

    def _wait_file(self, n: Node, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if n.confpy is not None and n.confpy.poll() is not None:
                raise LabError(
                    f"{n.name}: confpy exited with {n.confpy.returncode}:\n{tail(n.confpy_text())}"
                )
            return n.bird_cfg.exists()

        self.wait(ready, timeout, f"{n.name}: confpy wrote {n.bird_cfg}")

    def _start_bird(self, n: Node) -> None:
        assert self.state is not None and BIRD is not None
        for p in (n.ctl, n.pidfile):
            p.unlink(missing_ok=True)
        check = run([BIRD, "-p", "-c", str(n.bird_cfg)], check=False)
        if check.returncode != 0:
            raise LabError(f"{n.name}: bird -p rejects {n.bird_cfg}: {check.stderr}{check.stdout}")
        args = [
            IP,
            "netns",
            "exec",
            n.ns,
            BIRD,
            "-d",
            "-c",
            str(n.bird_cfg),
            "-s",
            str(n.ctl),
            "-P",
            str(n.pidfile),
        ]
        with n.bird_log.open("ab") as logf:
            # `ip netns exec` execs BIRD: this pid is BIRD's own.
            n.bird = subprocess.Popen(
                args,
                cwd=n.dir,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.state.add_proc(f"bird-{n.name}", n.bird.pid, str(n.ctl))
        self.say(f"{n.name}: BIRD pid {n.bird.pid} in netns {n.ns}")

    def _wait_bird(self, n: Node, timeout: float = 15.0) -> None:
        def ready() -> bool:
            if n.bird is not None and n.bird.poll() is not None:
                raise LabError(f"{n.name}: BIRD exited with {n.bird.returncode}:\n{tail(n.bird_text())}")
            return bird_answers(n.ctl)

        self.wait(ready, timeout, f"{n.name}: BIRD answers on {n.ctl}")

    def add_node(self, index: int) -> Node:
        """A new node: its keys in one transaction, its confpy, namespace and BIRD."""
        n = self._node(index)
        self.etcd_txn(n.keys())
        self._start_confpy(n)
        self._wait_file(n)
        self._plug(n)
        self._start_bird(n)
        self._wait_bird(n)
        return n

    def remove_node(self, name: str, *, keys: bool = True) -> None:
        """Delete the node's keys (one transaction), stop its BIRD and confpy, drop its namespace."""
        n = self.nodes[name]
        if keys:
            self.etcd_txn(deletes=list(n.keys()))
        self._stop_node(n)
        del self.nodes[name]

    def _stop_node(self, n: Node) -> None:
        assert self.state is not None
        for label, proc in ((f"bird-{n.name}", n.bird), (f"confpy-{n.name}", n.confpy)):
            if proc is not None:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
                self.state.drop_proc(label)
        n.bird = n.confpy = None
        if n.ns in cleanup.netns_list():
            run([IP, "netns", "del", n.ns])
        self.state.drop_netns(n.ns)

    def close(self) -> list[str]:
        """Stop every process and delete every namespace of the lab. Idempotent."""
        problems: list[str] = []
        for n in list(self.nodes.values()):
            try:
                if self.state is not None:
                    self._stop_node(n)
            except Exception as exc:
                problems.append(f"{n.name}: {exc}")
        if self.etcd is not None:
            try:
                self.etcd.close()
            except Exception as exc:
                problems.append(f"etcd: {exc}")
            if self.state:
                self.state.drop_proc("etcd")
        if self.state is not None:
            problems += cleanup.teardown_file(self.state.path, self.token)  # the hub, anything missed
            self.state = None
        self.nodes.clear()
        leftovers = [ns for ns in cleanup.netns_list() if ns.startswith(self.prefix)]
        if leftovers:
            problems.append(f"namespaces left: {leftovers}")
        return problems

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ etcd
    def etcd_txn(self, puts: dict[str, str] | None = None, deletes: Iterable[str] = ()) -> int:
        """Puts and deletes in one etcd transaction (one revision); returns it."""
        assert self.etcd is not None
        return self.etcd.txn(puts or {}, list(deletes))

    def put(self, key: str, value: str) -> int:
        assert self.etcd is not None
        return self.etcd.put(key, value)

    def delete(self, key: str) -> int:
        assert self.etcd is not None
        return self.etcd.delete(key)

    def stop_etcd(self) -> None:
        assert self.etcd is not None and self.state is not None
        self.etcd.stop()
        self.state.drop_proc("etcd")

    def start_etcd(self) -> None:
        """Start etcd again: same port, same data dir."""
        assert self.etcd is not None
        self.etcd.start()
        self._record_etcd()

    # ------------------------------------------------------------------ BIRD and kernel state
    def birdc(self, node: str, *args: str) -> str:
        assert BIRDC is not None
        r = run([BIRDC, "-s", str(self.nodes[node].ctl), *args], check=False, timeout=10)
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
        """IPv4 routes in ``node``'s kernel (``proto bird`` by default): prefix -> route text."""
        args = [IP, "-4", "-n", self.nodes[node].ns, "route", "show"] + (
            ["proto", "bird"] if proto_bird else []
        )
        out = {}
        for line in run(args, timeout=5).stdout.splitlines():
            f = line.split()
            if not f:
                continue
            prefix = f[1] if f[0] in ("blackhole", "unreachable", "prohibit") else f[0]
            if prefix == "default":
                prefix = "0.0.0.0/0"
            if "/" not in prefix:
                prefix += "/32"
            out[prefix] = line.strip()
        return out

    def expected_routes(self, node: str, blocks: dict[str, list[str]] | None = None) -> dict[str, str]:
        """What ``node``'s kernel should have from BIRD: other nodes' blocks via their
        address, its own as blackholes. ``blocks``: node -> its CIDRs (default: one each)."""
        blocks = blocks or {n: [self.nodes[n].block] for n in self.nodes}
        want = {}
        for owner, cidrs in blocks.items():
            for cidr in cidrs:
                if owner == node:
                    want[cidr] = f"blackhole {cidr}"
                else:
                    want[cidr] = f"{cidr} via {self.nodes[owner].addr} dev eth0"
        return want

    def routes_match(self, node: str, want: dict[str, str], exact: bool = True) -> bool:
        have = self.kernel_routes(node)
        if exact and set(have) != set(want):
            return False
        return all(have.get(p, "").startswith(text) for p, text in want.items())

    def mesh_up(self) -> bool:
        """Every node has exactly one Established BGP session per other node (and nothing else)."""
        for name in self.nodes:
            want = {"Mesh_" + n.addr.replace(".", "_") for o, n in self.nodes.items() if o != name}
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

    # ------------------------------------------------------------------ waiting
    def wait(self, cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> float:
        """Poll ``cond`` until it is true, at most ``timeout`` s; seconds it took.
        On timeout: LabError with ``what`` and the lab's state."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            if cond():
                return time.monotonic() - start
            for n in self.nodes.values():
                for label, proc in (("BIRD", n.bird), ("confpy", n.confpy)):
                    if proc is not None and proc.poll() is not None:
                        raise LabError(
                            f"{n.name}: {label} died (rc {proc.returncode}) while waiting for: {what}\n{self.report()}"
                        )
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {timeout:g} s waiting for: {what}\n{self.report()}")
            time.sleep(interval)

    def wait_converged(self, timeout: float = 30.0, blocks: dict[str, list[str]] | None = None) -> float:
        return self.wait(
            lambda: self.converged(blocks), timeout, "full mesh Established and every block routed"
        )

    def wait_settled(self, timeout: float = 30.0) -> float:
        return self.wait(
            lambda: all(self.settled(n) for n in self.nodes), timeout, "every confpy has reloaded its BIRD"
        )

    def wait_quiet(self) -> None:
        """Let the quiet window and one apply pass (so a late reload would be seen)."""
        time.sleep(_seconds(self.wait_max) + 0.5)

    # ------------------------------------------------------------------ diagnostics
    def show(self, node: str) -> str:
        n = self.nodes[node]
        route = run([IP, "-4", "-n", n.ns, "route", "show"], check=False).stdout.rstrip()
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


def _seconds(duration: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(ms|s)?", duration)
    if not m:
        return 1.0
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
