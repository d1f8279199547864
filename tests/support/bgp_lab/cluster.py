"""A Calico-style cluster in network namespaces: etcd -> confpy -> BIRD, for real.

Layout (lab prefix ``P`` = ``cpl<pid>``, unique per run)::

    root namespace   etcd on 127.0.0.1:<free port> (keys as in the spec's layout)
                     one ``confpy -watch`` per node (its own confdir copy and output dir)
    netns P-hub      bridge br0, one veth port per node
    netns P-nodeN    eth0 = 10.99.0.N/24 [fd00:99::N/64] (veth to the hub), lo; BIRD
                     (``bird -d``) reading the files that node's confpy writes

The nodes run BIRD 1.6 (``conf.d/``, IPv4) or BIRD 2 (``bird2/``, IPv4 and IPv6): see
``plan.py`` for both and for the address plan. Every node has one block per family, so
once the mesh is up each kernel has the other nodes' blocks ``proto bird`` via their
node address and its own blocks as blackholes.

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

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.bgp_lab import cleanup
from tests.support.bgp_lab.node import Node, tail
from tests.support.bgp_lab.observe import IP, IP_PATH, LabError, LabState, run
from tests.support.bgp_lab.plan import (
    BIRD16_LAB,
    LAB_NET,
    LabBird,
    cluster_keys,
)
from tests.support.bird_daemon import SBIN_PATH, bird_answers
from tests.support.etcd_server import ETCD, ETCDCTL, EtcdServer

ROOT = Path(__file__).resolve().parents[3]


def missing_requirements(bird: LabBird = BIRD16_LAB) -> str | None:
    """Why a lab of ``bird`` cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    missing = [n for n, p in (("ip", IP_PATH), ("etcd", ETCD), ("etcdctl", ETCDCTL)) if not p]
    if missing:
        return f"missing binaries: {', '.join(missing)} (Debian: apt-get install iproute2 etcd-server etcd-client)"
    return bird.missing()


@dataclass
class Lab(LabState):
    """A lab of ``size`` nodes; :meth:`up` builds it, :meth:`close` removes it all."""

    workdir: Path
    size: int = 3
    bird: LabBird = BIRD16_LAB
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

    @property
    def _bird_binary(self) -> str:
        binary = self.bird.binary("bird")
        if binary is None:
            raise LabError(f"{self.bird}: {self.bird.missing()}")
        return binary

    # ------------------------------------------------------------------ build / remove
    def up(self) -> None:
        """etcd with the keys, a confpy watcher per node (until bird.cfg exists),
        the namespaces, then BIRD per node; returns when every daemon answers."""
        why = missing_requirements(self.bird)
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
            keys = cluster_keys(self.bird.families)
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
        node = Node(name, index, self.workdir / name, self.prefix + name, self.bird.families)
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
        for family in n.families:
            cidr = f"{n.address(family)}/{LAB_NET[family].split('/')[1]}"
            nodad = ["nodad"] if family == 6 else []  # BIRD can bind the address at once
            run([IP, "-n", n.ns, "addr", "add", cidr, "dev", "eth0", *nodad])
        run([IP, "-n", n.ns, "link", "set", "eth0", "up"])

    def _write_confdir(self, n: Node) -> None:
        """Copy the set's conf.d/ and templates/; dests into n.out, reload through n's BIRD socket only."""
        if n.confdir.exists():
            shutil.rmtree(n.confdir)
        shutil.copytree(self.bird.tset.confdir / "templates", n.confdir / "templates")
        (n.confdir / "conf.d").mkdir(parents=True)
        n.out.mkdir(parents=True, exist_ok=True)
        for toml in sorted((self.bird.tset.confdir / "conf.d").glob("*.toml")):
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
            # The check command runs `bird`: this lab's BIRD (BIRD 2 is not on the PATH).
            PATH=f"{os.path.dirname(sys.executable)}:{os.path.dirname(self._bird_binary)}:{SBIN_PATH}",
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
            *(a for r in self.bird.resources for a in ("--resource", r)),
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
        assert self.state is not None
        for p in (n.ctl, n.pidfile):
            p.unlink(missing_ok=True)
        check = run([self._bird_binary, "-p", "-c", str(n.bird_cfg)], check=False)
        if check.returncode != 0:
            raise LabError(f"{n.name}: bird -p rejects {n.bird_cfg}: {check.stderr}{check.stdout}")
        args = [
            IP,
            "netns",
            "exec",
            n.ns,
            self._bird_binary,
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


def _seconds(duration: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(ms|s)?", duration)
    if not m:
        return 1.0
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
