"""5. Idle: ``confpy -watch -interval 1`` with nothing changing.

CPU of the confpy process (user + system, all threads; psutil ``cpu_times`` deltas)
over a 30 s window after startup has settled, as % of one core, for N = 10,000 and
1,000 peer keys; its RSS at the end of the window; etcd's CPU over the same window.
Also plain ``-watch`` (no reconcile timer) at N = 10,000 for comparison.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import Daemon, Options, confpy_cmd, confpy_env, cpu_ns, log, mib, workdir, write_result
from bench.data import PEER_PREFIX, PEERS_DEST, peer_line, peers, peers_confdir
from bench.etcd import etcd_server, load
from bench.inotify import FileWatch, holding

SETTLE = 3.0


async def idle_run(
    endpoint: str, etcd_pid: int, tmp: Path, n: int, interval: bool, window: float
) -> dict[str, Any]:
    confdir = peers_confdir(tmp / "conf")
    tag = f"{n}-{'interval' if interval else 'watch'}"
    out = tmp / f"out-{tag}"
    dest = out / PEERS_DEST.relative_to("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    watch = FileWatch([dest])
    watch.start()
    args = ["-watch", *(["-interval=1"] if interval else [])]
    cmd = confpy_cmd(
        *args, f"-node={endpoint}", f"-confdir={confdir}", f"-dest-root={out}", "-node-name=bench",
        "-log-level=warning",
    )  # fmt: skip
    daemon = Daemon(cmd, confpy_env(), tmp / f"confpy-{tag}.log").start()
    try:
        await watch.wait(dest, holding(peer_line(n - 1, 64512)), timeout=60)
        await asyncio.sleep(SETTLE)
        rss_start = daemon.rss()
        samples: list[float] = []
        e0 = cpu_ns(etcd_pid)
        c0, t0 = daemon.cpu(), time.perf_counter()
        prev_c, prev_t = c0, t0
        while time.perf_counter() - t0 < window:
            await asyncio.sleep(1.0)
            c, t = daemon.cpu(), time.perf_counter()
            samples.append(100.0 * (c - prev_c) / (t - prev_t))
            prev_c, prev_t = c, t
        elapsed = prev_t - t0
        cpu_pct = 100.0 * (prev_c - c0) / elapsed
        etcd_pct = 100.0 * (cpu_ns(etcd_pid) - e0) / 1e9 / elapsed
        rss_end = daemon.rss()
        threads = daemon.ps.num_threads() if daemon.ps else 0
        replaced = len(watch.events)
        if not daemon.alive():
            raise RuntimeError(f"confpy exited:\n{daemon.log_text()[-2000:]}")
    finally:
        daemon.stop()
        watch.close()
    return {
        "n": n,
        "interval": 1 if interval else None,
        "window_s": elapsed,
        "cpu_percent": cpu_pct,
        "cpu_percent_per_second": samples,
        "cpu_percent_1s_max": max(samples),
        "etcd_cpu_percent": etcd_pct,
        "rss_bytes_start": rss_start,
        "rss_bytes_end": rss_end,
        "peak_rss_bytes": daemon.peak_rss,
        "threads": threads,
        "file_replacements": replaced,  # 1: the initial write only
    }


def run(opts: Options) -> dict[str, Any]:
    window = 10.0 if opts.quick else 30.0
    cases = [(10_000, True), (1_000, True)] + ([] if opts.quick else [(10_000, False)])
    log(f"== 5. idle, {window:g} s window after {SETTLE:g} s settling")
    results: dict[str, Any] = {"window_s": window, "cases": {}}
    with workdir("idle") as tmp, etcd_server(tmp) as etcd:
        assert etcd.pid is not None
        loaded = 0
        for n, interval in cases:
            if n != loaded:
                load(etcd.endpoint, peers(n), clear=PEER_PREFIX)
                loaded = n
            r = asyncio.run(idle_run(etcd.endpoint, etcd.pid, tmp, n, interval, window))
            name = f"N={n} {'-watch -interval 1' if interval else '-watch'}"
            results["cases"][name] = r
            log(
                f"   {name:<28} CPU {r['cpu_percent']:.2f} % of a core"
                f" (1 s max {r['cpu_percent_1s_max']:.1f} %,"
                f" median {statistics.median(r['cpu_percent_per_second']):.2f} %)"
                f"  RSS {mib(r['rss_bytes_end'])} (peak {mib(r['peak_rss_bytes'])}),"
                f" {r['threads']} threads; etcd {r['etcd_cpu_percent']:.2f} %"
            )
    write_result(opts, "idle", results)
    return results
