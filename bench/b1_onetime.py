"""1. ``confpy -onetime``: one template iterating N peer keys, from etcd and from data files.

Wall time of the whole process (fork, interpreter start, imports, read, render, write,
exit) and its peak RSS, N = 100 / 1,000 / 10,000. "fresh": the destination does not
exist (render + stage + write); "in sync": it already holds the result (render +
compare, nothing written). Baselines: ``python -c pass`` and ``confpy --version``.
With ``CONFD_BIN``: Go confd on the same etcd data and the same template (bench/confd.py),
fresh and in sync, with the confpy/confd ratios.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import confd
from bench.common import (
    Measured,
    Options,
    confpy_cmd,
    confpy_env,
    log,
    mib,
    ms,
    run_measured,
    summary,
    workdir,
    write_result,
)
from bench.data import PEER_PREFIX, PEERS_DEST, peers, peers_confdir, write_data_file
from bench.etcd import etcd_server, load

SIZES = (100, 1_000, 10_000)


def measure(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    reps: int,
    before: Callable[[], None],
    check: Callable[[], None],
) -> dict[str, Any]:
    """One warm-up run (page cache, bytecode), then ``reps`` measured runs."""
    before()
    warm = run_measured(cmd, env)
    if warm.returncode != 0:
        raise RuntimeError(f"{name}: exited {warm.returncode}:\n{warm.stderr[-2000:]}")
    check()
    runs: list[Measured] = []
    for _ in range(reps):
        before()
        m = run_measured(cmd, env)
        if m.returncode != 0:
            raise RuntimeError(f"{name}: exited {m.returncode}:\n{m.stderr[-2000:]}")
        runs.append(m)
    wall = summary([r.wall for r in runs])
    rss = [r.max_rss for r in runs]
    result = {
        "wall_s": wall,
        "cpu_s_median": statistics.median(r.cpu for r in runs),
        "peak_rss_bytes_median": statistics.median(rss),
        "peak_rss_bytes_max": max(rss),
        "walls_s": [r.wall for r in runs],
    }
    log(
        f"   {name:<34} wall p50 {ms(wall['p50']):>10}  min {ms(wall['min']):>10}  max {ms(wall['max']):>10}"
        f"   peak RSS {mib(statistics.median(rss)):>9}"
    )
    return result


def run(opts: Options) -> dict[str, Any]:
    reps = opts.n_reps(full=9, quick=3)
    log(f"== 1. onetime, one template over N peer keys ({reps} runs each, after one warm-up)")
    results: dict[str, Any] = {"reps": reps, "cases": {}}
    env = confpy_env()
    with workdir("onetime") as tmp:
        confdir = peers_confdir(tmp / "conf")
        dest_root = tmp / "out"
        dest = dest_root / PEERS_DEST.relative_to("/")

        def fresh() -> None:
            shutil.rmtree(dest_root, ignore_errors=True)
            dest.parent.mkdir(parents=True)

        def keep() -> None:
            pass

        def lines_are(n: int) -> Callable[[], None]:
            def check() -> None:
                got = len(dest.read_text().splitlines()) - 1
                if got != n:
                    raise RuntimeError(f"expected {n} peer lines, got {got}")

            return check

        base = [f"-confdir={confdir}", f"-dest-root={dest_root}", "-node-name=bench", "-log-level=warning"]
        results["cases"]["python -c pass"] = measure(
            "baseline: python -c pass", [confpy_cmd()[0], "-c", "pass"], env, reps, keep, keep
        )
        results["cases"]["confpy --version"] = measure(
            "baseline: confpy --version", confpy_cmd("--version"), env, reps, keep, keep
        )
        go = confd.binary()
        go_dest = tmp / "confd-out" / "peers.conf"

        def go_fresh() -> None:
            go_dest.unlink(missing_ok=True)

        def go_lines_are(n: int) -> Callable[[], None]:
            def check() -> None:
                got = len(go_dest.read_text().splitlines()) - 1
                if got != n:
                    raise RuntimeError(f"confd: expected {n} peer lines, got {got}")

            return check

        results["confd"] = go
        with etcd_server(tmp) as etcd:
            for n in SIZES:
                data = peers(n)
                load(etcd.endpoint, data, clear=PEER_PREFIX)
                cmd = confpy_cmd("-onetime", f"-node={etcd.endpoint}", *base)
                results["cases"][f"etcd N={n} fresh"] = measure(
                    f"etcd   N={n:>6} fresh", cmd, env, reps, fresh, lines_are(n)
                )
                results["cases"][f"etcd N={n} in sync"] = measure(
                    f"etcd   N={n:>6} in sync", cmd, env, reps, keep, lines_are(n)
                )
                if go is not None:
                    confdir_go = confd.peers_confdir(tmp / "confd-conf", go_dest)
                    go_args = [f"-node={etcd.endpoint}", f"-confdir={confdir_go}", "-log-level=warning"]
                    go_cmd = confd.confd_cmd(go, "-onetime", *go_args)
                    for case, before in (("fresh", go_fresh), ("in sync", keep)):
                        r = results["cases"][f"confd etcd N={n} {case}"] = measure(
                            f"confd  N={n:>6} {case}", go_cmd, confd.confd_env(), reps, before,
                            go_lines_are(n),
                        )  # fmt: skip
                        mine = results["cases"][f"etcd N={n} {case}"]
                        log(
                            f"   {'':<6} N={n:>6} {case:<8} confpy/confd: wall"
                            f" {confd.ratio(mine['wall_s']['p50'], r['wall_s']['p50'])}, peak RSS"
                            f" {confd.ratio(mine['peak_rss_bytes_median'], r['peak_rss_bytes_median'])}"
                        )
                for suffix in (".json", ".yaml"):
                    path = write_data_file(tmp / f"peers-{n}{suffix}", data)
                    cmd = confpy_cmd("-onetime", f"-file={path}", *base)
                    results["cases"][f"file{suffix} N={n} fresh"] = measure(
                        f"file{suffix:<5} N={n:>6} fresh", cmd, env, reps, fresh, lines_are(n)
                    )
                    Path(path).unlink()
    if go is None:
        confd.say_recorded("onetime N=100 wall", "onetime N=1000 wall", "onetime N=10000 wall",
                           "onetime N=10000 peak RSS")  # fmt: skip
    write_result(opts, "onetime", results)
    return results
