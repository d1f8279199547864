"""3. Watch latency: one put → the destination file holds the new value.

``confpy -watch -wait-min 0`` follows etcd holding N peer keys (N = 1,000 and 10,000;
one template printing them all). For each of 50 changes: the clock starts just
before the put is sent, and stops when inotify reports the replaced destination and
it holds the new line. Also recorded: the put's own round trip (etcd's commit with
its fsync), confpy's CPU per change, its startup (process start → first file), RSS.
With ``CONFD_BIN``: Go confd ``-watch`` (it has no quiet window) on the same data and
template, same changes, each run right after confpy's, and the ratios.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import confd
from bench.common import (
    Daemon,
    Options,
    confpy_cmd,
    confpy_env,
    log,
    mib,
    ms,
    summary,
    workdir,
    write_result,
)
from bench.data import PEER_PREFIX, PEERS_DEST, peer_key, peer_line, peer_value, peers, peers_confdir
from bench.etcd import KV, etcd_server, load
from bench.inotify import FileWatch, holding

SIZES = (1_000, 10_000)
CHANGES = 50
WARMUP = 3


async def one_run(
    endpoint: str,
    n: int,
    confdir: Path,
    out: Path,
    log_path: Path,
    changes: int,
    seed: int,
    profiler: Callable[[int], Callable[[], None]] | None = None,
    go: str | None = None,
) -> dict[str, Any]:
    """One confpy daemon (Go confd's ``go`` if given), ``changes`` timed changes (after a
    few untimed ones). ``profiler(pid)`` is started after the warm-up; what it returns stops it."""
    if go is None:
        dest = out / PEERS_DEST.relative_to("/")
        cmd = confpy_cmd(
            "-watch",
            "-wait-min=0",
            f"-node={endpoint}",
            f"-confdir={confdir}",
            f"-dest-root={out}",
            "-node-name=bench",
            "-log-level=warning",
        )
        env = confpy_env()
    else:
        dest = out / "peers.conf"
        go_conf = confd.peers_confdir(out.parent / f"{out.name}-confd-conf", dest)
        cmd = confd.confd_cmd(go, "-watch", f"-node={endpoint}", f"-confdir={go_conf}", "-log-level=warning")
        env = confd.confd_env()
    dest.parent.mkdir(parents=True, exist_ok=True)
    watch = FileWatch([dest])
    watch.start()
    daemon = Daemon(cmd, env, log_path).start()
    rng = random.Random(seed)
    try:
        first = await watch.wait(dest, holding(peer_line(n - 1, 64512)), timeout=60)
        startup = first - daemon.started
        await asyncio.sleep(0.5)
        rss_start = daemon.rss()
        lat: list[float] = []
        acks: list[float] = []
        cpu0 = 0.0
        stop_profiler: Callable[[], None] | None = None
        async with KV(endpoint) as kv:
            for i in range(WARMUP + changes):
                if i == WARMUP:
                    cpu0 = daemon.cpu()
                    if profiler is not None:
                        stop_profiler = profiler(daemon.pid)
                idx = rng.randrange(n)
                as_num = 65000 + seed * 1000 + i
                line = peer_line(idx, as_num)
                t0 = time.perf_counter()
                await kv.put(peer_key(idx), peer_value(idx, as_num))
                t_ack = time.perf_counter()
                seen = await watch.wait(dest, holding(line), timeout=30)
                if i >= WARMUP:
                    lat.append(seen - t0)
                    acks.append(t_ack - t0)
                # Let the process go idle between changes, with some jitter.
                await asyncio.sleep(0.02 + rng.random() * 0.03)
        cpu_per_change = (daemon.cpu() - cpu0) / changes
        if stop_profiler is not None:
            stop_profiler()
        rss_end = daemon.rss()
        if not daemon.alive():
            raise RuntimeError(f"{'confd' if go else 'confpy'} exited:\n{daemon.log_text()[-2000:]}")
    finally:
        daemon.stop()
        watch.close()
    return {
        "latency_s": summary(lat),
        "put_ack_s": summary(acks),
        "latencies_s": lat,
        "cpu_s_per_change": cpu_per_change,
        "startup_s": startup,
        "rss_bytes_after_start": rss_start,
        "rss_bytes_end": rss_end,
        "peak_rss_bytes": daemon.peak_rss,
        "exit": daemon.returncode,
    }


def run(opts: Options) -> dict[str, Any]:
    reps = opts.n_reps(full=5, quick=1)
    log(f"== 3. watch latency, put -> file, -wait-min 0 ({reps} run(s) x {CHANGES} changes per N)")
    go = confd.binary()
    results: dict[str, Any] = {"reps": reps, "changes": CHANGES, "sizes": {}, "confd": go}
    with workdir("watch") as tmp:
        confdir = peers_confdir(tmp / "conf")
        with etcd_server(tmp) as etcd:
            for n in SIZES:
                load(etcd.endpoint, peers(n), clear=PEER_PREFIX)
                runs: list[dict[str, Any]] = []
                go_runs: list[dict[str, Any]] = []
                for rep in range(reps):
                    for who in ("confpy", "confd") if go else ("confpy",):
                        # confd's own seed: the same one would put values that confpy's run
                        # already left in etcd (and so in confd's first file).
                        seed = rep + (100 if who == "confd" else 0)
                        r = asyncio.run(
                            one_run(
                                etcd.endpoint, n, confdir, tmp / f"out-{who}-{n}-{rep}",
                                tmp / f"{who}-{n}-{rep}.log", CHANGES, seed=seed,
                                go=go if who == "confd" else None,
                            )
                        )  # fmt: skip
                        (runs if who == "confpy" else go_runs).append(r)
                        lat, ack = r["latency_s"], r["put_ack_s"]
                        log(
                            f"   N={n:>6} run {rep + 1} {who:<6}: p50 {ms(lat['p50']):>9}"
                            f"  p99 {ms(lat['p99']):>9}"
                            f"  max {ms(lat['max']):>9}  (put ack p50 {ms(ack['p50'])})"
                            f"  cpu/change {ms(r['cpu_s_per_change'])}  startup {ms(r['startup_s'])}"
                            f"  RSS {mib(r['rss_bytes_end'])} (peak {mib(r['peak_rss_bytes'])})"
                        )
                entry = _entry(runs)
                results["sizes"][str(n)] = entry
                pooled = entry["pooled_latency_s"]
                log(
                    f"   N={n:>6} median of runs: p50 {ms(entry['median_run_p50_s'])}"
                    f"  p99 {ms(entry['median_run_p99_s'])};  pooled {pooled['n']}: p50 {ms(pooled['p50'])}"
                    f"  p99 {ms(pooled['p99'])}  max {ms(pooled['max'])}"
                )
                if go_runs:
                    g = results["sizes"][f"confd {n}"] = _entry(go_runs)
                    log(
                        f"   N={n:>6} confd, median of runs: p50 {ms(g['median_run_p50_s'])}"
                        f"  p99 {ms(g['median_run_p99_s'])}; confpy/confd: p50"
                        f" {confd.ratio(entry['median_run_p50_s'], g['median_run_p50_s'])},"
                        f" p99 {confd.ratio(entry['median_run_p99_s'], g['median_run_p99_s'])},"
                        " CPU/change"
                        f" {confd.ratio(entry['median_cpu_s_per_change'], g['median_cpu_s_per_change'])},"
                        f" RSS {confd.ratio(entry['median_rss_bytes'], g['median_rss_bytes'])}"
                    )
    if go is None:
        confd.say_recorded(
            "watch p99 N=1000 (-wait-min 0 for confpy)", "watch p99 N=10000", "watch RSS N=1000"
        )
    write_result(opts, "watch", results)
    return results


def _entry(runs: list[dict[str, Any]]) -> dict[str, Any]:
    pooled = summary([x for r in runs for x in r["latencies_s"]])
    return {
        "runs": runs,
        "pooled_latency_s": pooled,
        "median_run_p50_s": statistics.median(r["latency_s"]["p50"] for r in runs),
        "median_run_p99_s": statistics.median(r["latency_s"]["p99"] for r in runs),
        "median_put_ack_p50_s": statistics.median(r["put_ack_s"]["p50"] for r in runs),
        "median_rss_bytes": statistics.median(r["rss_bytes_end"] for r in runs),
        "median_peak_rss_bytes": statistics.median(r["peak_rss_bytes"] for r in runs),
        "median_startup_s": statistics.median(r["startup_s"] for r in runs),
        "median_cpu_s_per_change": statistics.median(r["cpu_s_per_change"] for r in runs),
    }
