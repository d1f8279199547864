"""6. Fleet: 50 confpy watchers (the 50 nodes of one cluster) on one etcd.

Each watcher is ``confpy -watch -sync-only`` with the repo's BIRD conf.d, its own
-node-name and -dest-root, the default quiet window (-wait-min 100ms). Measured:
startup of all 50 (launched together on 2 cores: process start → first
bird_ipam.cfg), their RSS, their idle CPU; then, per repetition, an IP pool is added
with one put and the clock runs until every node's bird_ipam.cfg holds it
(p50/p99/max over the nodes), with etcd's and the fleet's CPU during it.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

from bench import common
from bench.common import (
    Daemon,
    Options,
    confpy_cmd,
    confpy_env,
    cpu_ns,
    daemons,
    log,
    mib,
    ms,
    summary,
    workdir,
    write_result,
)
from bench.data import BIRD_CONFIG_DIR, cluster, node_name, pool_key, pool_value
from bench.etcd import KV, etcd_server, load
from bench.inotify import FileWatch, holding

NODES = 50
WAIT_MIN = "100ms"  # confpy's default


def _cpu(procs: list[Daemon]) -> float:
    total = 0.0
    for d in procs:
        with contextlib.suppress(psutil.Error):
            total += d.cpu()
    return total


async def fleet(endpoint: str, etcd_pid: int, tmp: Path, nodes: int, reps: int) -> dict[str, Any]:
    files = [
        tmp / "out" / node_name(i) / BIRD_CONFIG_DIR.relative_to("/") / "bird_ipam.cfg"
        for i in range(1, nodes + 1)
    ]
    watch = FileWatch(files)
    watch.start()
    env = confpy_env({"BIRD_FLAVOR": "stock"})
    procs = [
        Daemon(
            confpy_cmd(
                "-watch", "-sync-only", f"-wait-min={WAIT_MIN}", f"-node={endpoint}",
                f"-confdir={common.SOURCE.root}",
                f"-dest-root={tmp / 'out' / node_name(i)}", f"-node-name={node_name(i)}",
                "-log-level=warning",
            ),
            env,
            tmp / "logs" / f"{node_name(i)}.log",
        )
        for i in range(1, nodes + 1)
    ]  # fmt: skip
    result: dict[str, Any] = {"nodes": nodes, "wait_min": WAIT_MIN}
    try:
        t_launch = time.perf_counter()
        with daemons(procs):
            launched = time.perf_counter() - t_launch
            ready = await watch.wait_all(files, holding("10.0.0.0/8"), timeout=300)
            starts = [ready[f] - t_launch for f in files]
            result["startup"] = {
                "launch_s": launched,
                "first_s": min(starts),
                "median_s": statistics.median(starts),
                "all_s": max(starts),
            }
            log(
                f"   startup of {nodes} watchers: first {ms(min(starts))},"
                f" median {ms(statistics.median(starts))}, all {ms(max(starts))}"
            )
            await asyncio.sleep(3.0)
            rss = [d.rss() for d in procs]
            pss = [d.ps.memory_full_info().pss for d in procs if d.ps is not None]
            c0, t0 = _cpu(procs), time.perf_counter()
            e0 = cpu_ns(etcd_pid) / 1e9
            await asyncio.sleep(10.0)
            idle_window = time.perf_counter() - t0
            result["idle"] = {
                "window_s": idle_window,
                "fleet_cpu_percent": 100.0 * (_cpu(procs) - c0) / idle_window,
                "etcd_cpu_percent": 100.0 * (cpu_ns(etcd_pid) / 1e9 - e0) / idle_window,
                "rss_bytes_median": statistics.median(rss),
                "rss_bytes_total": sum(rss),
                # Proportional set size: shared pages (libpython, grpc's .so) split among the 50.
                "pss_bytes_median": statistics.median(pss),
                "pss_bytes_total": sum(pss),
            }
            log(
                f"   idle fleet: RSS {mib(statistics.median(rss))} each (PSS {mib(statistics.median(pss))}),"
                f" PSS {mib(sum(pss))} in all;"
                f" CPU {result['idle']['fleet_cpu_percent']:.2f} % of a core for all {nodes},"
                f" etcd {result['idle']['etcd_cpu_percent']:.2f} %"
            )
            changes: list[dict[str, Any]] = []
            async with KV(endpoint) as kv:
                for rep in range(reps):
                    cidr = f"100.{64 + rep}.0.0/16"
                    f0, e0 = _cpu(procs), cpu_ns(etcd_pid) / 1e9
                    t0 = time.perf_counter()
                    await kv.put(pool_key(cidr), pool_value(cidr))
                    t_ack = time.perf_counter()
                    done = await watch.wait_all(files, holding(cidr), timeout=120)
                    t_all = max(done.values())
                    window = max(t_all - t0, 1e-3)
                    await asyncio.sleep(0.2)  # the last renders' CPU lands in the counters
                    lat = [done[f] - t0 for f in files]
                    c: dict[str, Any] = {
                        "cidr": cidr,
                        "latency_s": summary(lat),
                        "latencies_s": lat,
                        "put_ack_s": t_ack - t0,
                        "etcd_cpu_s": cpu_ns(etcd_pid) / 1e9 - e0,
                        "fleet_cpu_s": _cpu(procs) - f0,
                    }
                    c["etcd_cpu_percent_of_window"] = 100.0 * c["etcd_cpu_s"] / window
                    changes.append(c)
                    s = c["latency_s"]
                    log(
                        f"   pool {cidr:<15} all {nodes} nodes: p50 {ms(s['p50']):>9}  p99 {ms(s['p99']):>9}"
                        f"  max {ms(s['max']):>9};  etcd CPU {ms(c['etcd_cpu_s'])}"
                        f" ({c['etcd_cpu_percent_of_window']:.1f} % of the window),"
                        f" fleet CPU {ms(c['fleet_cpu_s'])}"
                    )
                    await asyncio.sleep(1.5)
            dead = [d.pid for d in procs if not d.alive()]
            if dead:
                raise RuntimeError(f"{len(dead)} watchers exited early")
        result["peak_rss_bytes_median"] = statistics.median(d.peak_rss for d in procs)
        result["changes"] = changes
        result["pool_added"] = {
            "median_p50_s": statistics.median(c["latency_s"]["p50"] for c in changes),
            "median_p99_s": statistics.median(c["latency_s"]["p99"] for c in changes),
            "median_max_s": statistics.median(c["latency_s"]["max"] for c in changes),
            "max_s": max(c["latency_s"]["max"] for c in changes),
            "pooled_s": summary([x for c in changes for x in c["latencies_s"]]),
            "etcd_cpu_s_median": statistics.median(c["etcd_cpu_s"] for c in changes),
            "fleet_cpu_s_median": statistics.median(c["fleet_cpu_s"] for c in changes),
        }
    finally:
        watch.close()
    return result


def run(opts: Options) -> dict[str, Any]:
    reps = opts.n_reps(full=5, quick=2)
    log(f"== 6. fleet: {NODES} watchers, one etcd; {reps} pool additions")
    with workdir("fleet") as tmp, etcd_server(tmp) as etcd:
        assert etcd.pid is not None
        load(etcd.endpoint, cluster(NODES))
        result = asyncio.run(fleet(etcd.endpoint, etcd.pid, tmp, NODES, reps))
        p = result["pool_added"]
        log(
            f"   pool added, median over {reps}: p50 {ms(p['median_p50_s'])}  p99 {ms(p['median_p99_s'])}"
            f"  max {ms(p['median_max_s'])} (worst {ms(p['max_s'])}); etcd CPU {ms(p['etcd_cpu_s_median'])}"
        )
    result["reps"] = reps
    write_result(opts, "fleet", result)
    return result
