"""5. Idle: ``confpy -watch -interval 1`` with nothing changing.

CPU of the confpy process (user + system, all threads; psutil ``cpu_times`` deltas)
over a 30 s window after startup has settled, as % of one core, for N = 10,000 and
1,000 peer keys; its RSS at the end of the window; etcd's CPU over the same window.
Also plain ``-watch`` (no reconcile timer) at N = 10,000 for comparison.

With ``CONFD_BIN``: Go confd on the same data and template, ``-interval 1`` (confd polls:
no watch) and ``-watch``, each case right after confpy's, with the ratios.

*Unread puts* (issue 17): one ``confpy -watch -sync-only`` with the repo's BIRD conf.d
(node1 of a 100-node cluster) while 20,000 puts go to keys under /calico that no
resource reads (Felix's workload endpoints under /calico/v1/host/, IPAM allocation
blocks under /calico/ipam/v2/assignment/: both sort between the BIRD prefixes). Once in
transactions of 128 puts, once as 20,000 separate puts (256 in flight on one channel).
Measured: the daemon's CPU (psutil cpu_times, user + system, all threads) from before
the first put until 1 s after the last acknowledgement, beside its CPU over an idle
window of the same length just before; and that none of the six files was replaced.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench import common, confd
from bench.common import Daemon, Options, confpy_cmd, confpy_env, cpu_ns, log, mib, ms, workdir, write_result
from bench.data import (
    BIRD_CONFIG_DIR,
    BIRD_FILES,
    PEER_PREFIX,
    PEERS_DEST,
    cluster,
    peer_line,
    peers,
    peers_confdir,
    pool_key,
    pool_value,
    unread_calico_keys,
)
from bench.etcd import KV, MAX_TXN_OPS, etcd_server, load
from bench.inotify import FileWatch, holding

SETTLE = 3.0
UNREAD_PUTS = 20_000
UNREAD_NODES = 100
IN_FLIGHT = 256


async def idle_run(
    endpoint: str, etcd_pid: int, tmp: Path, n: int, interval: bool, window: float, go: str | None = None
) -> dict[str, Any]:
    tag = f"{'confd' if go else 'confpy'}-{n}-{'interval' if interval else 'watch'}"
    out = tmp / f"out-{tag}"
    if go is None:
        confdir = peers_confdir(tmp / "conf")
        dest = out / PEERS_DEST.relative_to("/")
        args = ["-watch", *(["-interval=1"] if interval else [])]
        cmd = confpy_cmd(
            *args, f"-node={endpoint}", f"-confdir={confdir}", f"-dest-root={out}", "-node-name=bench",
            "-log-level=warning",
        )  # fmt: skip
        env = confpy_env()
    else:
        dest = out / "peers.conf"
        confdir = confd.peers_confdir(tmp / f"conf-{tag}", dest)
        mode = "-interval=1" if interval else "-watch"  # confd's -interval polls; it has no reconcile
        cmd = confd.confd_cmd(go, mode, f"-node={endpoint}", f"-confdir={confdir}", "-log-level=warning")
        env = confd.confd_env()
    dest.parent.mkdir(parents=True, exist_ok=True)
    watch = FileWatch([dest])
    watch.start()
    daemon = Daemon(cmd, env, tmp / f"{tag}.log").start()
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
            raise RuntimeError(f"{tag} exited:\n{daemon.log_text()[-2000:]}")
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


async def unread_puts(endpoint: str, etcd_pid: int, tmp: Path) -> dict[str, Any]:
    """20,000 puts no resource reads, in transactions and one by one: confpy's CPU."""
    out = tmp / "out-unread"
    files = [out / BIRD_CONFIG_DIR.relative_to("/") / f for f in BIRD_FILES]
    watch = FileWatch(files)
    watch.start()
    cmd = confpy_cmd(
        "-watch", "-sync-only", f"-node={endpoint}", f"-confdir={common.SOURCE.root}",
        f"-dest-root={out}", "-node-name=node1", "-log-level=warning",
    )  # fmt: skip
    daemon = Daemon(cmd, confpy_env({"BIRD_FLAVOR": "stock"}), tmp / "confpy-unread.log").start()
    result: dict[str, Any] = {"puts": UNREAD_PUTS, "nodes": UNREAD_NODES, "modes": {}}
    try:
        await watch.wait_all(files, lambda text: bool(text), timeout=60)
        await asyncio.sleep(SETTLE)
        async with KV(endpoint) as kv:
            for mode in ("transactions", "separate puts"):
                items = unread_calico_keys(UNREAD_NODES, UNREAD_PUTS)  # an equal value is an event too
                events0 = len(watch.events)
                e0, t0 = cpu_ns(etcd_pid), time.perf_counter()
                c0, n0 = daemon.cpu(), cpu_ns(daemon.pid)
                if mode == "transactions":
                    await kv.put_many(items)
                else:
                    for i in range(0, len(items), IN_FLIGHT):
                        await asyncio.gather(*(kv.put(k, v) for k, v in items[i : i + IN_FLIGHT]))
                t_last = time.perf_counter()
                await asyncio.sleep(1.0)
                window = time.perf_counter() - t0
                cpu, cpu_fine = daemon.cpu() - c0, (cpu_ns(daemon.pid) - n0) / 1e9
                etcd_cpu = (cpu_ns(etcd_pid) - e0) / 1e9
                # The same length of nothing, for the floor (gRPC keepalives, timers).
                i0 = daemon.cpu()
                await asyncio.sleep(window)
                idle_cpu = daemon.cpu() - i0
                r = {
                    "txns": -(-len(items) // MAX_TXN_OPS) if mode == "transactions" else 0,
                    "puts_s": t_last - t0,
                    "window_s": window,
                    "confpy_cpu_s": cpu,
                    "confpy_cpu_s_schedstat": cpu_fine,  # ns, threads alive at both ends
                    "confpy_idle_cpu_s_same_window": idle_cpu,
                    "etcd_cpu_s": etcd_cpu,
                    "files_replaced": len(watch.events) - events0,
                }
                result["modes"][mode] = r
                log(
                    f"   {UNREAD_PUTS} unread /calico puts, {mode:<13}: {r['puts_s']:.1f} s of puts;"
                    f" confpy CPU {ms(cpu)} (schedstat {ms(cpu_fine)}) over {window:.1f} s"
                    f" (idle floor {ms(idle_cpu)});"
                    f" files replaced {r['files_replaced']}; etcd CPU {etcd_cpu:.1f} s"
                )
            # Control: the daemon is still watching: a pool reaches bird_ipam.cfg.
            t0 = time.perf_counter()
            await kv.put(pool_key("100.99.0.0/16"), pool_value("100.99.0.0/16"))
            await watch.wait(files[1], holding("100.99.0.0/16"), timeout=30)
            result["control_pool_s"] = time.perf_counter() - t0
        result["rss_bytes_end"] = daemon.rss()
        if not daemon.alive():
            raise RuntimeError(f"confpy exited:\n{daemon.log_text()[-2000:]}")
    finally:
        daemon.stop()
        watch.close()
    return result


def run(opts: Options) -> dict[str, Any]:
    window = 10.0 if opts.quick else 30.0
    cases = [(10_000, True), (1_000, True)] + ([] if opts.quick else [(10_000, False)])
    log(f"== 5. idle, {window:g} s window after {SETTLE:g} s settling")
    go = confd.binary()
    results: dict[str, Any] = {"window_s": window, "cases": {}, "confd": go}
    with workdir("idle") as tmp, etcd_server(tmp) as etcd:
        assert etcd.pid is not None
        loaded = 0
        for n, interval in cases:
            if n != loaded:
                load(etcd.endpoint, peers(n), clear=PEER_PREFIX)
                loaded = n
            for who in ("confpy", "confd") if go else ("confpy",):
                binary = go if who == "confd" else None
                r = asyncio.run(idle_run(etcd.endpoint, etcd.pid, tmp, n, interval, window, binary))
                if who == "confpy":
                    name = f"N={n} {'-watch -interval 1' if interval else '-watch'}"
                else:
                    name = f"confd N={n} {'-interval 1' if interval else '-watch'}"
                results["cases"][name] = r
                log(
                    f"   {name:<28} CPU {r['cpu_percent']:.2f} % of a core"
                    f" (1 s max {r['cpu_percent_1s_max']:.1f} %,"
                    f" median {statistics.median(r['cpu_percent_per_second']):.2f} %)"
                    f"  RSS {mib(r['rss_bytes_end'])} (peak {mib(r['peak_rss_bytes'])}),"
                    f" {r['threads']} threads; etcd {r['etcd_cpu_percent']:.2f} %"
                )
            if go:
                mine = results["cases"][f"N={n} {'-watch -interval 1' if interval else '-watch'}"]
                log(
                    f"   {'':<28} confpy/confd: CPU {confd.ratio(mine['cpu_percent'], r['cpu_percent'])},"
                    f" RSS {confd.ratio(mine['rss_bytes_end'], r['rss_bytes_end'])}"
                )
        if go is None:
            confd.say_recorded("-interval 1 CPU N=10000", "-interval 1 RSS N=10000")
        log(f"   unread puts: node1 of a {UNREAD_NODES}-node cluster, the repo's conf.d, -sync-only")
        load(etcd.endpoint, cluster(UNREAD_NODES))
        results["unread_puts"] = asyncio.run(unread_puts(etcd.endpoint, etcd.pid, tmp))
    write_result(opts, "idle", results)
    return results
