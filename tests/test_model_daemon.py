"""The daemon, model-checked against a real etcd (issue 18, parts 1 and 2).

A hypothesis state machine drives a private etcd and one ``confpy -watch`` process
through random histories of writes and faults; after each step it waits for a
quiescent point and checks the files, the reloads, the leftovers and the daemon
against an oracle (tests/support/model_daemon.py says exactly what is asserted, and
how quiescence is defined: confpy's ``/status`` reports the revision of the last write
read and nothing pending, waited for with a bound).

- :class:`V3Machine`: etcd's v3 API, the generic resource set of
  tests/support/model_resources.py (three resources, two units, ``/a``, ``/a/x``,
  ``/a-b``, ``/av6``), with ``-wait-min 0`` and with the default quiet window.
  Rules: put, delete, delete-prefix, transactions, bursts, many keys, 1 MiB values,
  hostile keys and values (bytes that are not UTF-8, control characters), compaction
  and defragmentation, etcd restarted, killed, frozen (SIGSTOP) and changed behind
  confpy's back (restarted on another port, written, compacted, back), confpy killed
  (-9, also right after a write and with writes while it is dead) and sent SIGHUP.
- :class:`V2Machine`: the same resources through etcd's v2 API (``-backend etcdv2``):
  puts, deletes, directory deletes, confpy killed, SIGHUP.
- :class:`CalicoMachine`: ``-backend calico`` with the BIRD 1.6 templates: Calico 3
  resources put and deleted as Calico stores them, labels changed, nodes added and
  removed, a resource Calico would refuse, confpy killed.

Profiles (``CONFPY_MODEL_PROFILE``): ``ci`` (the default: 12 histories of 10 steps each,
derandomized, for the suite) and ``long`` (many more, random, by hand::

    CONFPY_MODEL_PROFILE=long .venv/bin/pytest tests/test_model_daemon.py -p no:randomly -s
    CONFPY_MODEL_PROFILE=long CONFPY_MODEL_EXAMPLES=5 ...   # 5 histories per machine

Each test prints how many histories, steps and quiescent points it explored.
The regression tests at the end replay histories the machines found or that are
worth keeping.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

from tests.support.etcd_server import EtcdServer
from tests.support.model_daemon import Files, Gateway, Keys, ModelMachine, Stats, dec
from tests.support.model_resources import UNITS, complete, expected_units, watcher_of, write_confdir

pytestmark = pytest.mark.etcd

# --- profiles -----------------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile(
    "confpy-model-ci", max_examples=12, stateful_step_count=10, derandomize=True, database=None, **_COMMON
)
settings.register_profile("confpy-model-long", max_examples=60, stateful_step_count=40, **_COMMON)
PROFILE = os.environ.get("CONFPY_MODEL_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"CONFPY_MODEL_PROFILE={PROFILE!r}: ci or long")
LONG = PROFILE == "long"
#: Histories per machine, to bound a long run by hand (0: the profile's).
EXAMPLES = int(os.environ.get("CONFPY_MODEL_EXAMPLES", "0"))
#: The test's whole time: pytest-timeout's 120 s is too short for a machine.
TIMEOUT = 6 * 3600 if LONG else 420
#: How long an etcd freeze (SIGSTOP) lasts at most: the long profile goes past
#: confpy's heartbeat (every 5 s, 2.5 s to answer), so that it notices and reconnects.
PAUSE_MAX = 12.0 if LONG else 1.5


def profile(**overrides: Any) -> settings:
    if EXAMPLES:
        overrides.setdefault("max_examples", EXAMPLES)
    return settings(settings.get_profile(f"confpy-model-{PROFILE}"), **overrides)


# --- strategies ------------------------------------------------------------------------

POOL = [
    "/a", "/a/k1", "/a/k2", "/a/x", "/a/x/y", "/a/x/z", "/a/x/y/q", "/a/", "/a//x", "/a/d/e/f",
    "/a/d/e/f/g", "/a-b", "/a-b/1", "/a-b/2", "/a-b/c/d", "/av6", "/av6/1", "/av6/2",
    "/ab", "/a-c/1", "/b",
]  # fmt: skip
#: Keys with a newline, an escape sequence, a NUL, a byte that is not UTF-8 (0xff).
HOSTILE_KEYS = ["/a/k\n2", "/a/\x1b[31mred", "/a-b/\x00nul", dec(b"/a/x/\xff")]
keys = st.sampled_from(POOL * 4 + HOSTILE_KEYS)
values = st.one_of(
    st.sampled_from(["", "v", "w", "same"]),
    st.sampled_from(["", "v", "w", "same"]),
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.text("\n\r\t\x00\x1b\x7f\u2028 ab", max_size=6),
    st.binary(min_size=1, max_size=4).map(dec),  # mostly not UTF-8
)
DELETE_PREFIXES = ["/a", "/a/", "/a/x", "/a/x/", "/a-", "/av", "/a/many/", "/a-b/", "/"]
BIG_KEYS = ["/a/k1", "/a-b/1", "/a/x"]
MIB = 1 << 20


def _mib(fill: str) -> str:
    return (fill * (MIB // len(fill) + 1))[:MIB]


# --- the generic resources, and the faults every machine shares ------------------------


class Faults(ModelMachine):
    """The faults, in terms of ``_put`` (a write of the machine's kind)."""

    def _put(self, key: str, value: str) -> None:
        raise NotImplementedError

    def _etcd_fault(self, fault: str, seconds: float, writes: list[tuple[str, str]]) -> None:
        """etcd's history compacted and its data defragmented; etcd stopped and started
        on its data dir and port (SIGTERM or SIGKILL); frozen for ``seconds`` right after
        ``writes``; or restarted on a port confpy does not know, written (and
        compacted), and back on its own port."""
        self.tally(f"etcd {fault}")
        s = self.server
        if fault == "compact":
            gw = Gateway(s)
            gw.compact()
            gw.defragment()
        elif fault in ("restart", "kill"):
            (s.stop if fault == "restart" else s.kill)()
            s.start()
        elif fault == "pause":
            for key, value in writes:
                self._put(key, value)
            s.pause()
            try:
                time.sleep(seconds)  # how long the fault lasts, not a wait for anything
            finally:
                s.resume()
        else:

            def away() -> None:
                for key, value in writes:
                    self._put(key, value)
                if fault == "away-compacted":
                    Gateway(s).compact()

            s.while_away(away)

    def _confpy_fault(
        self, fault: str, before: list[tuple[str, str]], delay: float, dead: list[tuple[str, str]]
    ) -> None:
        """``before`` written, then ``delay`` s later confpy killed with SIGKILL (wherever
        that lands in an apply) or stopped with SIGTERM (it must exit 0 within 10 s),
        ``dead`` written while it is down, and confpy started again; or ``before``
        written and SIGHUP at once."""
        self.tally(f"confpy {fault}")
        for key, value in before:
            self._put(key, value)
        if fault == "hup":
            self.hup()
            return
        time.sleep(delay)  # where the kill lands in the apply: the point of the fault
        if fault == "term":
            status = self.confpy.stop()
            assert status == 0, f"confpy exited {status} on SIGTERM:\n{self.confpy.log_tail()}"
        else:
            self.kill_confpy()
        for key, value in dead:
            self._put(key, value)
        self.confpy.start()


class Generic(Faults):
    """The generic resource set (tests/support/model_resources.py) and its oracle."""

    def prepare(self) -> None:
        self.confdir = self.workdir / "confdir"
        write_confdir(self.confdir, self.out, self.workdir)

    def units_files(self, out: Path) -> dict[str, tuple[Path, ...]]:
        return {u: tuple(out / f"{n}.conf" for n in names) for u, names in UNITS.items()}

    def confpy_args(self) -> list[str]:
        return ["-watch", f"-confdir={self.confdir}", f"-node={self.server.endpoint}", "-node-name=n1",
                "-config-file=/dev/null", *self.extra_args]  # fmt: skip

    def render_units(self, keys: Mapping[str, str]) -> dict[str, Files]:
        return expected_units(keys)

    def complete(self, name: str, data: bytes) -> str | None:
        return complete(name.removesuffix(".conf"), data)

    def reload_count(self, unit: str) -> int:
        try:
            return len((self.workdir / f"reloads-{unit}").read_text().splitlines())
        except FileNotFoundError:
            return 0


# --- the v3 machine ----------------------------------------------------------------------


class V3Machine(Generic):
    """etcd's v3 API (no ``-backend``: the seed's command line), the generic resources."""

    @property
    def gw(self) -> Gateway:
        return Gateway(self.server)

    def group_of(self, key: str) -> str | None:
        return watcher_of(key)

    def read_store(self) -> Keys:
        return self.gw.everything()

    def wipe_store(self) -> None:
        self.gw.wipe()

    def _put(self, key: str, value: str) -> None:
        self.revision({key: value}, self.gw.put(key, value))

    @rule(key=keys, value=values)
    def put(self, key: str, value: str) -> None:
        self.tally("put")
        self._put(key, value)

    @rule(key=keys)
    def delete(self, key: str) -> None:
        self.tally("delete")
        revision, deleted = self.gw.delete(key)
        assert deleted == (key in self.keys), f"etcd deleted {deleted} keys for {key!r}"
        if deleted:
            self.revision({key: None}, revision)

    @rule(prefix=st.sampled_from(DELETE_PREFIXES))
    def delete_prefix(self, prefix: str) -> None:
        """etcd's prefix is a byte prefix: ``/a`` takes ``/a-b``, ``/av6``, ``/ab`` too."""
        self.tally("delete_prefix")
        gone: dict[str, str | None] = {k: None for k in self.keys if k.startswith(prefix)}
        revision, deleted = self.gw.delete(prefix, prefix=True)
        assert deleted == len(gone), f"etcd deleted {deleted} keys under {prefix!r}, the model {len(gone)}"
        if deleted:
            self.revision(gone, revision)

    @rule(
        puts=st.dictionaries(keys, values, min_size=1, max_size=5),
        deletes=st.lists(keys, max_size=3, unique=True),
    )
    def transaction(self, puts: dict[str, str], deletes: list[str]) -> None:
        """One revision over several keys, often over two or three etcd watchers."""
        self.tally("transaction")
        deletes = [k for k in deletes if k not in puts]  # etcd refuses a key twice in one txn
        revision = self.gw.txn(puts, deletes)
        self.revision({**{k: None for k in deletes if k in self.keys}, **puts}, revision)

    @rule(puts=st.lists(st.tuples(keys, values), min_size=2, max_size=6))
    def burst(self, puts: list[tuple[str, str]]) -> None:
        """Puts back to back, one revision each: the quiet window's case."""
        self.tally("burst")
        for key, value in puts:
            self._put(key, value)

    @rule(n=st.integers(10, 250), value=st.sampled_from(["m", "n"]))
    def many_keys(self, n: int, value: str) -> None:
        """Up to 250 keys under /a/many, in transactions of at most 100 (etcd's limit is 128)."""
        self.tally("many_keys")
        names = [f"/a/many/k{i:03d}" for i in range(n)]
        for start in range(0, n, 100):
            puts = dict.fromkeys(names[start : start + 100], value)
            self.revision(puts, self.gw.txn(puts))

    @rule(
        key=st.sampled_from(BIG_KEYS),
        fill=st.sampled_from(["0123456789abcdef", "x" + dec(b"\xff"), "\x1b[0m\n"]),
    )
    def put_1mib(self, key: str, fill: str) -> None:
        """A 1 MiB value (etcd takes 1.5 MiB requests), printable, not UTF-8, or escapes and newlines."""
        self.tally("put_1mib")
        self._put(key, _mib(fill))

    @rule(
        fault=st.sampled_from(["compact", "restart", "kill", "pause", "away", "away-compacted"]),
        seconds=st.floats(0.05, PAUSE_MAX),
        writes=st.lists(st.tuples(keys, values), max_size=3),
    )
    def etcd_fault(self, fault: str, seconds: float, writes: list[tuple[str, str]]) -> None:
        self._etcd_fault(fault, seconds, writes)

    @rule(
        fault=st.sampled_from(["kill", "hup", "term"]),
        before=st.lists(st.tuples(keys, values), max_size=2),
        delay=st.floats(0, 0.05),
        dead=st.lists(st.tuples(keys, values), max_size=2),
    )
    def confpy_fault(
        self, fault: str, before: list[tuple[str, str]], delay: float, dead: list[tuple[str, str]]
    ) -> None:
        self._confpy_fault(fault, before, delay, dead)


# --- the v2 machine -------------------------------------------------------------------

V2_POOL = [
    "/a", "/a/k1", "/a/k2", "/a/x", "/a/x/y", "/a/x/z", "/a/x/y/q", "/a/d/e/f", "/a-b", "/a-b/1",
    "/a-b/2", "/a-b/c/d", "/av6", "/av6/1", "/av6/2", "/ab", "/a-c/1", "/b", "/a/k\x1b2", "/a-b/nl\nx",
]  # fmt: skip
V2_DIRS = ["/a", "/a/x", "/a/d", "/a-b", "/a-b/c", "/av6", "/a-c"]
v2_keys = st.sampled_from(V2_POOL)
#: The v2 API's values are JSON strings: valid UTF-8 only.
v2_values = st.one_of(
    st.sampled_from(["", "v", "w", "same"]),
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.text("\n\r\t\x00\x1b\x7f\u2028 ab", max_size=6),
)


def _v2_files(node: Mapping[str, Any], out: Keys) -> None:
    if node.get("dir"):
        for child in node.get("nodes") or ():
            _v2_files(child, out)
    elif "key" in node:
        out[node["key"]] = node.get("value", "")


class V2Machine(Generic):
    """etcd's v2 API (``-backend etcdv2``), the same resources: puts, deletes, directory
    deletes (a new snapshot for confpy), etcd restarted, killed and frozen, confpy
    killed and sent SIGHUP.

    In the v2 API a key cannot be a file and a directory: a put under a file or onto a
    directory is refused, and the model takes etcd's answer for it (what etcd holds is
    compared with the model at every quiescent point)."""

    def confpy_args(self) -> list[str]:
        return ["-backend=etcdv2", *super().confpy_args()]

    def group_of(self, key: str) -> str | None:
        return "v2" if watcher_of(key) else None  # one long poll, one event per index

    def read_store(self) -> Keys:
        answer = self.server.v2("GET", "/", recursive="true", quorum="true")
        out: Keys = {}
        _v2_files(answer["node"], out)
        return out

    def wipe_store(self) -> None:
        for node in self.server.v2("GET", "/").get("node", {}).get("nodes") or ():
            self.server.v2("DELETE", node["key"], recursive="true")

    def _put(self, key: str, value: str) -> None:
        answer = self.server.v2("PUT", key, value=value)
        if "node" in answer:
            self.revision({key: value}, int(answer["node"]["modifiedIndex"]))
        else:  # under a file, or onto a directory
            assert answer.get("errorCode") in (102, 104), answer

    @rule(key=v2_keys, value=v2_values)
    def put(self, key: str, value: str) -> None:
        self.tally("put")
        self._put(key, value)

    @rule(key=v2_keys)
    def delete(self, key: str) -> None:
        self.tally("delete")
        answer = self.server.v2("DELETE", key)
        if "node" in answer:
            self.revision({key: None}, int(answer["node"]["modifiedIndex"]))
        else:  # no such key (104: a file on its path), or a directory
            assert answer.get("errorCode") in (100, 102, 104), answer
            assert key not in self.keys, answer

    @rule(directory=st.sampled_from(V2_DIRS))
    def delete_dir(self, directory: str) -> None:
        """A directory and all below it: one event that confpy answers with a snapshot."""
        self.tally("delete_dir")
        answer = self.server.v2("DELETE", directory, recursive="true")
        if "node" in answer:
            gone: dict[str, str | None] = {
                k: None for k in self.keys if k == directory or k.startswith(directory + "/")
            }
            self.revision(gone, int(answer["node"]["modifiedIndex"]))
        else:  # no such directory (104: a file on its path, such as /a for /a/x)
            assert answer.get("errorCode") in (100, 104), answer
            assert not any(k == directory or k.startswith(directory + "/") for k in self.keys), answer

    @rule(
        fault=st.sampled_from(["restart", "kill", "pause"]),
        seconds=st.floats(0.05, PAUSE_MAX),
        writes=st.lists(st.tuples(v2_keys, v2_values), max_size=3),
    )
    def etcd_fault(self, fault: str, seconds: float, writes: list[tuple[str, str]]) -> None:
        self._etcd_fault(fault, seconds, writes)

    @rule(
        fault=st.sampled_from(["kill", "hup", "term"]),
        before=st.lists(st.tuples(v2_keys, v2_values), max_size=2),
        delay=st.floats(0, 0.05),
        dead=st.lists(st.tuples(v2_keys, v2_values), max_size=2),
    )
    def confpy_fault(
        self, fault: str, before: list[tuple[str, str]], delay: float, dead: list[tuple[str, str]]
    ) -> None:
        self._confpy_fault(fault, before, delay, dead)


# --- the calico machine -----------------------------------------------------------------

NODES = ["node1", "node2", "node3", "node4"]
PEERS = ["global", "rack-a", "edge", "node1-only"]
POOLS = {"v4": ["192.168.0.0/16", "10.244.0.0/16"], "v6": ["fd00:aa::/48", "fd00:bb::/48"]}
BLOCKS = ["192.168.1.0/26", "192.168.1.64/26", "10.244.3.0/26", "fd00:aa:0:1::/122"]
LABELS = [
    {},
    {"rack": "a"},
    {"rack": "b"},
    {"rack": "a", "role": "edge"},
    {"role": "edge"},
    {"colour": "blue"},
]


def _node(
    name: str, address: int, asn: int | None, labels: dict[str, str], v6: bool, rr: bool
) -> dict[str, Any]:
    bgp: dict[str, Any] = {"ipv4Address": f"10.50.0.{address}/24"}
    if v6:
        bgp["ipv6Address"] = f"fd00:50::{address:x}/64"
    if asn is not None:
        bgp["asNumber"] = asn
    if rr:
        bgp["routeReflectorClusterID"] = "224.0.0.1"
    return {"apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": name, "labels": labels}, "spec": {"bgp": bgp}}  # fmt: skip


def _peer(name: str, variant: int) -> dict[str, Any]:
    specs = {
        "global": [{"peerIP": "10.50.1.1", "asNumber": 65100}, {"peerIP": "10.50.1.9", "asNumber": 65109}],
        "rack-a": [{"nodeSelector": "rack == 'a'", "peerIP": "10.50.1.2", "asNumber": 65101},
                   {"nodeSelector": "rack in {'a', 'b'}", "peerIP": "10.50.1.2", "asNumber": 65101}],
        "edge": [{"nodeSelector": "!has(role)", "peerSelector": "role == 'edge'"},
                 {"nodeSelector": "all()", "peerSelector": "has(role)"}],
        "node1-only": [{"node": "node1", "peerIP": "10.50.1.3", "asNumber": 65103},
                       {"node": "node1", "peerIP": "fd00:50::1:3", "asNumber": 65103}],
    }  # fmt: skip
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": name},
            "spec": specs[name][variant]}  # fmt: skip


def _doc_key_value(doc: dict[str, Any]) -> tuple[str, str]:
    from tests.support.calico_resources import key_of, value_of

    return key_of(doc), value_of(doc)


class CalicoMachine(Faults):
    """``-backend calico``, the BIRD 1.6 templates for node1: Calico 3 resources written
    as Calico's etcdv3 backend stores them (tests/support/calico_resources.py).

    The oracle computes the v1 keys with confpy's own V1View, built afresh from every
    good resource at each revision, and renders them with confpy's renderer on the
    project's templates (tests/support/birdset.py). That is the oracle for "what the v1
    view computes", not an independent one: the scenario tests pin the view against
    hand-written expectations (tests/data/calico-v3/*/expected-v1.yaml); what this
    machine checks is the daemon, the store's incremental view against a fresh one,
    and the files confpy writes through every history. A resource Calico would refuse
    keeps its last good version (none: absent); confpy is not restarted while one is in
    etcd (its first snapshot would fail until the resource is fixed, by design)."""

    birdset: ClassVar[Any]

    def prepare(self) -> None:
        from tests.support.bird_confdir import CONFIG, bird_confdir

        self.confdir = bird_confdir(self.workdir / "confdir", checks=False)
        self.root = self.workdir / "root"
        self.config = self.root / CONFIG
        self.config.mkdir(parents=True)
        self.bad: set[str] = set()  # keys holding a value Calico would refuse
        self.good: Keys = {}  # the last good value of each key

    @property
    def dest_dir(self) -> Path:
        return self.config

    def units_files(self, out: Path) -> dict[str, tuple[Path, ...]]:
        from tests.support.birdset import DAEMON_FILES

        return {u: tuple(self.config / n for n in DAEMON_FILES[u]) for u in ("bird", "bird6")}

    def confpy_args(self) -> list[str]:
        return ["-backend=calico", "-watch", f"-confdir={self.confdir}", f"-node={self.server.endpoint}",
                "-node-name=node1", f"-dest-root={self.root}", "-config-file=/dev/null", *self.extra_args]  # fmt: skip

    def group_of(self, key: str) -> str | None:
        from confpy.calico.v3.view import source_prefixes

        for p in source_prefixes("node1"):
            if key.startswith(p + "/"):
                return p
        return None

    def render_units(self, keys: Mapping[str, str]) -> dict[str, Files]:
        from confpy.calico.v3.view import V1View
        from confpy.errors import RenderError

        good = {
            k: (self.good[k] if k in self.bad else v)
            for k, v in keys.items()
            if k not in self.bad or k in self.good
        }
        view = V1View("node1")
        _, errors = view.apply(sorted(good.items()))
        assert not errors, f"the model holds a bad resource as good: {errors}"
        texts: dict[str, bytes | None] = {}
        for name, (resource, kv) in self.birdset.views(view.values).items():
            try:
                texts[name] = self.birdset.renderer.render(resource.src, kv, "node1").encode()
            except RenderError:
                texts[name] = None
        out: dict[str, Files] = {}
        for unit, track in self.units.items():
            files = [texts[p.name] for p in track.paths]
            out[unit] = None if any(f is None for f in files) else tuple(f for f in files if f is not None)
        return out

    def read_store(self) -> Keys:
        return Gateway(self.server).everything()

    def wipe_store(self) -> None:
        Gateway(self.server).wipe()

    def reload_count(self, unit: str) -> int:
        try:
            return (self.confdir / "reloads").read_text().split().count(unit)
        except FileNotFoundError:
            return 0

    def seed(self) -> Keys:
        docs = [
            {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration", "metadata": {"name": "default"},
             "spec": {"nodeToNodeMeshEnabled": True, "asNumber": 64512}},
            _node("node1", 11, None, {"rack": "a"}, True, False),
            _node("node2", 12, None, {"rack": "b"}, False, False),
            {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "v4"},
             "spec": {"cidr": "192.168.0.0/16", "ipipMode": "Always"}},
            {"kind": "BlockAffinity", "spec": {"node": "node1", "cidr": "192.168.1.0/26", "state": "confirmed"}},
        ]  # fmt: skip
        seed = dict(_doc_key_value(d) for d in docs)
        self.good.update(seed)
        return seed

    def write_seed(self, keys: Keys) -> int:
        return Gateway(self.server).txn(keys)

    # --- writes ---------------------------------------------------------------------
    def _write(self, doc: dict[str, Any]) -> None:
        key, value = _doc_key_value(doc)
        self._put(key, value)

    def _put(self, key: str, value: str) -> None:
        self.bad.discard(key)
        self.good[key] = value
        self.revision({key: value}, Gateway(self.server).put(key, value))

    def _delete(self, key: str) -> None:
        revision, deleted = Gateway(self.server).delete(key)
        assert deleted == (key in self.keys)
        self.bad.discard(key)
        self.good.pop(key, None)
        if deleted:
            self.revision({key: None}, revision)

    @rule(
        name=st.sampled_from(NODES),
        address=st.sampled_from([11, 12, 13, 14, 21]),
        asn=st.sampled_from([None, None, 65001, 65002]),
        labels=st.sampled_from(LABELS),
        v6=st.booleans(),
        rr=st.booleans(),
    )
    def put_node(
        self, name: str, address: int, asn: int | None, labels: dict[str, str], v6: bool, rr: bool
    ) -> None:
        """A node added or changed: address (two nodes may share one), AS, labels, IPv6, reflector."""
        self.tally("put_node")
        self._write(_node(name, address, asn, labels, v6, rr))

    @rule(name=st.sampled_from(NODES), labels=st.sampled_from(LABELS))
    def relabel(self, name: str, labels: dict[str, str]) -> None:
        """An existing node's labels only (what moves it in and out of selectors)."""
        self.tally("relabel")
        from tests.support.calico_resources import key_of

        key = key_of({"kind": "Node", "metadata": {"name": name}})
        if key not in self.keys or key in self.bad:
            return
        doc = json.loads(self.keys[key])
        doc["metadata"]["labels"] = labels
        self._put(key, json.dumps(doc, separators=(",", ":")))

    @rule(name=st.sampled_from(NODES))
    def delete_node(self, name: str) -> None:
        """A node removed (node1 itself too: its files then keep their last good version)."""
        self.tally("delete_node")
        self._delete(f"/calico/resources/v3/projectcalico.org/nodes/{name}")

    @rule(name=st.sampled_from(PEERS), variant=st.sampled_from([0, 1]), delete=st.booleans())
    def peer(self, name: str, variant: int, delete: bool) -> None:
        """A BGPPeer put (global, by node selector, by peer selector, for node1) or deleted."""
        self.tally("peer")
        if delete:
            self._delete(f"/calico/resources/v3/projectcalico.org/bgppeers/{name}")
        else:
            self._write(_peer(name, variant))

    @rule(mesh=st.booleans(), asn=st.sampled_from([None, 64512, 65500]), delete=st.booleans())
    def bgp_configuration(self, mesh: bool, asn: int | None, delete: bool) -> None:
        self.tally("bgp_configuration")
        if delete:
            self._delete("/calico/resources/v3/projectcalico.org/bgpconfigurations/default")
            return
        spec: dict[str, Any] = {"nodeToNodeMeshEnabled": mesh}
        if asn is not None:
            spec["asNumber"] = asn
        self._write({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                     "metadata": {"name": "default"}, "spec": spec})  # fmt: skip

    @rule(family=st.sampled_from(["v4", "v6"]), cidr=st.sampled_from([0, 1]),
          ipip=st.sampled_from(["Never", "Always", "CrossSubnet"]), delete=st.booleans())  # fmt: skip
    def pool(self, family: str, cidr: int, ipip: str, delete: bool) -> None:
        self.tally("pool")
        if delete:
            self._delete(f"/calico/resources/v3/projectcalico.org/ippools/{family}")
            return
        spec: dict[str, Any] = {"cidr": POOLS[family][cidr]}
        if family == "v4":
            spec["ipipMode"] = ipip
        self._write(
            {
                "apiVersion": "projectcalico.org/v3",
                "kind": "IPPool",
                "metadata": {"name": family},
                "spec": spec,
            }
        )

    @rule(cidr=st.sampled_from(BLOCKS), node=st.sampled_from(["node1", "node1", "node2"]),
          state=st.sampled_from(["confirmed", "pending"]), delete=st.booleans())  # fmt: skip
    def block(self, cidr: str, node: str, state: str, delete: bool) -> None:
        """A block affinity: node1's are read, node2's never reach node1's view."""
        self.tally("block")
        key, value = _doc_key_value(
            {"kind": "BlockAffinity", "spec": {"node": node, "cidr": cidr, "state": state}}
        )
        if delete:
            self._delete(key)
        else:
            self._put(key, value)

    @rule(name=st.sampled_from(NODES), kind=st.sampled_from(["node", "peer"]))
    def bad_resource(self, name: str, kind: str) -> None:
        """A resource Calico would refuse: kept at its last good version (none: absent)."""
        self.tally("bad_resource")
        if kind == "node":
            doc = _node(name, 11, None, {}, False, False)
            doc["spec"]["bgp"]["asNumber"] = "sixty-five thousand"
        else:
            doc = _peer("edge", 0)
            doc["spec"]["peerSelector"] = "role = edge"
        key, value = _doc_key_value(doc)
        self.bad.add(key)
        self.revision({key: value}, Gateway(self.server).put(key, value))

    @rule(fault=st.sampled_from(["kill", "hup", "term"]), delay=st.floats(0, 0.05))
    def confpy_fault(self, fault: str, delay: float) -> None:
        """confpy killed or stopped and started again, or sent SIGHUP; not restarted while
        a bad resource is in etcd (its first snapshot then fails until it is fixed)."""
        if fault != "hup" and self.bad:
            fault = "hup"
        self._confpy_fault(fault, [], delay, [])


# --- running the machines -------------------------------------------------------------


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    lines: list[str] = []
    yield lines
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    for line in lines:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line)


def _bind(machine: type[ModelMachine], server: EtcdServer, root: Path, **attrs: Any) -> type[ModelMachine]:
    bound = type(machine.__name__, (machine,), {"server": server, "workroot": root, "stats": Stats(),
                                                "_counter": itertools.count(), **attrs})  # fmt: skip
    return bound


def _run(machine: type[ModelMachine], name: str, report: list[str], **overrides: Any) -> None:
    try:
        run_state_machine_as_test(machine, settings=profile(**overrides))
    finally:
        machine.stats.steps = machine.stats.points - machine.stats.histories
        report.append(machine.stats.line(name))


WINDOWS = {"wait-min-0": ("-wait-min=0",), "default-window": ()}


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_v3_daemon_model(etcd_factory: Any, tmp_path: Path, report: list[str], window: str) -> None:
    server = etcd_factory()
    machine = _bind(V3Machine, server, tmp_path, extra_args=WINDOWS[window])
    _run(machine, f"v3 {window}", report)


@pytest.mark.timeout(TIMEOUT)
def test_calico_daemon_model(
    etcd_factory: Any, tmp_path: Path, report: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIRD_FLAVOR", "calico")  # the daemon inherits it: no detection on either side
    monkeypatch.delenv("CALICO_ROUTER_ID", raising=False)
    from tests.support.birdset import ROOT, BirdSet

    server = etcd_factory()
    machine = _bind(
        CalicoMachine, server, tmp_path, extra_args=("-wait-min=0",), birdset=BirdSet(ROOT, "node1")
    )
    _run(machine, "calico wait-min-0", report)


@pytest.mark.timeout(TIMEOUT)
def test_v2_daemon_model(etcd_factory: Any, tmp_path: Path, report: list[str]) -> None:
    server = etcd_factory(enable_v2=True)
    machine = _bind(V2Machine, server, tmp_path, extra_args=("-wait-min=0",))
    _run(machine, "v2 wait-min-0", report)


# --- regressions: histories found by the machines, or worth keeping ---------------------


def run_history(machine: type[ModelMachine], *steps: Callable[[Any], object]) -> None:
    """One history, step by step, with the quiescent point and the invariants after each
    (what hypothesis prints for a failing history, replayed as a plain test)."""
    m = machine()
    try:
        m.quiescent_point()
        for step in steps:
            step(m)
            m.quiescent_point()
    finally:
        m.teardown()


@pytest.fixture
def v3(etcd_factory: Any, tmp_path: Path) -> type[ModelMachine]:
    return _bind(V3Machine, etcd_factory(), tmp_path, extra_args=("-wait-min=0",))


def _plant_stale_stage(m: Any) -> None:
    """What a SIGKILL while staging leaves: a stage directory of a process that is gone."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stage = m.out / f".confpy-stage-{dead.stdout.strip()}-killed"
    stage.mkdir()
    (stage / "main.conf").write_bytes(b"x" * MIB)


def test_history_a_stage_left_by_a_kill_goes_though_every_unit_is_in_sync(v3: type[ModelMachine]) -> None:
    """Found by the v3 machine (-wait-min 0): confpy killed with SIGKILL while staging a
    1 MiB file, restarted with its units in sync or unable to render (a value that is
    not UTF-8): the dead process's stage stayed until that unit's next change. Shrunk
    by hand to its deterministic core: the stage planted while confpy is dead."""
    run_history(
        v3,
        lambda m: m.put("/a/k1", "v"),
        lambda m: m.put("/a-b/1", dec(b"\xff")),  # sib cannot render from here on
        lambda m: (m.kill_confpy(), _plant_stale_stage(m), m.confpy.start()),
    )


def test_history_a_transaction_over_three_watchers_a_kill_and_a_compaction_while_away(
    v3: type[ModelMachine],
) -> None:
    """One revision over /a, /a-b and /av6 (three etcd watchers, put back together), a
    hostile key, confpy killed right after a write and written to while dead, then etcd
    changed behind confpy's back and compacted (a new snapshot): every file recovers."""
    run_history(
        v3,
        lambda m: m.transaction({"/a/x/y": "1", "/a-b/1": "2", "/av6/1": "3", "/a/k\n2": "\x1b[2J"}, []),
        lambda m: m.put(dec(b"/a/x/\xff"), "bad key"),
        lambda m: m.confpy_fault("kill", [("/a/x/z", "after")], 0.005, [("/av6/2", "dead")]),
        lambda m: m.etcd_fault("away-compacted", 0.1, [("/a-b/2", "away"), ("/a", "top")]),
        lambda m: m.delete(dec(b"/a/x/\xff")),
        lambda m: m.delete_prefix("/a-"),
    )
