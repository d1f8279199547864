"""The machinery of the model-checked daemon (tests/test_model_daemon.py).

A hypothesis ``RuleBasedStateMachine`` drives a real etcd and one real ``confpy
-watch`` process; :class:`ModelMachine` holds what every such machine needs:

- the **model**: the store's content as the test wrote it, revision by revision
  (:meth:`ModelMachine.revision`), checked against what etcd holds at each quiescent
  point;
- the **oracle**: for every revision, what each unit's files must read
  (:meth:`ModelMachine.render_units`, a reference renderer of the subclass), with
  confpy's rule that a unit whose render fails keeps its last good files;
- **quiescence** (:meth:`ModelMachine.quiesce`): confpy's ``/status`` says it has read
  the revision of the last write under its keys (``store_revision``), that no unit has
  changes collected or an apply running (``pending`` is empty), and that it is
  ``ready``; waited for with a bound, never slept;
- the **invariants** asserted at that moment (:meth:`ModelMachine.check`, below), and a
  **reader thread** (:class:`Reader`) that reads every destination all along.

What may happen between two quiescent points is not one state but a set: with a quiet
window confpy may apply any subset of the revisions in between, and a transaction over
several etcd watchers may be applied in parts (etcd_watch.py: a late part follows as a
batch of its own). Each revision therefore adds every state confpy might render:
the whole revision, and when it spans several watchers, its parts applied in each
order. The invariants are stated over those sets:

1. every destination reads the oracle's render of the final state; a unit whose final
   render fails still holds one of the renders it could have written (its last good);
2. no ``.confpy-stage-*`` or ``.confpy-pending-*`` is left (a pending marker only
   where a unit was killed mid-apply and cannot be rendered now);
3. reloads per unit: at most one per change its files could have gone through (the
   effective content, revision by revision), plus one per confpy kill (a reload owed
   by a pending marker may be replayed); at least one per quiescent point where its
   files changed (no change goes unreloaded);
4. the daemon is alive and logged no ``unexpected error`` / crashed apply;
5. every read by the reader thread was a complete file (the subclass says how to
   tell) and one of the files the oracle allows for the step; a destination, once
   written, never disappears.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hypothesis.stateful import RuleBasedStateMachine, invariant

from tests.support.confpy_process import ConfpyProcess
from tests.support.etcd_server import EtcdServer, free_ports

#: A unit's files in resource order; None: not written yet.
Files = tuple[bytes, ...] | None
Keys = dict[str, str]
Changes = Mapping[str, "str | None"]

STAGE, PENDING = ".confpy-stage-", ".confpy-pending-"
#: Log lines that mean a bug of confpy's own.
BAD_LINES = ("unexpected error", "apply crashed", "Traceback")


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def enc(text: str) -> bytes:
    """A model string back to etcd's bytes (the store decodes with surrogateescape)."""
    return text.encode("utf-8", "surrogateescape")


def dec(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _b64(text: str) -> str:
    return base64.b64encode(enc(text)).decode("ascii")


def prefix_end(prefix: str) -> str:
    """etcd's range end for every key starting with the (ASCII) string ``prefix``."""
    assert prefix and prefix.isascii() and prefix[-1] != "\x7f"
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Gateway:
    """etcd's v3 API as JSON on its client port (``POST /v3/...``) with urllib: a writer
    and reader independent of confpy, and much cheaper than an etcdctl per write."""

    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, path: str, body: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.server.endpoint}/v3/{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=timeout) as resp:
                return dict(json.load(resp))
        except urllib.error.HTTPError as e:
            raise AssertionError(f"etcd refused {path}: {e.code} {e.read()[:300]!r}") from None

    @staticmethod
    def _revision(answer: dict[str, Any]) -> int:
        return int(answer["header"]["revision"])

    def put(self, key: str, value: str) -> int:
        return self._revision(self.call("kv/put", {"key": _b64(key), "value": _b64(value)}))

    def delete(self, key: str, *, prefix: bool = False) -> tuple[int, int]:
        """(revision, keys deleted)."""
        body = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(prefix_end(key))
        answer = self.call("kv/deleterange", body)
        return self._revision(answer), int(answer.get("deleted", 0))

    def txn(self, puts: Mapping[str, str], deletes: Sequence[str] = ()) -> int:
        ops: list[dict[str, Any]] = [
            {"requestPut": {"key": _b64(k), "value": _b64(v)}} for k, v in puts.items()
        ]
        ops += [{"requestDeleteRange": {"key": _b64(k)}} for k in deletes]
        answer = self.call("kv/txn", {"success": ops})
        assert answer.get("succeeded", False), answer
        return self._revision(answer)

    def wipe(self) -> None:
        """Delete every key."""
        self.call("kv/deleterange", {"key": "AA==", "range_end": "AA=="})

    def everything(self) -> Keys:
        answer = self.call("kv/range", {"key": "AA==", "range_end": "AA=="}, timeout=30)
        return {
            dec(base64.b64decode(kv["key"])): dec(base64.b64decode(kv.get("value", "")))
            for kv in answer.get("kvs", [])
        }

    def revision(self) -> int:
        return self._revision(self.call("kv/range", {"key": _b64("/"), "count_only": True}))

    def compact(self) -> int:
        """Compact history up to the current revision (nothing to do if it already is)."""
        revision = self.revision()
        try:
            self.call("kv/compaction", {"revision": revision, "physical": True}, timeout=30)
        except AssertionError as e:
            if "required revision has been compacted" not in str(e):
                raise
        return revision

    def defragment(self) -> None:
        self.call("maintenance/defragment", {}, timeout=60)


class Reader:
    """Reads every destination every few milliseconds, from start to teardown.

    Each read must be complete (``complete(name, data)`` says why not); the digest of
    each distinct content read is kept until :meth:`take`. A destination that was
    there once and is gone later is an error: files are replaced by rename."""

    def __init__(self, paths: Mapping[str, Path], complete: Callable[[str, bytes], str | None]) -> None:
        self.paths = dict(paths)
        self.complete = complete
        self.errors: list[str] = []
        self.reads = 0
        self._seen: dict[str, set[bytes]] = {name: set() for name in self.paths}
        self._existed: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-reader", daemon=True)
        self._thread.start()

    def _error(self, text: str) -> None:
        with self._lock:
            if len(self.errors) < 20:
                self.errors.append(text)

    def _run(self) -> None:
        last: dict[str, bytes] = {}
        while not self._stop.wait(0.005):
            for name, path in self.paths.items():
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    if name in self._existed:
                        self._error(f"{name} disappeared after it had been written")
                    continue
                except OSError as e:
                    self._error(f"cannot read {name}: {e}")
                    continue
                self.reads += 1
                self._existed.add(name)
                if data == last.get(name):
                    continue
                last[name] = data
                why = self.complete(name, data)
                if why is not None:
                    self._error(f"a read of {name} is not a complete render: {why}: {data[:300]!r}")
                with self._lock:
                    self._seen[name].add(digest(data))

    def take(self) -> dict[str, set[bytes]]:
        """The digests of what was read since the last take."""
        with self._lock:
            seen, self._seen = self._seen, {name: set() for name in self.paths}
        return seen

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Confpy:
    """The ``confpy -watch`` under test: started, killed (-9), restarted, signalled; its
    ``/status`` read over its ``--metrics-addr``."""

    def __init__(self, args: Sequence[str], workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.args = list(args)
        self.workdir = workdir
        self.env = {"PYTHONFAULTHANDLER": "1", **(env or {})}
        self.proc: ConfpyProcess | None = None
        self.started = 0
        self.port = 0
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> None:
        assert self.proc is None
        self.port = free_ports(1)[0]
        self.started += 1
        self.proc = ConfpyProcess(
            [*self.args, f"--metrics-addr=127.0.0.1:{self.port}"],
            self.workdir / f"confpy-{self.started}.log",
            self.env,
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.proc.pid

    def status(self) -> dict[str, Any] | None:
        try:
            with self._opener.open(f"http://127.0.0.1:{self.port}/status", timeout=5) as resp:
                return dict(json.load(resp))
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL: nothing flushed, nothing cleaned up (a crash, a power cut for confpy)."""
        assert self.proc is not None
        self.proc.proc.kill()
        self.proc.proc.wait(10)
        self.proc.close()
        self.proc = None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.proc.send_signal(sig)

    def logs(self) -> str:
        return "".join(
            (self.workdir / f"confpy-{i}.log").read_text(errors="replace") for i in range(1, self.started + 1)
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM; the exit status (None if it was not running). One that does not stop
        in time gets SIGABRT first: Python's faulthandler writes every thread's stack
        into its log, which the error quotes."""
        if self.proc is None:
            return None
        proc = self.proc.proc
        try:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
                raise AssertionError(
                    f"confpy did not stop within {timeout:g} s of SIGTERM:\n{self.log_tail(80)}"
                ) from None
        finally:
            self.proc.close()
            self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.close()
            self.proc = None


@dataclass
class Unit:
    """What the oracle knows of one unit's files."""

    name: str
    paths: tuple[Path, ...]
    #: The render of the latest state (None: that render fails).
    final: Files = None
    #: The effective contents (last good render) the unit may be at, revision by revision.
    effective: set[Files] = field(default_factory=lambda: {None})
    #: Every content confpy may have written since the last quiescent point, and what
    #: was on disk then.
    candidates: set[Files] = field(default_factory=lambda: {None})
    previous: set[Files] = field(default_factory=set)
    on_disk: Files = None
    upper: int = 0  # reloads the history allows so far
    lower: int = 0  # reloads owed so far: quiescent points where the files changed


@dataclass
class Stats:
    histories: int = 0
    steps: int = 0
    points: int = 0
    revisions: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    longest_wait: float = 0.0
    reads: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self, name: str) -> str:
        rules = ", ".join(f"{k} {v}" for k, v in sorted(self.rules.items())) or "none"
        return (
            f"model {name}: {self.histories} histories, {self.steps} steps, {self.points} quiescent points, "
            f"{self.revisions} revisions written, {self.reads} reads by the reader thread; "
            f"steps by rule: {rules}; longest wait for quiescence {self.longest_wait:.1f} s; "
            f"{time.monotonic() - self.started:.0f} s"
        )


class ModelMachine(RuleBasedStateMachine):
    """The base of the three machines (v3, v2, calico); subclasses set the class
    attributes and the hooks below."""

    #: Set by the test before running the machine.
    server: ClassVar[EtcdServer]
    workroot: ClassVar[Path]
    extra_args: ClassVar[tuple[str, ...]] = ()
    stats: ClassVar[Stats]
    #: How long a quiescent point may take to come (bounded wait).
    quiet_timeout: ClassVar[float] = 60.0
    _counter: ClassVar[itertools.count[int]]

    # --- hooks --------------------------------------------------------------------
    def prepare(self) -> None:
        """Write the confdir (before confpy starts)."""

    @property
    def dest_dir(self) -> Path:
        """The directory of the destinations (where stages and pending markers go)."""
        return self.out

    def units_files(self, out: Path) -> dict[str, tuple[Path, ...]]:
        """Unit -> its destinations, in the order :meth:`render_units` gives contents."""
        raise NotImplementedError

    def confpy_args(self) -> list[str]:
        raise NotImplementedError

    def confpy_env(self) -> dict[str, str]:
        return {}

    def render_units(self, keys: Mapping[str, str]) -> dict[str, Files]:
        """The oracle: unit -> the bytes of its files rendered from ``keys`` (None: fails)."""
        raise NotImplementedError

    def group_of(self, key: str) -> str | None:
        """The etcd watcher (or stream) confpy receives ``key`` on; None: not watched."""
        raise NotImplementedError

    def complete(self, name: str, data: bytes) -> str | None:
        """Why a read of destination ``name`` is not a complete file (None: it is)."""
        return None

    def read_store(self) -> Keys:
        """What the store holds now, read by the test's own client (compared with the model)."""
        raise NotImplementedError

    def wipe_store(self) -> None:
        raise NotImplementedError

    def reload_count(self, unit: str) -> int:
        raise NotImplementedError

    def seed(self) -> Keys:
        """Keys written before confpy starts (one revision)."""
        return {}

    def write_seed(self, keys: Keys) -> int:
        raise NotImplementedError

    # --- set-up ---------------------------------------------------------------------
    def __init__(self) -> None:
        super().__init__()
        cls = type(self)
        cls.stats.histories += 1
        self.workdir = cls.workroot / f"h{next(cls._counter)}"
        self.out = self.workdir / "out"
        self.out.mkdir(parents=True)
        self.prepare()
        self.ensure_etcd()
        self.wipe_store()
        self.keys: Keys = {}
        self.r_w = 0  # the revision of the last write under the watched keys
        self.kills = 0
        self.units = {name: Unit(name, paths) for name, paths in self.units_files(self.out).items()}
        self.paths = {p.name: p for u in self.units.values() for p in u.paths}
        seed = self.seed()
        if seed:
            self.revision(seed, self.write_seed(seed))
        else:
            self.revision({}, 0)
        self.confpy = Confpy(self.confpy_args(), self.workdir, self.confpy_env())
        self.reader = Reader(self.paths, self.complete)
        self.confpy.start()

    def ensure_etcd(self) -> None:
        s = self.server
        if s.paused:
            s.resume()
        if not s.running:
            s.start()
        s.wait_healthy(30)

    def teardown(self) -> None:
        try:
            self.reader.stop()
            type(self).stats.reads += self.reader.reads
            status = self.confpy.stop()
            assert status in (None, 0), f"confpy did not stop cleanly ({status}):\n{self.confpy.log_tail()}"
        finally:
            self.confpy.close()
            with contextlib.suppress(Exception):
                self.ensure_etcd()
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- the model --------------------------------------------------------------------
    def tally(self, rule: str) -> None:
        """Count a step by its rule (and its kind), for the report."""
        rules = type(self).stats.rules
        rules[rule] = rules.get(rule, 0) + 1

    def revision(self, changes: Changes, revision: int) -> None:
        """One store revision written by the test: ``changes`` (None: deleted), at
        ``revision``. Every state confpy may render from it is added to the oracle."""
        type(self).stats.revisions += 1
        old = self.keys
        new = dict(old)
        _apply(new, changes)
        self.keys = new
        groups: dict[str, dict[str, str | None]] = {}
        for k, v in changes.items():
            g = self.group_of(k)
            if g is not None:
                groups.setdefault(g, {})[k] = v
        if not groups and revision:
            return  # nothing confpy watches: no event, nothing rendered
        self.r_w = max(self.r_w, revision)
        # The states confpy may render: the whole revision, and with several watchers,
        # its parts in each order.
        chains: list[list[Keys]] = [[new]]
        if len(groups) > 1:
            chains = []
            for order in itertools.permutations(groups):
                state, chain = dict(old), []
                for g in order:
                    _apply(state, groups[g])
                    chain.append(dict(state))
                chains.append(chain)
        renders: dict[int, dict[str, Files]] = {}
        for chain in chains:
            for state in chain:
                renders.setdefault(id(state), self.render_units(state))
        for name, unit in self.units.items():
            most, ends, passed = 0, set(), set()
            for begin in unit.effective:
                for chain in chains:
                    # The unit's effective content along the chain: a render that fails
                    # keeps the last good one; each change may cost a reload.
                    current, count = begin, 0
                    for state in chain:
                        files = renders[id(state)][name]
                        if files is not None and files != current:
                            current, count = files, count + 1
                        passed.add(current)
                    most = max(most, count)
                    ends.add(current)
            unit.upper += most
            unit.effective = ends
            unit.candidates |= passed
            unit.final = renders[id(chains[0][-1])][name]

    # --- faults of confpy's own ---------------------------------------------------
    def kill_confpy(self) -> None:
        """SIGKILL (a crash): a reload it owed may be replayed once by the next start."""
        self.confpy.kill()
        self.kills += 1

    def hup(self) -> None:
        """SIGHUP, and wait (bounded) until every resource was applied after it: the
        daemon re-reads its configuration and applies every unit."""
        sent = time.time()
        self.confpy.signal(signal.SIGHUP)
        deadline = time.monotonic() + self.quiet_timeout
        while True:
            status = self.confpy.status() or {}
            resources = status.get("resources", {})
            if len(resources) == len(self.paths) and all(r["time"] > sent for r in resources.values()):
                return
            assert time.monotonic() < deadline, f"no apply after SIGHUP: {json.dumps(status)[:1500]}"
            time.sleep(0.02)

    # --- quiescence and the invariants ------------------------------------------------
    def quiesce(self) -> dict[str, Any]:
        """Wait (bounded) until confpy says it read ``r_w`` and has nothing pending."""
        start = time.monotonic()
        deadline = start + type(self).quiet_timeout
        last: dict[str, Any] | None = None
        while True:
            assert self.confpy.alive, f"confpy exited:\n{self.confpy.log_tail()}"
            last = self.confpy.status()
            if (
                last is not None
                and last.get("ready")
                and last.get("store_revision", 0) >= self.r_w
                and not last.get("pending")
            ):
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not quiescent within {type(self).quiet_timeout:g} s (waiting for revision {self.r_w}, "
                    f"nothing pending): /status {json.dumps(last)[:2000]}\nconfpy's log:\n{self.confpy.log_tail()}"
                )
            time.sleep(0.02)
        waited = time.monotonic() - start
        stats = type(self).stats
        stats.longest_wait = max(stats.longest_wait, waited)
        stats.points += 1
        return last

    @invariant()
    def quiescent_point(self) -> None:
        self.quiesce()
        self.check()

    def check(self) -> None:
        log = self.confpy.logs()
        for line in BAD_LINES:
            assert line not in log, f"confpy logged {line!r}:\n{self.confpy.log_tail()}"
        stored = self.read_store()
        assert stored == self.keys, _dict_diff("etcd holds", stored, "the model", self.keys)
        leftovers = sorted(p.name for p in self.dest_dir.iterdir() if p.name.startswith((STAGE, PENDING)))
        seen = self.reader.take()
        errors = list(self.reader.errors)
        assert not errors, "the reader thread saw:\n" + "\n".join(errors)
        for name, unit in self.units.items():
            disk = _read_unit(unit.paths)
            marker = self.dest_dir / f"{PENDING}{name}"
            # Killed between two renames and not renderable now: half replaced, marker kept.
            stuck = unit.final is None and self.kills > 0 and marker.exists()
            if unit.final is not None:
                assert disk == unit.final, self._explain(unit, disk, "the render of etcd's content")
            elif not stuck:
                assert disk in unit.candidates, self._explain(unit, disk, "one of its last good renders")
            else:
                for i in range(len(unit.paths)):
                    allowed = {c[i] if c else None for c in unit.candidates}
                    assert (disk[i] if disk else None) in allowed, self._explain(
                        unit, disk, "a file of a good render"
                    )
            allowed_reads = {
                i: {digest(c[i]) for c in unit.candidates | unit.previous if c}
                for i in range(len(unit.paths))
            }
            for i, path in enumerate(unit.paths):
                strange = seen[path.name] - allowed_reads[i]
                assert not strange, (
                    f"the reader read {path.name} with a content the oracle does not allow for this step "
                    f"(a state etcd never had?)\nconfpy's log:\n{self.confpy.log_tail()}"
                )
            if disk != unit.on_disk and not stuck:
                unit.lower += 1
            reloads = self.reload_count(name)
            assert reloads <= unit.upper + self.kills, (
                f"unit {name}: {reloads} reloads, the history allows {unit.upper} (+{self.kills} for kills)\n"
                f"confpy's log:\n{self.confpy.log_tail()}"
            )
            assert reloads >= unit.lower, (
                f"unit {name}: {reloads} reloads for {unit.lower} changes of its files: a change was not "
                f"reloaded\nconfpy's log:\n{self.confpy.log_tail()}"
            )
            if not stuck:
                unit.on_disk = disk
                unit.previous, unit.candidates = unit.candidates, {disk}
                unit.effective = {disk} if unit.final is None else {unit.final}
            if stuck:
                leftovers.remove(marker.name)
        assert not leftovers, (
            f"left in {self.dest_dir} once quiet: {leftovers}\nconfpy's log:\n{self.confpy.log_tail()}"
        )

    def _explain(self, unit: Unit, disk: Files, wanted: str) -> str:
        want = unit.final
        parts = [f"unit {unit.name}: the files are not {wanted}"]
        for i, path in enumerate(unit.paths):
            got = disk[i] if disk else None
            exp = want[i] if want else None
            if got != exp:
                parts.append(f"{path.name}:\n  on disk: {_short(got)}\n  expected: {_short(exp)}")
        parts.append(f"confpy's log:\n{self.confpy.log_tail()}")
        return "\n".join(parts)


def _apply(keys: Keys, changes: Changes) -> None:
    for k, v in changes.items():
        if v is None:
            keys.pop(k, None)
        else:
            keys[k] = v


def _read_unit(paths: Iterable[Path]) -> Files:
    out = []
    for p in paths:
        try:
            out.append(p.read_bytes())
        except FileNotFoundError:
            return None
    return tuple(out)


def _short(data: bytes | None, limit: int = 600) -> str:
    if data is None:
        return "(absent)"
    return repr(data[:limit]) + (f"... ({len(data)} bytes)" if len(data) > limit else "")


def _dict_diff(a_name: str, a: Mapping[str, str], b_name: str, b: Mapping[str, str]) -> str:
    lines = [f"{a_name} is not {b_name}:"]
    for k in sorted(a.keys() | b.keys()):
        if a.get(k) != b.get(k):
            lines.append(
                f"  {k!r}: {_short(enc(a[k]) if k in a else None, 80)} != {_short(enc(b[k]) if k in b else None, 80)}"
            )
        if len(lines) > 20:
            break
    return "\n".join(lines)
