"""Units (issue 5) with the project's BIRD template set and real BIRD daemons.

Every test copies the real ``conf.d/`` and ``templates/`` into a temporary confdir,
renders node1 of the example cluster from a data file of flat Calico keys (file store,
``BIRD_FLAVOR=stock``: Debian's BIRD has no ``krt_tunnel``) under ``-dest-root``, and
checks with the project's own ``bird -p -c {{.src}}``.

The daemons are Debian's ``bird``/``bird6`` started by the test (tests/support/bird_daemon.py)
on the destination files: their config is ``log "FILE" all;`` then
``include "<dest>/bird.cfg";`` (BIRD resolves the includes of bird.cfg against its
directory). They run in a network namespace of their own (``unshare --net``): the
rendered bird.cfg has a kernel protocol that would program the host's routing table
and BGP sessions that would dial the example's peers; in a fresh namespace there is
only a down loopback. Reloads go to them through ``reload_birdc`` (their control
socket) or, as the project ships it, SIGHUP to the process named ``bird``/``bird6``;
that test runs confpy and both daemons in a PID namespace of their own as well, so
"every process named bird" is the test's bird and nothing else on the machine.
A reconfiguration is counted from BIRD's own log (``<INFO> Reconfiguring``).
Needs root (namespaces); skipped with the reason otherwise.
"""

from __future__ import annotations

import functools
import grp
import json
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil
import pytest
import yaml

from confpy.calico import flavor
from confpy.cli import main
from confpy.reload import birdc_configure
from tests.support import bird_daemon
from tests.support.bird_daemon import BirdDaemon, bird_binary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "calico" / "example-cluster.yaml"
NODE = "node1"
CONFIG = Path("etc/calico/confd/config")  # under -dest-root
BIRD_FILES = ("bird.cfg", "bird_aggr.cfg", "bird_ipam.cfg")
BIRD6_FILES = ("bird6.cfg", "bird6_aggr.cfg", "bird6_ipam.cfg")
ALL_FILES = BIRD_FILES + BIRD6_FILES
RELOAD_FIELDS = (
    "reload_cmd",
    "reload_signal",
    "reload_process",
    "reload_pidfile",
    "reload_birdc",
    "reload_ok",
)

RECONFIGURING = "<INFO> Reconfiguring"  # BIRD logs it once per accepted configure / SIGHUP
HUP_LOGGED = "Reconfiguration requested by SIGHUP"
RELOADED = "unit bird: reloaded"  # confpy's log line per reload it ran

# One change each, all for node1.
NEW_POOL = {
    "/calico/v1/ipam/v4/pool/10.244.0.0-16": json.dumps(
        {
            "cidr": "10.244.0.0/16",
            "ipip": "",
            "ipip_mode": "",
            "vxlan_mode": "",
            "masquerade": True,
            "ipam": True,
            "disabled": False,
        }
    )
}  # bird_ipam.cfg
NEW_BLOCK = {"/calico/ipam/v2/host/node1/ipv4/block/10.244.7.0-26": '{"state":"confirmed"}'}  # bird_aggr.cfg
NEW_PEER = {"/calico/bgp/v1/global/peer_v4/10.0.0.9": '{"ip":"10.0.0.9","as_num":"64520"}'}  # bird.cfg
NEW_V6_BLOCK = {
    "/calico/ipam/v2/host/node1/ipv6/block/fd00:10::7:0-122": '{"state":"confirmed"}'
}  # bird6_aggr.cfg
ALL_THREE = {**NEW_POOL, **NEW_BLOCK, **NEW_PEER}

# A template upgrade with a typo: bird.cfg loses a semicolon, bird -p rejects it.
GOOD_ROUTER_ID = "router id {{ c.router_id }};"
TYPO_ROUTER_ID = "router id {{ c.router_id }}"


NETNS = ("--net",)
# A PID namespace too (pid 1 is our driver; /proc shows only its processes), for the
# test that signals "every process named bird": then that is only the test's bird.
PIDNS = ("--pid", "--fork", "--kill-child", "--mount-proc", "--net")


@functools.cache
def _unshare_problem(flags: tuple[str, ...]) -> str | None:
    """Why ``unshare FLAGS`` cannot run here, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare (util-linux) is not installed"
    try:
        proc = subprocess.run(
            [unshare, *flags, "true"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare {' '.join(flags)} does not work: {exc}"
    if proc.returncode != 0:
        return f"unshare {' '.join(flags)} does not work here (needs root): {proc.stderr.strip()}"
    return None


def unshare(flags: tuple[str, ...]) -> list[str]:
    """``unshare FLAGS`` as a command prefix; skips the test if it cannot run."""
    problem = _unshare_problem(flags)
    if problem:
        pytest.skip(problem)
    path = shutil.which("unshare")
    assert path is not None
    return [path, *flags]


pytestmark = [
    pytest.mark.bird,
    pytest.mark.root,
    pytest.mark.skipif(
        not all(bird_binary(b) for b in ("bird", "bird6", "birdc")),
        reason="bird, bird6 or birdc not installed",
    ),
]


def birdc(daemon: BirdDaemon, command: str) -> str:
    """``birdc -s SOCKET COMMAND``'s output without the greeting line."""
    binary = bird_binary("birdc")
    assert binary is not None
    proc = subprocess.run(
        [binary, "-s", str(daemon.socket), *command.split()],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return proc.stdout.split("\n", 1)[1]


def reconfigurations(daemon: BirdDaemon) -> int:
    """Reconfigurations asked for on BIRD's control socket (``reload_birdc``).

    BIRD logs ``Reconfiguring`` for those and for SIGHUPs; a SIGHUP comes after its own
    ``Reconfiguration requested by SIGHUP`` line and is not counted: another suite run
    on this machine with ``reload_process = "bird"`` would signal our daemons too."""
    text = daemon.log_text()
    return text.count(RECONFIGURING) - text.count(HUP_LOGGED)


def protocol_states(daemon: BirdDaemon) -> list[list[str]]:
    """``show protocols``: name, protocol, table and state of each. Not the "since"
    column, which BIRD 1.6 computes from two clocks (it moves by a second with no
    change of state), nor the info column, where a session with no peer to reach goes
    from Active to Connect and back as it retries."""
    rows = [line.split() for line in birdc(daemon, "show protocols").splitlines()[1:] if line.strip()]
    return [row[:4] for row in rows]


def routes_of(daemon: BirdDaemon) -> str:
    """``show route`` without each route's time, which moves like "since" (above)."""
    return re.sub(r"(\[\S+) [\d:.-]+( [\d:.-]+)?\]", r"\1]", birdc(daemon, "show route"))


def settled_reconfigurations(daemon: BirdDaemon) -> int:
    """:func:`reconfigurations` behind a barrier rather than after a sleep: our own
    ``configure`` on BIRD's control socket, which BIRD answers only after handling every
    request made before it (and logging each). The barriers are not counted."""
    result = birdc_configure(str(daemon.socket), 10)
    assert result.ok, result.summary()
    _barriers[daemon.socket] = _barriers.get(daemon.socket, 0) + 1
    return reconfigurations(daemon) - _barriers[daemon.socket]


_barriers: dict[Path, int] = {}


Snapshot = dict[str, tuple[bytes, int, int]]


class BirdNode:
    """A copy of the project's confdir, a dest root, a data file and BIRD daemons."""

    def __init__(self, tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
        self.tmp = tmp
        self.caplog = caplog
        self.confdir = tmp / "confdir"
        self.root = tmp / "root"
        self.config = self.root / CONFIG
        self.config.mkdir(parents=True)
        self.data_file = tmp / "data.yaml"
        self.keys: dict[str, str] = yaml.safe_load(EXAMPLE.read_text())
        self.daemons: list[BirdDaemon] = []
        self.restore_confdir()
        self.write_data()

    # --- confdir and data

    def restore_confdir(self) -> None:
        """The project's conf.d and templates, unchanged."""
        shutil.rmtree(self.confdir, ignore_errors=True)
        shutil.copytree(ROOT / "conf.d", self.confdir / "conf.d")
        shutil.copytree(ROOT / "templates", self.confdir / "templates")

    def set_fields(
        self, unit: str, drop: tuple[str, ...] = (), only: str | None = None, **fields: str
    ) -> None:
        """In every resource of ``unit`` (or only the resource named ``only``): remove
        the fields in ``drop`` and in ``fields``, then set ``fields``."""
        for path in sorted((self.confdir / "conf.d").glob("*.toml")):
            table = tomllib.loads(path.read_text())["template"]
            if table.get("unit") != unit or (only is not None and path.stem != only):
                continue
            gone = set(drop) | set(fields)
            lines = [
                line for line in path.read_text().splitlines() if line.split("=", 1)[0].strip() not in gone
            ]
            lines += [f"{name} = {json.dumps(value)}" for name, value in fields.items()]
            path.write_text("\n".join(lines) + "\n")

    def reload_by(self, unit: str, **fields: str) -> None:
        """Replace the unit's reload with ``fields`` (none: no reload)."""
        self.set_fields(unit, drop=RELOAD_FIELDS, **fields)

    def without_reloads(self) -> None:
        """For a first apply before any daemon runs."""
        self.reload_by("bird")
        self.reload_by("bird6")

    def edit_template(self, name: str, old: str, new: str) -> None:
        path = self.confdir / "templates" / name
        text = path.read_text()
        assert old in text, f"{name} no longer holds {old!r}"
        path.write_text(text.replace(old, new))

    def write_data(self) -> None:
        self.data_file.write_text(yaml.safe_dump(self.keys, default_flow_style=False, width=1 << 20))

    def change(self, keys: Mapping[str, str]) -> None:
        self.keys.update(keys)
        self.write_data()

    # --- running confpy

    def args(self, *flags: str) -> list[str]:
        return [
            f"-confdir={self.confdir}",
            "-file",
            str(self.data_file),
            f"-dest-root={self.root}",
            f"-node-name={NODE}",
            *flags,
        ]

    def run(self, *flags: str) -> int:
        """confpy -onetime in this process; its log of this run is in :attr:`log`."""
        self.caplog.clear()
        return main(["-onetime", *self.args(*flags)])

    @property
    def log(self) -> str:
        return self.caplog.text

    def first_apply(self) -> None:
        """The files on disk, before any daemon runs (so with no reload)."""
        self.without_reloads()
        assert self.run() == 0, self.log
        assert sorted(p.name for p in self.config.iterdir()) == sorted(ALL_FILES)

    # --- files

    def dest(self, name: str) -> Path:
        return self.config / name

    def snapshot(self) -> Snapshot:
        """Each file's bytes, inode and mtime: equal only if nothing touched it."""
        out = {}
        for name in ALL_FILES:
            st = self.dest(name).stat()
            out[name] = (self.dest(name).read_bytes(), st.st_ino, st.st_mtime_ns)
        return out

    def leftovers(self) -> list[str]:
        """Stage directories and pending markers in the destination directory."""
        return sorted(p.name for p in self.config.iterdir() if p.name.startswith(".confpy"))

    # --- BIRD

    def start(self, kind: str, extra: str = "", user: str | None = None) -> BirdDaemon:
        """``kind`` on the destination ``<kind>.cfg`` (then ``extra``), in a network
        namespace of its own, as ``user`` if given."""
        prefix = " ".join(unshare(NETNS))
        real = bird_binary(kind)
        assert real is not None
        wrapper = self.tmp / "netns-bin" / kind
        wrapper.parent.mkdir(exist_ok=True)
        wrapper.write_text(f'#!/bin/sh\nexec {prefix} {real} "$@"\n')
        wrapper.chmod(0o755)
        body = f'include "{self.dest(kind + ".cfg")}";\n{extra}'
        with pytest.MonkeyPatch.context() as mp:
            # BirdDaemon.start runs bird_binary(kind): the wrapper execs the real one (same pid).
            mp.setattr(bird_daemon, "bird_binary", lambda name="bird": str(wrapper))
            daemon = BirdDaemon.start(kind, self.tmp / f"{kind}-daemon", body, user=user)
        self.daemons.append(daemon)
        return daemon

    def stop(self) -> None:
        for daemon in self.daemons:
            daemon.stop()


@pytest.fixture
def bird_env(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIRD_FLAVOR", "stock")
    monkeypatch.delenv("CALICO_ROUTER_ID", raising=False)
    bird = bird_binary("bird")
    assert bird is not None
    # The project's check is "bird -p -c {{.src}}": BIRD's sbin directory on PATH.
    monkeypatch.setenv("PATH", f"{os.path.dirname(bird)}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    caplog.set_level(logging.INFO)


@pytest.fixture
def node(tmp_path: Path, caplog: pytest.LogCaptureFixture, bird_env: None) -> Iterator[BirdNode]:
    node = BirdNode(tmp_path, caplog)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def open_node(caplog: pytest.LogCaptureFixture, bird_env: None) -> Iterator[BirdNode]:
    """A node in a directory other users may pass through (pytest's tmp_path is 0700),
    for a BIRD that runs as user ``bird``."""
    try:
        pwd.getpwnam("bird")
    except KeyError:
        pytest.skip("no user 'bird' (Debian's bird package creates it)")
    base = Path(tempfile.mkdtemp(prefix="confpy-open-node-"))
    base.chmod(0o711)
    node = BirdNode(base, caplog)
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)


def changed_files(before: Snapshot, after: Snapshot) -> set[str]:
    return {name for name in before if before[name][0] != after[name][0]}


# --------------------------------------------------------------------------- check failure


def test_a_unit_whose_new_main_file_bird_rejects_changes_no_file_and_leaves_bird_alone(
    node: BirdNode,
) -> None:
    node.first_apply()
    bird = node.start("bird")
    node.reload_by("bird", reload_birdc=str(bird.socket))
    before = node.snapshot()
    protocols, routes = protocol_states(bird), routes_of(bird)
    state_changes = bird.log_text().count("State changed")

    # A template upgrade with a typo in bird.cfg lands with a change that touches all
    # three files of the unit: the includes are fine, the main file is not.
    node.edit_template("bird.cfg.j2", GOOD_ROUTER_ID, TYPO_ROUTER_ID)
    node.change(ALL_THREE)
    assert node.run() == 1
    assert "unit bird: check failed: bird -p -c " in node.log
    assert "syntax error" in node.log, node.log
    assert node.snapshot() == before, "no file of the unit changed, not even the valid includes"
    assert node.leftovers() == [], "no stage directory, no pending marker"

    assert settled_reconfigurations(bird) == 0, bird.log_text()
    assert protocol_states(bird) == protocols
    assert bird.log_text().count("State changed") == state_changes, "no protocol restarted"
    assert routes_of(bird) == routes
    assert bird.alive()

    # The typo fixed, the same change goes through whole: three files, one reload.
    node.edit_template("bird.cfg.j2", TYPO_ROUTER_ID, GOOD_ROUTER_ID)
    assert node.run() == 0, node.log
    assert changed_files(before, node.snapshot()) == set(BIRD_FILES)
    assert bird.wait_log(RECONFIGURING)
    assert node.log.count(RELOADED) == 1
    assert "Global_10_0_0_9" in birdc(bird, "show protocols")


# --------------------------------------------------------------------------- first start


def test_a_first_start_with_no_destinations_succeeds_in_one_pass_and_bird_starts_on_the_files(
    node: BirdNode,
) -> None:
    checked = node.tmp / "checked"
    node.without_reloads()  # nothing runs yet: BIRD starts on the files afterwards
    for unit in ("bird", "bird6"):
        # The project's check, then a note of the staged path it ran on.
        node.set_fields(
            unit, only=unit, check_cmd=f"{unit} -p -c {{{{.src}}}} && echo {{{{.src}}}} >> {checked}"
        )
    assert list(node.config.iterdir()) == []

    assert node.run() == 0, node.log
    assert sorted(p.name for p in node.config.iterdir()) == sorted(ALL_FILES)
    ran_on = [Path(line) for line in checked.read_text().splitlines()]
    assert sorted(p.name for p in ran_on) == ["bird.cfg", "bird6.cfg"]
    for path in ran_on:
        # bird -p found the includes in the stage, beside the main file: none was on disk yet.
        assert path.parent.parent == node.config and path.parent.name.startswith(".confpy-stage-"), path
        assert not path.parent.exists(), "the stage is removed"
    assert node.leftovers() == []

    bird, bird6 = node.start("bird"), node.start("bird6")
    protocols = birdc(bird, "show protocols")
    for name in ("static1", "kernel1", "Mesh_172_29_141_96", "Global_172_29_141_1", "Node_172_29_141_254"):
        assert name in protocols, protocols
    assert re.search(r"^192\.168\.33\.0/26 +blackhole \[static1 ", birdc(bird, "show route"), re.M)
    assert re.search(r"^fd00:10::1:0/122 +blackhole \[static1 ", birdc(bird6, "show route"), re.M)

    assert node.run() == 0
    assert len(checked.read_text().splitlines()) == 2, "in sync: nothing checked again"


# --------------------------------------------------------------------------- one reload


@pytest.mark.parametrize(
    ("change", "touched"),
    [
        ({**NEW_POOL, **NEW_BLOCK}, {"bird_ipam.cfg", "bird_aggr.cfg"}),
        ({**NEW_POOL, **NEW_PEER}, {"bird_ipam.cfg", "bird.cfg"}),
    ],
    ids=["ipam+aggr", "main+ipam"],
)
def test_one_change_touching_two_files_of_the_unit_reloads_bird_once(
    node: BirdNode, change: dict[str, str], touched: set[str]
) -> None:
    node.first_apply()
    bird = node.start("bird")
    node.reload_by("bird", reload_birdc=str(bird.socket))
    before = node.snapshot()

    node.change(change)
    assert node.run() == 0, node.log
    assert changed_files(before, node.snapshot()) == touched
    assert node.log.count(RELOADED) == 1, node.log
    assert bird.wait_log(RECONFIGURING)
    assert settled_reconfigurations(bird) == 1, bird.log_text()

    # BIRD runs the new files.
    if NEW_BLOCK.keys() & change.keys():
        assert re.search(r"^10\.244\.7\.0/26 +blackhole \[static1 ", birdc(bird, "show route"), re.M)
    if NEW_PEER.keys() & change.keys():
        assert re.search(r"^Global_10_0_0_9 +BGP ", birdc(bird, "show protocols"), re.M)

    assert node.run() == 0
    assert RELOADED not in node.log
    assert settled_reconfigurations(bird) == 1, "in sync: no reload"


# --------------------------------------------------------------------------- bird is not bird6


# Runs as pid 1 of a PID (and network) namespace of its own: starts bird and bird6
# on the destination files, runs confpy -onetime once per data file, and prints what
# happened as JSON. When it ends, the kernel kills whatever is left in the namespace.
SIGNAL_DRIVER = """
import io, json, logging, subprocess, sys
from pathlib import Path
import psutil
from confpy.cli import main
from confpy.reload import birdc_configure
from tests.support.bird_daemon import BirdDaemon, bird_binary

a = json.loads(sys.argv[1])
captured = io.StringIO()
logging.getLogger().addHandler(logging.StreamHandler(captured))
logging.getLogger().setLevel(logging.INFO)

def show_route(daemon):
    cmd = [bird_binary("birdc"), "-s", str(daemon.socket), "show", "route"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout

def hups(daemon):
    return daemon.log_text().count("Reconfiguration requested by SIGHUP")

steps = []
with BirdDaemon.start("bird", Path(a["tmp"]) / "bird-daemon", a["bird"]) as bird, \\
        BirdDaemon.start("bird6", Path(a["tmp"]) / "bird6-daemon", a["bird6"]) as bird6:
    daemons = {"bird": bird, "bird6": bird6}
    named = {n: sorted(p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == n) for n in daemons}
    pids = {n: d.pid for n, d in daemons.items()}
    for barriers, (data, expect) in enumerate(a["steps"], 1):
        captured.seek(0)
        captured.truncate()
        target = daemons[expect]
        wanted = hups(target) + 1
        rc = main(["-onetime", *a["flags"], "-file", data])
        target.wait_log("Reconfiguration requested by SIGHUP", count=wanted, timeout=5)
        # A barrier, not a sleep: BIRD handles a SIGHUP that came before our own
        # configure on its socket before it answers; that configure is not counted.
        for d in daemons.values():
            assert birdc_configure(str(d.socket), 10).ok
        steps.append({
            "rc": rc,
            "log": captured.getvalue(),
            "hups": {n: hups(d) for n, d in daemons.items()},
            "reconfiguring": {
                n: d.log_text().count("<INFO> Reconfiguring") - barriers for n, d in daemons.items()
            },
            "routes": {n: show_route(d) for n, d in daemons.items()},
        })
print(json.dumps({"named": named, "pids": pids, "steps": steps}))
"""


def test_reload_process_bird_never_signals_bird6(node: BirdNode) -> None:
    """The project's own reloads (SIGHUP to the process named exactly ``bird`` /
    ``bird6``), a real bird and a real bird6. In a PID namespace of the test's own:
    "every process named bird" cannot reach a BIRD of this machine or of another test."""
    node.first_apply()
    node.restore_confdir()
    v4, v6 = node.tmp / "v4.yaml", node.tmp / "v6.yaml"
    node.change({**NEW_POOL, **NEW_BLOCK})  # IPv4 only
    shutil.copy(node.data_file, v4)
    node.change(NEW_V6_BLOCK)  # and then IPv6 only
    shutil.copy(node.data_file, v6)
    args = {
        "tmp": str(node.tmp),
        "bird": f'include "{node.dest("bird.cfg")}";\n',
        "bird6": f'include "{node.dest("bird6.cfg")}";\n',
        "flags": [a for a in node.args() if a not in ("-file", str(node.data_file))],
        "steps": [[str(v4), "bird"], [str(v6), "bird6"]],
    }
    proc = subprocess.run(
        [*unshare(PIDNS), sys.executable, "-c", SIGNAL_DRIVER, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["named"] == {"bird": [out["pids"]["bird"]], "bird6": [out["pids"]["bird6"]]}
    v4_step, v6_step = out["steps"]

    assert v4_step["rc"] == 0, v4_step["log"]
    assert "unit bird: reloaded: SIGHUP to process 'bird': ok" in v4_step["log"], v4_step["log"]
    assert "unconfirmed: a signal gets no answer" in v4_step["log"], "a signal-only reload says so"
    assert "unit bird6: reloaded" not in v4_step["log"]
    assert v4_step["hups"] == {"bird": 1, "bird6": 0}
    assert v4_step["reconfiguring"]["bird6"] == 0, "bird6 did not reconfigure at all"
    assert re.search(r"^10\.244\.7\.0/26 +blackhole", v4_step["routes"]["bird"], re.M)

    assert v6_step["rc"] == 0, v6_step["log"]
    assert "unit bird6: reloaded: SIGHUP to process 'bird6': ok" in v6_step["log"], v6_step["log"]
    assert "unit bird: reloaded" not in v6_step["log"]
    assert v6_step["hups"] == {"bird": 1, "bird6": 1}, "bird got no second HUP"
    assert re.search(r"^fd00:10::7:0/122 +blackhole", v6_step["routes"]["bird6"], re.M)


# --------------------------------------------------------------------------- no BIRD running


def test_no_bird_running_means_nothing_to_reload_unless_the_resource_requires_one(node: BirdNode) -> None:
    """The project's conf.d, run where no BIRD runs (an IPv4-only node, BIRD not started
    yet): the files are applied, each unit warns once, -onetime exits 0, nothing is
    owed. In a PID namespace of its own, so no BIRD of this machine can answer."""
    node.restore_confdir()
    argv = [
        *unshare(PIDNS),
        sys.executable,
        "-m",
        "confpy",
        "-onetime",
        "-config-file=/dev/null",
        *node.args(),
    ]

    def onetime() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
        )

    proc = onetime()
    assert proc.returncode == 0, proc.stderr
    for unit in ("bird", "bird6"):
        assert proc.stderr.count(f"unit {unit}: nothing to reload") == 1, proc.stderr
    assert "no process named 'bird6' is running" in proc.stderr
    assert " ERROR " not in proc.stderr, proc.stderr
    assert sorted(p.name for p in node.config.iterdir()) == sorted(ALL_FILES), "applied, nothing owed"

    node.set_fields("bird6", reload_required=True)
    node.change(NEW_V6_BLOCK)
    proc = onetime()
    assert proc.returncode == 1, proc.stderr
    assert "unit bird6: reload failed" in proc.stderr and "no process named 'bird6' is running" in proc.stderr


# --------------------------------------------------------------------------- BIRD flavour


def test_the_bird_flavour_is_detected_and_a_forced_wrong_one_says_what_to_set(
    node: BirdNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example's IPIP pool on Debian's BIRD with no BIRD_FLAVOR (the seed's command
    line): detected as stock, checked and written. Forced to calico, the check fails and
    the error quotes the refused line, which says what to set."""
    flavor.detect.cache_clear()
    monkeypatch.delenv("BIRD_FLAVOR")
    node.without_reloads()
    assert node.run() == 0, node.log
    assert "BIRD flavour: stock (" in node.log and "has no krt_tunnel attribute" in node.log
    assert "string krt_tunnel;" in node.dest("bird_ipam.cfg").read_text()

    monkeypatch.setenv("BIRD_FLAVOR", "calico")
    assert node.run() == 1
    assert "You may set only variables." in node.log
    assert 'krt_tunnel = "tunl0";  # Calico\'s BIRD only: elsewhere BIRD_FLAVOR=stock' in node.log, node.log


# --------------------------------------------------------------------------- a secret BIRD can read

SECRET = "s3cret-Pa55"
PASSWORD_PEER = {
    "/calico/bgp/v1/global/peer_v4/10.0.0.9": json.dumps(
        {"ip": "10.0.0.9", "as_num": "64520", "password": SECRET}
    )
}


def test_a_bgp_password_file_is_readable_by_birds_user_and_the_reload_is_confirmed(
    open_node: BirdNode,
) -> None:
    """Debian's BIRD runs as user bird: the file with the password is root's, in bird's
    group, 0640, and BIRD's own reply confirms it read it."""
    node = open_node
    node.first_apply()
    bird = node.start("bird", user="bird")
    node.reload_by("bird", reload_birdc=str(bird.socket))
    node.change(PASSWORD_PEER)
    assert node.run() == 0, node.log
    st = node.dest("bird.cfg").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, grp.getgrnam("bird").gr_gid)
    assert "unit bird: reloaded: birdc configure via" in node.log and "(BIRD: 0003 Reconfigured)" in node.log
    assert re.search(r"^Global_10_0_0_9 +BGP ", birdc(bird, "show protocols"), re.M)
    assert SECRET not in node.log

    # A mode that shuts BIRD out: the reload BIRD did not take is a failure, never "ok".
    node.set_fields("bird", only="bird", mode="0600")
    assert node.run() == 1
    assert "unit bird: reload failed" in node.log and "Permission denied" in node.log, node.log
    assert RELOADED not in node.log
    assert re.search(r"^Global_10_0_0_9 +BGP ", birdc(bird, "show protocols"), re.M), "BIRD keeps its config"


# --------------------------------------------------------------------------- BIRD says no


def test_a_reload_bird_refuses_is_exit_1_and_the_next_run_retries_it(node: BirdNode) -> None:
    node.first_apply()
    site = node.tmp / "site.conf"  # a hand-kept file BIRD's config also includes
    site.write_text("# site additions\n")
    bird = node.start("bird", extra=f'include "{site}";\n')
    node.reload_by("bird", reload_birdc=str(bird.socket))
    # The site file takes a name the next change needs. bird -p on the unit's staged
    # files cannot see it (the check passes); BIRD's configure does, and refuses.
    site.write_text("protocol static Global_10_0_0_9 {}\n")
    node.change(NEW_PEER)

    assert node.run() == 1
    assert "unit bird: reload failed: birdc configure via" in node.log, node.log
    assert f"BIRD refused the configuration: 8002 {site}:1:" in node.log
    assert "Symbol already defined" in node.log
    assert RELOADED not in node.log
    assert "Global_10_0_0_9" in node.dest("bird.cfg").read_text(), "checked, so written"
    assert node.leftovers() == [".confpy-pending-bird"], "the reload is owed"
    assert reconfigurations(bird) == 0
    assert "Global_10_0_0_9" not in birdc(bird, "show protocols"), "BIRD keeps its running config"

    # Nothing changed: still owed, still refused.
    assert node.run() == 1
    assert "BIRD refused the configuration: 8002" in node.log
    assert node.leftovers() == [".confpy-pending-bird"]

    site.write_text("# conflict removed\n")
    before = node.snapshot()
    assert node.run() == 0, node.log
    assert "unit bird: files in place, reload still owed from an earlier apply" in node.log
    assert node.log.count(RELOADED) == 1
    assert node.snapshot() == before, "no file rewritten, only the reload run"
    assert node.leftovers() == []
    assert bird.wait_log(RECONFIGURING)
    assert re.search(r"^Global_10_0_0_9 +BGP ", birdc(bird, "show protocols"), re.M)

    assert node.run() == 0
    assert RELOADED not in node.log
    assert settled_reconfigurations(bird) == 1


# --------------------------------------------------------------------------- hanging check


def test_a_hanging_check_of_the_bird_unit_is_killed_at_its_timeout(node: BirdNode) -> None:
    node.first_apply()
    bird = node.start("bird")
    node.reload_by("bird", reload_birdc=str(bird.socket))
    node.set_fields(
        "bird", only="bird", check_cmd="bird -p -c {{.src}} && sleep 29.75", check_timeout="500ms"
    )
    before = node.snapshot()
    node.change(ALL_THREE)

    start = time.monotonic()
    assert node.run() == 1
    elapsed = time.monotonic() - start
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert "timed out after 0.5 s (process group killed)" in node.log, node.log
    assert node.snapshot() == before
    assert node.leftovers() == []
    sleepers = [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "29.75"]]
    assert sleepers == [], "the check's process group is gone"
    assert settled_reconfigurations(bird) == 0


# --------------------------------------------------------------------------- kill -9


# confpy as `python -c`: apply's replace (bound by name in confpy.apply, so patched
# there, not in confpy.writer) renames one file for real and then the process is
# SIGKILLed after the N-th rename: no finally, no cleanup, no reload.
KILLER = """
import os, signal, sys
import confpy.apply
from confpy.cli import main

after = int(sys.argv[1])
real = confpy.apply.replace
done = 0

def replace_then_die(staged, target):
    global done
    real(staged, target)
    done += 1
    if done == after:
        os.kill(os.getpid(), signal.SIGKILL)

confpy.apply.replace = replace_then_die
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    "renames", [1, 2, 3], ids=["after-1st-rename", "after-2nd-rename", "after-last-rename"]
)
def test_kill_9_between_renames_is_repaired_by_the_next_run(node: BirdNode, renames: int) -> None:
    node.first_apply()
    bird = node.start("bird")
    node.reload_by("bird", reload_birdc=str(bird.socket))
    before = node.snapshot()
    node.change(ALL_THREE)

    killed = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(renames), "-onetime", *node.args()],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output = killed.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait(5)
    assert killed.returncode == -signal.SIGKILL, output

    # What the kill left: includes first, the checked main file last.
    mid = node.snapshot()
    half = changed_files(before, mid)
    assert len(half) == renames
    assert ("bird.cfg" in half) == (renames == 3), half
    marker = node.dest(".confpy-pending-bird")
    assert sorted(Path(p).name for p in marker.read_text().splitlines()) == sorted(BIRD_FILES)
    stages = [p for p in node.config.iterdir() if p.name.startswith(f".confpy-stage-{killed.pid}-")]
    assert len(stages) == 1 and stages[0].is_dir()
    assert settled_reconfigurations(bird) == 0

    assert node.run() == 0, node.log
    after = node.snapshot()
    assert changed_files(before, after) == set(BIRD_FILES)
    for name in half:
        assert after[name] == mid[name], f"{name} was not rewritten"
        assert f"wrote {node.dest(name)} " not in node.log, f"{name} was already final"
    for name in set(BIRD_FILES) - half:
        assert f"wrote {node.dest(name)} (unit bird)" in node.log
    if renames == 3:
        assert "unit bird: files in place, reload still owed from an earlier apply" in node.log
    assert node.log.count(RELOADED) == 1, node.log
    assert node.leftovers() == [], "marker and the killed process's stage removed"
    assert bird.wait_log(RECONFIGURING)
    assert settled_reconfigurations(bird) == 1
    assert re.search(r"^Global_10_0_0_9 +BGP ", birdc(bird, "show protocols"), re.M)
    assert re.search(r"^10\.244\.7\.0/26 +blackhole", birdc(bird, "show route"), re.M)

    # Final: a further run finds the unit in sync and owes nothing.
    assert node.run() == 0
    assert node.snapshot() == after
    assert RELOADED not in node.log
    assert settled_reconfigurations(bird) == 1


# --------------------------------------------------------------------------- -noop


def test_noop_shows_every_file_of_the_unit_the_check_on_the_staged_set_and_the_one_reload(
    node: BirdNode, capsys: pytest.CaptureFixture[str]
) -> None:
    node.first_apply()
    bird = node.start("bird")
    node.reload_by("bird", reload_birdc=str(bird.socket))
    before = node.snapshot()
    node.change(ALL_THREE)
    capsys.readouterr()

    assert main(["-noop", *node.args()]) == 0, node.log
    report = capsys.readouterr().out
    assert "=== unit bird: 3 of 3 file(s) would change" in report, report
    assert "unit bird6" not in report, "bird6 is in sync"
    for name in BIRD_FILES:
        assert f"--- {node.dest(name)}\n+++ {node.dest(name)}\n" in report
    assert "\n+protocol bgp Global_10_0_0_9 from bgp_template {\n" in report
    assert "\n+  route 10.244.7.0/26 blackhole;\n" in report
    assert "\n+  if ( net ~ 10.244.0.0/16 ) then {\n" in report
    checks = re.findall(r"^check bird -p -c '?(/\S+?)'?: ok in \d+ ms$", report, re.M)
    assert len(checks) == 1, report
    staged = Path(checks[0])
    assert staged.name == "bird.cfg" and staged.parent.name.startswith(".confpy-stage-")
    assert not staged.parent.exists(), "the noop stage is removed"
    assert re.findall(r"^.*reload.*$", report, re.M) == [
        f"would reload once: birdc configure via {bird.socket}"
    ]
    assert node.snapshot() == before
    assert node.leftovers() == []
    assert settled_reconfigurations(bird) == 0

    # The same with bird.cfg broken: the check's verdict (BIRD's words) and no reload.
    node.edit_template("bird.cfg.j2", GOOD_ROUTER_ID, TYPO_ROUTER_ID)
    assert main(["-noop", *node.args()]) == 1
    report = capsys.readouterr().out
    assert "=== unit bird: 3 of 3 file(s) would change" in report
    assert re.search(r"^check bird -p -c \S+: exit status 1$", report, re.M), report
    assert "syntax error" in report
    assert report.rstrip().endswith("no reload: a check failed")
    assert node.snapshot() == before
    assert settled_reconfigurations(bird) == 0
