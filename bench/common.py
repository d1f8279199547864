"""Shared pieces: options, statistics, running confpy as a measured subprocess, results."""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PYTHON = sys.executable
MiB = 1024 * 1024
SOURCE_PATHS = ("confpy", "conf.d", "templates")  # what is measured: the code and the BIRD set


@dataclass
class Source:
    """The confpy being measured: this working tree, or a git revision extracted apart
    (so that edits in progress do not change the code between two benchmarks)."""

    root: Path = REPO
    rev: str | None = None  # None: the working tree
    commit: str = ""
    dirty: bool = False

    @property
    def label(self) -> str:
        if self.rev is not None:
            return f"{self.commit} ({self.rev})"
        return f"{self.commit}{' + uncommitted changes' if self.dirty else ''} (working tree)"


SOURCE = Source()


def use_revision(rev: str | None) -> Source:
    """Measure ``rev`` (``git archive`` of confpy/, conf.d/, templates/ into a temp dir),
    or the working tree when ``rev`` is None."""
    global SOURCE
    git = ["git", "-C", str(REPO)]
    commit = _run([*git, "rev-parse", "--short", rev or "HEAD"])
    if rev is None:
        dirty = bool(_run([*git, "status", "--porcelain", "--", *SOURCE_PATHS]))
        SOURCE = Source(REPO, None, commit, dirty)
        return _checked(SOURCE)
    root = Path(tempfile.mkdtemp(prefix="confpy-bench-src-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    archive = subprocess.run(
        [*git, "archive", rev, *SOURCE_PATHS], capture_output=True, check=True, timeout=60
    )
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True, timeout=60)
    SOURCE = Source(root, rev, commit, False)
    return _checked(SOURCE)


def _checked(source: Source) -> Source:
    """Make sure the confpy that subprocesses import is the one meant."""
    got = _run([PYTHON, "-c", "import confpy; print(confpy.__file__)"], env=confpy_env())
    if Path(got).parent.parent != source.root:
        raise RuntimeError(f"confpy would be imported from {got!r}, not from {source.root}")
    return source


@dataclass
class Options:
    """What the command line chose; each benchmark scales its repetitions from it."""

    quick: bool = False
    reps: int | None = None  # None: the benchmark's own default (fewer with --quick)
    results: Path = RESULTS

    def n_reps(self, full: int, quick: int) -> int:
        return self.reps if self.reps is not None else (quick if self.quick else full)


# --------------------------------------------------------------------------- stats


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, median (p50), p99, min, max, mean of ``values``."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def mib(n_bytes: float) -> str:
    return f"{n_bytes / MiB:.1f} MiB"


def log(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- confpy


def confpy_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment confpy runs in: this checkout first on the path, no CONFPY_*
    settings or NODENAME leaking in from the caller, no proxies (loopback only)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CONFPY_") and k not in ("NODENAME", "BIRD_FLAVOR", "CALICO_ROUTER_ID")
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")
    }  # fmt: skip
    env["PYTHONPATH"] = str(SOURCE.root)
    env["PYTHONSAFEPATH"] = "1"  # no current directory in front of PYTHONPATH (python -m)
    env["PATH"] = "/usr/sbin:/sbin:" + env.get("PATH", "/usr/bin:/bin")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches as an installed confpy has them
    env.update(extra or {})
    return env


def confpy_cmd(*args: str) -> list[str]:
    """``python -m confpy ARGS`` with this checkout's confpy and an empty config file
    (/dev/null: no settings), so a /etc/confpy/confpy.toml on the machine cannot change
    what is measured."""
    return [PYTHON, "-m", "confpy", "-config-file=/dev/null", *args]


@dataclass
class Measured:
    wall: float  # seconds, fork to exit, interpreter start included
    max_rss: int  # bytes: the child's peak resident set
    cpu: float  # user + system seconds of the child
    returncode: int
    stderr: str


TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None

# Without GNU time: a small launcher forks and execs the command and reports the
# child's rusage. (A child forked straight from this process would inherit this
# process's RSS as the floor of its ru_maxrss: Linux keeps the high-water mark of
# the image an exec replaces.)
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write("%d %f %f" % (ru.ru_maxrss, ru.ru_utime, ru.ru_stime))
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def run_measured(cmd: Sequence[str], env: Mapping[str, str], *, timeout: float = 300.0) -> Measured:
    """Run ``cmd`` to completion: wall time from before the fork to after the exit, and
    the child's peak RSS and CPU from its own rusage (GNU ``time -f``; else a launcher)."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as usage_file:
        if TIME:
            wrapped = [TIME, "-f", "%M %U %S", "-o", usage_file.name, *cmd]
        else:
            wrapped = [PYTHON, "-I", "-S", "-c", _LAUNCHER, usage_file.name, *cmd]
        start = time.perf_counter()
        proc = subprocess.Popen(
            wrapped, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        # A blocking waitpid: Popen.wait(timeout) polls with sleeps of up to 50 ms, which
        # would quantise the wall time. A timer kills a run that overruns.
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            proc.wait()
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode(errors="replace")
        fields = usage_file.read().split()
    rss_kib, user, system = (
        (int(fields[-3]), float(fields[-2]), float(fields[-1])) if len(fields) >= 3 else (0, 0, 0)
    )
    # GNU time reports "Command exited with non-zero status N" on stderr; the status is ours.
    return Measured(wall, rss_kib * 1024, user + system, proc.returncode, text)


@dataclass
class Daemon:
    """A long-running confpy (``-watch``), stopped by its PID with SIGTERM."""

    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    peak_rss: int = 0
    ps: psutil.Process | None = field(default=None, repr=False)

    def start(self) -> Daemon:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        self.ps = psutil.Process(self.proc.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """Its exit status once it was reaped (by :meth:`stop` or :meth:`alive`), else None."""
        return None if self.proc is None else self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def cpu(self) -> float:
        """User + system CPU seconds so far (threads included)."""
        assert self.ps is not None
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def hwm(self) -> int:
        """Peak RSS so far (VmHWM of its own image; 0 once it exited)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait (SIGKILL after ``timeout``); records the peak RSS of its life."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.peak_rss = max(self.peak_rss, self.hwm())
        self.proc.terminate()  # nothing if it already exited
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def daemons(items: Sequence[Daemon]) -> Iterator[Sequence[Daemon]]:
    """Start ``items``; whatever happens, stop every one of them by its PID (all signalled
    first, so that they exit in parallel), after recording each one's peak RSS."""
    try:
        for d in items:
            d.start()
        yield items
    finally:
        live = [d for d in items if d.proc is not None and d.proc.returncode is None]
        for d in live:  # before any signal: VmHWM is gone once a process exited
            d.peak_rss = max(d.peak_rss, d.hwm())
        for d in live:
            assert d.proc is not None
            d.proc.terminate()
        for d in items:
            d.stop()


def cpu_ns(pid: int) -> int:
    """CPU time of every live thread of ``pid`` in ns (/proc/PID/task/*/schedstat): far
    finer than the 10 ms ticks of ``cpu_times``, for short windows. Threads that already
    exited are not counted, so use it on processes with long-lived threads (etcd)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    return total


# --------------------------------------------------------------------------- results


def _run(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    try:
        p = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env=None if env is None else dict(env),
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (p.stdout + p.stderr).strip()


def machine_info() -> dict[str, Any]:
    bird = shutil.which("bird") or ("/usr/sbin/bird" if Path("/usr/sbin/bird").exists() else None)
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_total_bytes": psutil.virtual_memory().total,
        "free_h": _run(["free", "-h"]),
        "python": platform.python_version(),
        "python_executable": PYTHON,
        "kernel": platform.release(),
        "etcd": _run(["etcd", "--version"]).splitlines()[0] if shutil.which("etcd") else None,
        "bird": _run([bird, "--version"]) if bird else None,
        "confpy": SOURCE.label,
        "git": SOURCE.commit,
        "git_dirty": SOURCE.dirty,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def write_result(opts: Options, name: str, data: dict[str, Any]) -> Path:
    """bench/results/<name>-<UTC time>.json and bench/results/<name>-latest.json."""
    opts.results.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "quick": opts.quick, "machine": machine_info(), **data}
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = opts.results / f"{name}-{stamp}.json"
    text = json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"
    path.write_text(text)
    (opts.results / f"{name}-latest.json").write_text(text)
    log(f"   -> {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return path


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=f"confpy-bench-{prefix}-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
