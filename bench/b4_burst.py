"""4. Burst: 500 puts as fast as one client can, with the default quiet window.

``confpy -watch`` (default -wait-min 100ms / -wait-max 1s) follows N = 1,000 peer keys;
the resource's reload_cmd appends a line to a file. A burst puts new values into 500
distinct keys, either one after the other, each awaited (``sequential``: ~2 ms a put,
the burst lasts about a second, the way a controller writes), or all 500 in flight at
once on one gRPC channel (``pipelined``); and, to show -wait-max at work, one put every
5 ms for 2.5 s (``paced``: the keys are never quiet for 100 ms). Counted: renders (confpy's debug log),
file writes, reloads; timed: from the last put's acknowledgement until the file holds
every new value (its final state), and nothing more happens for wait-max + 1 s.
With ``CONFD_BIN``: Go confd ``-watch`` with the same reload command, the same bursts
(it has no quiet window: each change it sees is a render, a write and a reload).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench import confd
from bench.common import Daemon, Options, confpy_cmd, confpy_env, log, ms, summary, workdir, write_result
from bench.data import PEER_PREFIX, PEERS_DEST, peer_key, peer_line, peer_value, peers, peers_confdir
from bench.etcd import KV, etcd_server, load
from bench.inotify import FileWatch, holding

N = 1_000
PUTS = 500
WAIT_MAX = 1.0  # confpy's default -wait-max
PACE = 0.005  # "paced": one put every 5 ms, 2.5 s in all: never quiet for 100 ms
MODES = ("sequential", "pipelined", "paced")


def _count(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


async def bursts(
    endpoint: str, tmp: Path, mode: str, reps: int, go: str | None = None
) -> list[dict[str, Any]]:
    who = "confd" if go else "confpy"
    reload_log = tmp / f"reloads-{who}-{mode}.log"
    reload_cmd = f"echo reload >> {reload_log}"
    out = tmp / f"out-{who}-{mode}"
    if go is None:
        confdir = peers_confdir(tmp / f"conf-{mode}", reload_cmd=reload_cmd)
        dest = out / PEERS_DEST.relative_to("/")
        cmd = confpy_cmd(
            "-watch", f"-node={endpoint}", f"-confdir={confdir}", f"-dest-root={out}", "-node-name=bench",
            "-log-level=debug",
        )  # fmt: skip
        env = confpy_env()
    else:
        dest = out / "peers.conf"
        confdir = confd.peers_confdir(tmp / f"confd-conf-{mode}", dest, reload_cmd=reload_cmd)
        cmd = confd.confd_cmd(go, "-watch", f"-node={endpoint}", f"-confdir={confdir}", "-log-level=info")
        env = confd.confd_env()
    dest.parent.mkdir(parents=True, exist_ok=True)
    watch = FileWatch([dest])
    watch.start()
    daemon = Daemon(cmd, env, tmp / f"{who}-{mode}.log").start()
    results = []
    try:
        await watch.wait(dest, holding(peer_line(N - 1, 64512)), timeout=60)
        await asyncio.sleep(WAIT_MAX + 0.5)
        async with KV(endpoint) as kv:
            for rep in range(reps):
                log_before = len(daemon.log_text())
                reloads_before = _count(reload_log)
                events_before = len(watch.events)
                as_num = 70000 + rep * 1000
                keys = [(i * 2 + rep) % N for i in range(PUTS)]  # 500 distinct keys
                lines = [peer_line(k, as_num + j) for j, k in enumerate(keys)]
                t_first = time.perf_counter()
                if mode == "sequential":
                    for j, k in enumerate(keys):
                        await kv.put(peer_key(k), peer_value(k, as_num + j))
                elif mode == "paced":
                    for j, k in enumerate(keys):
                        await kv.put(peer_key(k), peer_value(k, as_num + j))
                        await asyncio.sleep(max(0.0, t_first + (j + 1) * PACE - time.perf_counter()))
                else:
                    await asyncio.gather(
                        *(kv.put(peer_key(k), peer_value(k, as_num + j)) for j, k in enumerate(keys))
                    )
                t_last = time.perf_counter()
                final = await watch.wait(dest, holding(*lines), timeout=30)
                # Then nothing more: no late render, write or reload.
                await asyncio.sleep(WAIT_MAX + 1.0)
                new_log = daemon.log_text()[log_before:]
                r: dict[str, Any] = {
                    "burst_s": t_last - t_first,
                    "final_after_last_put_s": final - t_last,
                    # confd logs no render as such: its renders are its writes or more.
                    "renders": None if go else new_log.count(" rendered peers "),
                    "writes": new_log.count("has been updated" if go else " wrote "),
                    "file_replacements": len(watch.events) - events_before,
                    "reloads": _count(reload_log) - reloads_before,
                }
                results.append(r)
                log(
                    f"   {who:<6} {mode:<10} burst {rep + 1}: 500 puts in {ms(r['burst_s']):>9};"
                    f" renders {r['renders']}, writes {r['writes']}, reloads {r['reloads']};"
                    f" final {ms(r['final_after_last_put_s'])} after the last put"
                )
        if not daemon.alive():
            raise RuntimeError(f"{who} exited:\n{daemon.log_text()[-2000:]}")
    finally:
        daemon.stop()
        watch.close()
    return results


def run(opts: Options) -> dict[str, Any]:
    reps = opts.n_reps(full=5, quick=2)
    log(f"== 4. burst of {PUTS} puts, default quiet window (100 ms / 1 s), N={N}, {reps} bursts per mode")
    go = confd.binary()
    results: dict[str, Any] = {"reps": reps, "puts": PUTS, "n": N, "modes": {}, "confd": go}
    with workdir("burst") as tmp, etcd_server(tmp) as etcd:
        for mode in MODES:
            for who in ("confpy", "confd") if go else ("confpy",):
                load(etcd.endpoint, peers(N), clear=PEER_PREFIX)  # every run starts from the same data
                runs = asyncio.run(bursts(etcd.endpoint, tmp, mode, reps, go if who == "confd" else None))
                entry = {
                    "bursts": runs,
                    "reloads_median": statistics.median(r["reloads"] for r in runs),
                    "reloads_max": max(r["reloads"] for r in runs),
                    "writes_median": statistics.median(r["writes"] for r in runs),
                    "renders_median": (
                        None if who == "confd" else statistics.median(r["renders"] for r in runs)
                    ),
                    "burst_s": summary([r["burst_s"] for r in runs]),
                    "final_after_last_put_s": summary([r["final_after_last_put_s"] for r in runs]),
                }
                results["modes"][mode if who == "confpy" else f"confd {mode}"] = entry
                log(
                    f"   {who:<6} {mode:<10} median: reloads {entry['reloads_median']:g}"
                    f" (max {entry['reloads_max']}), writes {entry['writes_median']:g}, final"
                    f" {ms(entry['final_after_last_put_s']['p50'])} after the last put"
                )
            if go:
                mine, theirs = results["modes"][mode], results["modes"][f"confd {mode}"]
                log(
                    f"   {mode:<10} confpy/confd: reloads {mine['reloads_median']:g}"
                    f" vs {theirs['reloads_median']:g}, final after the last put "
                    + confd.ratio(
                        mine["final_after_last_put_s"]["p50"], theirs["final_after_last_put_s"]["p50"]
                    )
                )
    if go is None:
        confd.say_recorded("reloads per 500-put burst")
    write_result(opts, "burst", results)
    return results
