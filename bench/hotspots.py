"""Where the time goes in the slowest figures: ``python -m bench profile``.

1. ``-X importtime`` of ``confpy -onetime`` (N = 10,000 peers from etcd): import cost by
   top-level package.
2. cProfile of the same run (the onetime path renders on the main thread): top
   functions by own time and by cumulative time.
3. py-spy (sampling, every thread; ``pip install py-spy`` into .venv) of the same run,
   10 runs aggregated, and of the ``-watch -wait-min 0`` daemon during 50 timed changes
   at N = 10,000 and N = 1,000 (benchmark 3's procedure).

Reports go to bench/results/profile-*.txt, a summary to the JSON result.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import pstats
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common
from bench.b3_watch import CHANGES, one_run
from bench.common import Options, confpy_cmd, confpy_env, log, run_measured, workdir, write_result
from bench.data import PEER_PREFIX, PEERS_DEST, peers, peers_confdir
from bench.etcd import etcd_server, load

ONETIME_RUNS = 10
TOP = 15


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


# --------------------------------------------------------------------------- stacks

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """``render (/x/site-packages/jinja2/environment.py:1295)`` -> ``jinja2/environment.py:render``."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "/lib/python3.11/", f"{common.SOURCE.root}/", f"{Path.cwd()}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{m['func']}"


def collapse(raw: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """py-spy raw (collapsed) stacks -> total samples, own samples, inclusive samples."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    return total, own, incl


def stack_report(title: str, raw: str) -> tuple[str, dict[str, Any]]:
    total, own, incl = collapse(raw)
    lines = [f"== {title}: {total} samples (on CPU)"]
    summary: dict[str, Any] = {"samples": total, "own": [], "inclusive": []}
    if not total:
        return "\n".join([*lines, "   (no samples)"]), summary
    lines.append("   own time:")
    for f, c in own.most_common(TOP):
        lines.append(f"   {100 * c / total:5.1f} %  {f}")
        summary["own"].append([f, round(100 * c / total, 1)])
    lines.append("   inclusive (confpy, and what it calls directly):")
    shown = 0
    for f, c in incl.most_common():
        if f.startswith(("<frozen", "threading.py", "asyncio/", "concurrent/")) or "cli.py:<module>" in f:
            continue
        lines.append(f"   {100 * c / total:5.1f} %  {f}")
        summary["inclusive"].append([f, round(100 * c / total, 1)])
        shown += 1
        if shown >= 2 * TOP:
            break
    return "\n".join(lines), summary


# --------------------------------------------------------------------------- profiles


def importtime(cmd: list[str], env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    p = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True, timeout=120
    )
    top: dict[str, int] = {}
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m and len(m[3]) <= 1:  # a top-level import (depth 0 is one space)
            top[m[4]] = int(m[2])
    total = sum(top.values())
    lines = [f"== import time of confpy -onetime (top-level imports; {total / 1e3:.0f} ms in all)"]
    for name, us in sorted(top.items(), key=lambda kv: -kv[1])[:TOP]:
        lines.append(f"   {us / 1e3:7.1f} ms  {name}")
    return "\n".join(lines), {
        "total_ms": total / 1e3,
        "top_ms": {k: v / 1e3 for k, v in top.items() if v > 2000},
    }


def cprofile(cmd: list[str], env: dict[str, str], out: Path) -> str:
    prof = out.with_suffix(".prof")
    p = subprocess.run(
        [cmd[0], "-m", "cProfile", "-o", str(prof), *cmd[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if p.returncode != 0 or not prof.exists():
        return f"== cProfile failed: {p.stderr[-1000:]}"
    text = io.StringIO()
    stats = pstats.Stats(str(prof), stream=text)
    stats.strip_dirs()
    text.write("== cProfile of confpy -onetime, N=10,000 from etcd: by own time\n")
    stats.sort_stats("tottime").print_stats(TOP)
    text.write("== by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(2 * TOP)
    prof.unlink()
    return text.getvalue()


def spy_command(spy: str, cmd: list[str], env: dict[str, str], out: Path, runs: int) -> str:
    raw = []
    for i in range(runs):
        part = out.with_name(f"{out.stem}-{i}.txt")
        m = run_measured(
            [spy, "record", "-r", "1000", "--nonblocking", "-f", "raw", "-o", str(part), "--", *cmd], env
        )
        if m.returncode != 0 or not part.exists():
            raise RuntimeError(f"py-spy failed ({m.returncode}): {m.stderr[-1000:]}")
        raw.append(part.read_text())
        part.unlink()
    return "".join(raw)


def spy_pid(spy: str, out: Path) -> Callable[[int], Callable[[], None]]:
    """A profiler for bench.b3_watch.one_run: py-spy attached to the daemon, stopped by SIGINT."""

    def start(pid: int) -> Callable[[], None]:
        proc = subprocess.Popen(
            # 250 Hz without stopping the process: sampling perturbs a 2-core machine.
            [spy, "record", "-r", "250", "--nonblocking", "-f", "raw", "-o", str(out), "--pid", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def stop() -> None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on ^C
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        return stop

    return start


def run(opts: Options) -> dict[str, Any]:
    spy = py_spy()
    log(f"== profile (py-spy: {spy or 'not installed: .venv/bin/pip install py-spy'})")
    opts.results.mkdir(parents=True, exist_ok=True)
    reports: list[str] = []
    result: dict[str, Any] = {}
    env = confpy_env()
    with workdir("profile") as tmp, etcd_server(tmp) as etcd:
        confdir = peers_confdir(tmp / "conf")
        dest_root = tmp / "out"
        (dest_root / PEERS_DEST.relative_to("/")).parent.mkdir(parents=True)
        load(etcd.endpoint, peers(10_000), clear=PEER_PREFIX)
        onetime = confpy_cmd(
            "-onetime", f"-node={etcd.endpoint}", f"-confdir={confdir}", f"-dest-root={dest_root}",
            "-node-name=bench", "-log-level=warning",
        )  # fmt: skip
        text, result["importtime"] = importtime(onetime, env)
        reports.append(text)
        text = cprofile(onetime, env, opts.results / "profile-onetime-cprofile")
        (opts.results / "profile-onetime-cprofile.txt").write_text(text)
        reports.append(text)
        if spy:
            raw = spy_command(spy, onetime, env, tmp / "onetime", ONETIME_RUNS)
            (opts.results / "profile-onetime-pyspy.raw").write_text(raw)
            text, result["onetime_pyspy"] = stack_report(
                f"py-spy, confpy -onetime N=10,000 from etcd, {ONETIME_RUNS} runs", raw
            )
            reports.append(text)
            for n in (10_000, 1_000):
                load(etcd.endpoint, peers(n), clear=PEER_PREFIX)
                out = tmp / f"watch-{n}.txt"
                r = asyncio.run(
                    one_run(
                        etcd.endpoint, n, confdir, tmp / f"wout-{n}", tmp / f"wlog-{n}", CHANGES, seed=7,
                        profiler=spy_pid(spy, out),
                    )
                )  # fmt: skip
                raw = out.read_text() if out.exists() else ""
                (opts.results / f"profile-watch-{n}-pyspy.raw").write_text(raw)
                text, result[f"watch_{n}_pyspy"] = stack_report(
                    f"py-spy, confpy -watch -wait-min 0, N={n:,}, {CHANGES} changes"
                    f" (p50 {r['latency_s']['p50'] * 1e3:.1f} ms, p99 {r['latency_s']['p99'] * 1e3:.1f} ms"
                    f" while profiled)",
                    raw,
                )
                reports.append(text)
    report = "\n\n".join(reports) + "\n"
    (opts.results / "profile-latest.txt").write_text(report)
    with contextlib.suppress(BrokenPipeError):
        print(report, flush=True)
    write_result(opts, "profile", result)
    return result
