"""7. A fleet on a real distributed engine: many confpy watchers on a 3-member etcd cluster.

A 3-member etcd cluster on loopback holds a Calico key set of 5,000 nodes laid out as
Calico recommends beyond ~100 nodes (``bench.data.reflected_cluster``: full mesh off,
3 in-cluster route reflectors, global peers to them, each reflector a node-specific
peer per client). 150 ``confpy -watch -sync-only`` watchers (the 3 reflectors and 147
clients spread over the node range; each its own ``-node-name`` and ``-dest-root``, the
repo's conf.d as ``-confdir``, no reload: ``-sync-only``) follow it, first connected to
the members directly (watcher i lists member i mod 3 first, then the others, for
failover), then all through one ``etcd grpc-proxy start`` in front of the 3 members.

Per mode: startup of the fleet (launch → every watcher's bird.cfg and bird_aggr.cfg
written); RSS and PSS per watcher; each member's ``/metrics`` watcher and watch-stream
counts and the proxy's; idle CPU of the members, the proxy and the fleet; then, per
repetition, a new global peer (one put): time until every watcher's bird.cfg holds it
(p50/p99/max over the watchers) with each member's, the proxy's and the fleet's CPU for
it; a new IPAM block of one node: time until its bird_aggr.cfg holds it, and every
other watcher's file left alone (inotify on all their directories); and last, the
member that holds most watchers is killed (SIGKILL) and a new global peer is put
through a surviving member as soon as one accepts it: time from the kill until every
watcher's bird.cfg holds it, and how many watchers logged a lost connection. The killed
member is started again (same data dir) before the next mode.

``--quick``: 500 nodes, 10 watchers. ``CLUSTER_NODES`` / ``CLUSTER_WATCHERS`` in the
environment override the sizes (development).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench import common
from bench.common import (
    Daemon,
    MiB,
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
from bench.data import (
    BIRD_CONFIG_DIR,
    BIRD_FILES,
    block_key,
    global_peer_key,
    node_name,
    peer_json,
    reflected_cluster,
)
from bench.etcd import KV, GrpcProxy, etcd_cluster, grpc_proxy, metrics
from bench.inotify import FileWatch, holding
from tests.support.etcd_server import EtcdCluster, EtcdServer

nan = float("nan")
FULL = (5_000, 150)  # nodes, watchers
QUICK = (500, 10)
REFLECTORS = 3
WAIT_MIN = "100ms"  # confpy's default quiet window
WATCH_SERIES = ("etcd_debugging_mvcc_watcher_total", "etcd_debugging_mvcc_watch_stream_total")
PROXY_SERIES = "etcd_grpc_proxy_"
# etcd's own defaults (the tests' 50/500 ms make a member starved by 150 watchers on
# 2 cores lose its leader again and again while they start).
HEARTBEAT_MS, ELECTION_MS = 100, 1000
# The longest a change may take to reach every watcher; those it has not reached by
# then are reported as late (and the benchmark goes on).
CHANGE_TIMEOUT = 30.0
# Per watcher, a generous bound on its start-up (2 shared cores).
STARTUP_S_PER_WATCHER = 3.0


def watcher_nodes(nodes: int, watchers: int) -> list[int]:
    """The reflectors, then clients spread evenly over the rest of the node range."""
    rr = list(range(1, min(REFLECTORS, watchers) + 1))
    clients = watchers - len(rr)
    first = REFLECTORS + 1
    span = nodes - first + 1
    return rr + [first + (k * span) // clients for k in range(clients)] if clients > 0 else rr


async def wait_fleet(
    watch: FileWatch,
    fleet: Fleet,
    files: dict[int, Path],
    needle: str,
    timeout: float,
    *,
    late_ok: bool = False,
) -> tuple[dict[Path, float], list[int]]:
    """When each of ``files`` held ``needle``, and the nodes whose file did not within
    ``timeout`` (an error unless ``late_ok``; logged with what those watchers do)."""
    done = await watch.wait_all(list(files.values()), holding(needle), timeout, partial=True)
    late = [i for i, f in files.items() if f not in done]
    if late:
        cpu0 = {i: cpu_ns(fleet.procs[i].pid) for i in late[:5]}
        await asyncio.sleep(1.0)
        detail = "; ".join(
            f"{node_name(i)} (alive {fleet.procs[i].alive()},"
            f" CPU {(cpu_ns(fleet.procs[i].pid) - c) / 1e7:.0f} % of a core):"
            f" log {fleet.procs[i].log_text()[-300:]!r}"
            for i, c in cpu0.items()
        )
        text = f"{len(late)} of {len(files)} files lack {needle!r} after {timeout:g} s: {detail}"
        if not late_ok:
            raise TimeoutError(text)
        log(f"   !! {text}")
    return done, late


class Fleet:
    """The watchers of one mode, their files and their logs."""

    def __init__(self, tmp: Path, nodes: list[int], endpoints_of: Any) -> None:
        self.nodes = nodes
        self.out = {i: tmp / "out" / node_name(i) for i in nodes}
        self.dir = {i: self.out[i] / BIRD_CONFIG_DIR.relative_to("/") for i in nodes}
        self.bird = {i: self.dir[i] / "bird.cfg" for i in nodes}
        self.aggr = {i: self.dir[i] / "bird_aggr.cfg" for i in nodes}
        self.all_files = [self.dir[i] / f for i in nodes for f in BIRD_FILES]
        env = confpy_env({"BIRD_FLAVOR": "stock"})
        self.procs = {
            i: Daemon(
                confpy_cmd(
                    "-watch", "-sync-only", f"-wait-min={WAIT_MIN}",
                    *(f"-node={e}" for e in endpoints_of(k)),
                    f"-confdir={common.SOURCE.root}",
                    f"-dest-root={self.out[i]}", f"-node-name={node_name(i)}",
                    "-log-level=warning",
                ),
                env,
                tmp / "logs" / f"{node_name(i)}.log",
            )
            for k, i in enumerate(nodes)
        }  # fmt: skip

    @property
    def daemons(self) -> list[Daemon]:
        return list(self.procs.values())

    def cpu_ns(self, only: Sequence[int] | None = None) -> int:
        return sum(cpu_ns(self.procs[i].pid) for i in (self.nodes if only is None else only))

    def lost_connections(self) -> int:
        return sum(d.log_text().count("lost connection to etcd") for d in self.daemons)

    def logs_mentioning(self, text: str) -> int:
        """How many watchers' logs mention ``text``."""
        return sum(text in d.log_text() for d in self.daemons)


def _watch_counts(cluster: EtcdCluster) -> list[dict[str, Any]]:
    out = []
    for m in cluster.members:
        entry: dict[str, Any] = {"member": m.name, "running": m.running}
        if m.running:
            got = metrics(f"{m.endpoint}/metrics")
            entry.update({s: got.get(s) for s in WATCH_SERIES})
        out.append(entry)
    return out


def _proxy_counts(proxy: GrpcProxy | None) -> dict[str, Any] | None:
    if proxy is None:
        return None
    got = metrics(proxy.metrics_url)
    return {s: v for s, v in got.items() if s.startswith(PROXY_SERIES) and "_bucket" not in s}


def _etcd_cpu(cluster: EtcdCluster, proxy: GrpcProxy | None) -> dict[str, int]:
    out = {m.name: cpu_ns(m.pid) for m in cluster.members if m.pid is not None and m.running}
    if proxy is not None:
        out["proxy"] = cpu_ns(proxy.pid)
    return out


def _delta_s(after: dict[str, int], before: dict[str, int]) -> dict[str, float]:
    return {k: (after[k] - before.get(k, after[k])) / 1e9 for k in after}


async def _put_when_accepted(members: list[EtcdServer], key: str, value: str, timeout: float) -> float:
    """Put through the first surviving member that accepts it (an election may be under
    way); returns the time of the acknowledgement."""
    deadline = time.perf_counter() + timeout
    last: Exception | None = None
    while time.perf_counter() < deadline:
        for m in members:
            try:
                async with KV(m.endpoint) as kv:
                    # Short attempts: a member without a leader holds a put for seconds.
                    await asyncio.wait_for(kv.put(key, value), 0.3)
                return time.perf_counter()
            except Exception as e:  # no leader yet, or the member is the one going away
                last = e
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no member accepted the put within {timeout:g} s: {last}")


async def run_mode(
    mode: str,
    cluster: EtcdCluster,
    proxy: GrpcProxy | None,
    tmp: Path,
    nodes: int,
    chosen: list[int],
    reps: int,
    peer_base: int,
    block_base: int,
) -> dict[str, Any]:
    eps = cluster.endpoints

    def endpoints_of(k: int) -> list[str]:
        if proxy is not None:
            return [proxy.endpoint]
        return [eps[(k + j) % len(eps)] for j in range(len(eps))]

    fleet = Fleet(tmp / mode, chosen, endpoints_of)
    watch = FileWatch(fleet.all_files)
    watch.start()
    result: dict[str, Any] = {"mode": mode, "watchers": len(chosen), "nodes": nodes}
    writer = cluster.members[0]
    try:
        t_launch = time.perf_counter()
        with daemons(fleet.daemons):
            bound = 60 + STARTUP_S_PER_WATCHER * len(chosen)
            ready_b, _ = await wait_fleet(watch, fleet, fleet.bird, "Global_192_0_2_1", bound)
            ready_a, _ = await wait_fleet(watch, fleet, fleet.aggr, "protocol static", bound)
            starts = [max(ready_b[fleet.bird[i]], ready_a[fleet.aggr[i]]) - t_launch for i in chosen]
            result["startup_s"] = summary(starts)
            log(
                f"   [{mode}] startup of {len(chosen)} watchers: median {ms(statistics.median(starts))},"
                f" all written after {max(starts):.1f} s"
            )
            await asyncio.sleep(3.0)

            # -- memory, watch counts, idle CPU
            rss = [d.rss() for d in fleet.daemons]
            pss: list[int] = []
            for d in fleet.daemons:
                with contextlib.suppress(psutil.Error):
                    assert d.ps is not None
                    pss.append(int(d.ps.memory_full_info().pss))
            result["memory"] = {
                "rss_bytes": summary(rss),
                "pss_bytes": summary(pss),
                "rss_bytes_total": sum(rss),
                "pss_bytes_total": sum(pss),
                "rss_reflectors_bytes": [fleet.procs[i].rss() for i in chosen[:REFLECTORS]],
            }
            result["watch_counts"] = _watch_counts(cluster)
            result["proxy_counts"] = _proxy_counts(proxy)
            e0, f0, t0 = _etcd_cpu(cluster, proxy), fleet.cpu_ns(), time.perf_counter()
            await asyncio.sleep(10.0)
            window = time.perf_counter() - t0
            idle = {k: 100.0 * v / window for k, v in _delta_s(_etcd_cpu(cluster, proxy), e0).items()}
            result["idle"] = {
                "window_s": window,
                "cpu_percent": idle,
                "fleet_cpu_percent": 100.0 * (fleet.cpu_ns() - f0) / 1e9 / window,
            }
            counts = ", ".join(
                f"{w['member']} {w.get(WATCH_SERIES[0])}/{w.get(WATCH_SERIES[1])}"
                for w in result["watch_counts"]
            )
            log(
                f"   [{mode}] RSS per watcher p50 {mib(statistics.median(rss))} (max {mib(max(rss))}),"
                f" PSS p50 {mib(statistics.median(pss))}, PSS of all {mib(sum(pss))};"
                f" etcd watchers/streams: {counts}"
                + (f"; proxy {result['proxy_counts']}" if proxy is not None else "")
            )
            log(
                f"   [{mode}] idle CPU % of a core: "
                + ", ".join(f"{k} {v:.2f}" for k, v in idle.items())
                + f", fleet {result['idle']['fleet_cpu_percent']:.2f}"
            )

            # -- global change: a new global peer reaches every bird.cfg
            changes: list[dict[str, Any]] = []
            bird_files = list(fleet.bird.values())
            async with KV(writer.endpoint) as kv:
                for rep in range(reps):
                    ip = f"192.0.2.{peer_base + rep}"
                    e0, f0 = _etcd_cpu(cluster, proxy), fleet.cpu_ns()
                    t0 = time.perf_counter()
                    await kv.put(global_peer_key(ip), peer_json(ip, "64700"))
                    t_ack = time.perf_counter()
                    done, late = await wait_fleet(
                        watch,
                        fleet,
                        fleet.bird,
                        f"Global_{ip.replace('.', '_')}",
                        CHANGE_TIMEOUT,
                        late_ok=True,
                    )
                    await asyncio.sleep(0.3)  # the last renders' CPU lands in the counters
                    lat = [done[f] - t0 for f in bird_files if f in done]
                    c: dict[str, Any] = {
                        "peer": ip,
                        "late": [node_name(i) for i in late],
                        "latency_s": summary(lat),
                        "latencies_s": lat,
                        "put_ack_s": t_ack - t0,
                        "cpu_s": _delta_s(_etcd_cpu(cluster, proxy), e0),
                        "fleet_cpu_s": (fleet.cpu_ns() - f0) / 1e9,
                    }
                    changes.append(c)
                    s = c["latency_s"]
                    log(
                        f"   [{mode}] global peer {ip:<13} {len(lat)} of {len(chosen)} bird.cfg:"
                        f" p50 {ms(s.get('p50', nan)):>9}  p99 {ms(s.get('p99', nan)):>9}"
                        f"  max {ms(s.get('max', nan)):>9}; CPU "
                        + ", ".join(f"{k} {ms(v)}" for k, v in c["cpu_s"].items())
                        + f", fleet {c['fleet_cpu_s']:.2f} s"
                    )
                    await asyncio.sleep(1.0)
            result["global_change"] = {
                "changes": changes,
                "late_total": sum(len(c["late"]) for c in changes),
                "median_p50_s": statistics.median(c["latency_s"].get("p50", nan) for c in changes),
                "median_p99_s": statistics.median(c["latency_s"].get("p99", nan) for c in changes),
                "median_max_s": statistics.median(c["latency_s"].get("max", nan) for c in changes),
                "pooled_s": summary([x for c in changes for x in c["latencies_s"]]),
                "fleet_cpu_s_median": statistics.median(c["fleet_cpu_s"] for c in changes),
            }

            # -- per-node change: a new block of one client reaches only that client
            clients = chosen[REFLECTORS:] or chosen
            target = clients[len(clients) // 2]
            others = [i for i in chosen if i != target]
            cidr = f"10.255.{block_base}.0/26"
            events0 = len(watch.events)
            f0, o0 = fleet.cpu_ns([target]), fleet.cpu_ns(others)
            t0 = time.perf_counter()
            async with KV(writer.endpoint) as kv:
                await kv.put(block_key(node_name(target), cidr), '{"state":"confirmed","deleted":false}')
            got, late = await wait_fleet(
                watch, fleet, {target: fleet.aggr[target]}, f"route {cidr} blackhole", CHANGE_TIMEOUT,
                late_ok=True,
            )  # fmt: skip
            seen = got.get(fleet.aggr[target], nan)
            await asyncio.sleep(2.0)  # past the quiet window and a render, for any stray write
            changed = sorted({str(p) for _, p in watch.events[events0:]})
            result["node_change"] = {
                "node": node_name(target),
                "cidr": cidr,
                "latency_s": seen - t0,
                "late": bool(late),
                "files_replaced": changed,
                "only_its_own": changed == [str(fleet.aggr[target])],
                "its_cpu_s": (fleet.cpu_ns([target]) - f0) / 1e9,
                "others_cpu_s": (fleet.cpu_ns(others) - o0) / 1e9,
                "others_window_s": time.perf_counter() - t0,
            }
            nc = result["node_change"]
            log(
                f"   [{mode}] block {cidr} of {nc['node']}: its bird_aggr.cfg after {ms(nc['latency_s'])};"
                f" files replaced in the fleet: {len(changed)}"
                f" ({'only its own' if nc['only_its_own'] else changed[:5]});"
                f" its CPU {ms(nc['its_cpu_s'])}, all {len(others)} others {ms(nc['others_cpu_s'])}"
                f" over {nc['others_window_s']:.1f} s"
            )

            # -- the member that most watchers use is killed
            counts_now = _watch_counts(cluster)
            victim_i = max(
                range(len(cluster.members)),
                key=lambda j: (
                    counts_now[j].get(WATCH_SERIES[0]) or 0,
                    counts_now[j].get(WATCH_SERIES[1]) or 0,
                    -j,
                ),
            )
            victim = cluster.members[victim_i]
            leader_ids = {m.status().get("leader") for m in cluster.members if m.running}
            was_leader = victim.status()["header"]["member_id"] in leader_ids
            survivors = [m for m in cluster.members if m is not victim]
            ip = f"192.0.2.{peer_base + reps}"
            lost0 = fleet.lost_connections()
            e0, f0 = _etcd_cpu(cluster, proxy), fleet.cpu_ns()
            t_kill = time.perf_counter()
            victim.kill()
            t_ack = await _put_when_accepted(survivors, global_peer_key(ip), peer_json(ip, "64700"), 30)
            done, late = await wait_fleet(
                watch, fleet, fleet.bird, f"Global_{ip.replace('.', '_')}", CHANGE_TIMEOUT, late_ok=True
            )
            await asyncio.sleep(1.0)
            lat = [done[f] - t_kill for f in bird_files if f in done]
            after_ack = [done[f] - t_ack for f in bird_files if f in done]
            cpu_after = {k: v for k, v in _delta_s(_etcd_cpu(cluster, proxy), e0).items() if k != victim.name}
            result["member_killed"] = {
                "member": victim.name,
                "was_leader": was_leader,
                "late": [node_name(i) for i in late],
                "watchers_on_it": counts_now[victim_i].get(WATCH_SERIES[0]),
                "watch_streams_on_it": counts_now[victim_i].get(WATCH_SERIES[1]),
                "put_accepted_after_kill_s": t_ack - t_kill,
                "from_kill_s": summary(lat),
                "from_put_s": summary(after_ack),
                "watchers_that_lost_a_connection": fleet.lost_connections() - lost0,
                "cpu_s": cpu_after,
                "fleet_cpu_s": (fleet.cpu_ns() - f0) / 1e9,
                "watch_counts_after": _watch_counts(cluster),
                "alive": sum(d.alive() for d in fleet.daemons),
            }
            mk = result["member_killed"]
            s = mk["from_kill_s"]
            log(
                f"   [{mode}] killed {victim.name}{' (the leader)' if was_leader else ''},"
                f" {mk['watchers_on_it']:g} watchers in {mk['watch_streams_on_it']:g} streams on it:"
                f" put accepted after"
                f" {ms(mk['put_accepted_after_kill_s'])}; {len(lat)} of {len(chosen)} bird.cfg hold it:"
                f" p50 {ms(s.get('p50', nan))}  p99 {ms(s.get('p99', nan))}  max {ms(s.get('max', nan))}"
                f" after the kill;"
                f" {mk['watchers_that_lost_a_connection']} watchers logged a lost connection;"
                f" {mk['alive']}/{len(chosen)} alive"
            )
            victim.start(timeout=30)
            cluster.wait_leader(30)
            dead = [i for i, d in fleet.procs.items() if not d.alive()]
            if dead:
                raise RuntimeError(f"{len(dead)} watchers exited early: {dead[:5]}")
        result["peak_rss_bytes"] = summary([d.peak_rss for d in fleet.daemons])
        # Over the whole mode: watchers that lost their connection at least once, and
        # those that a server sent away for pinging too often (gRPC keepalive policy).
        result["watchers_logging"] = {
            "lost connection": fleet.logs_mentioning("lost connection to etcd"),
            "too_many_pings": fleet.logs_mentioning("too_many_pings"),
        }
        log(f"   [{mode}] watchers whose log mentions: {result['watchers_logging']}")
    finally:
        watch.close()
    return result


def run(opts: Options) -> dict[str, Any]:
    nodes, watchers = QUICK if opts.quick else FULL
    nodes = int(os.environ.get("CLUSTER_NODES", nodes))
    watchers = int(os.environ.get("CLUSTER_WATCHERS", watchers))
    reps = opts.n_reps(full=5, quick=2)
    chosen = watcher_nodes(nodes, watchers)
    need = watchers * 90 * MiB + 2 * 1024 * MiB  # measured: ~78 MiB RSS, ~56 MiB PSS each at 5,000 nodes
    avail = psutil.virtual_memory().available
    if avail < need:
        raise RuntimeError(
            f"{mib(avail)} available, {mib(need)} wanted for {watchers} watchers: fewer watchers"
        )
    log(
        f"== 7. cluster: 3 etcd members, {nodes} nodes ({REFLECTORS} route reflectors, mesh off),"
        f" {len(chosen)} watchers, direct then through grpc-proxy; {reps} global changes per mode"
    )
    data = reflected_cluster(nodes, REFLECTORS)
    result: dict[str, Any] = {
        "nodes": nodes,
        "watchers": len(chosen),
        "watcher_nodes": chosen,
        "reflectors": REFLECTORS,
        "keys": len(data),
        "host_keys": sum(k.startswith("/calico/bgp/v1/host/") for k in data),
        "reps": reps,
        "wait_min": WAIT_MIN,
        "modes": {},
    }
    timers = {"heartbeat_ms": HEARTBEAT_MS, "election_ms": ELECTION_MS}
    result["etcd_timers_ms"] = timers
    with (
        workdir("cluster") as tmp,
        etcd_cluster(tmp, heartbeat_ms=HEARTBEAT_MS, election_ms=ELECTION_MS) as cluster,
    ):
        t0 = time.perf_counter()
        asyncio.run(_load(cluster.members[0].endpoint, data))
        log(f"   loaded {len(data)} keys in {time.perf_counter() - t0:.1f} s")
        result["modes"]["direct"] = asyncio.run(
            run_mode("direct", cluster, None, tmp, nodes, chosen, reps, peer_base=10, block_base=0)
        )
        # The proxy's defaults: its 1.5 MiB --max-send-bytes lets the 4.3 MiB first read of
        # /calico/bgp/v1/host at 5,000 nodes through (checked).
        with grpc_proxy(tmp / "proxy", cluster.endpoints) as proxy:
            result["modes"]["proxy"] = asyncio.run(
                run_mode(
                    "proxy", cluster, proxy, tmp, nodes, chosen, reps, peer_base=10 + reps + 1, block_base=1
                )
            )
    for mode, r in result["modes"].items():
        g = r["global_change"]
        log(
            f"   {mode:<6} global peer → all bird.cfg, median over {reps}: p50 {ms(g['median_p50_s'])}"
            f"  p99 {ms(g['median_p99_s'])}  max {ms(g['median_max_s'])}"
        )
    write_result(opts, "cluster", result)
    return result


async def _load(endpoint: str, data: dict[str, str]) -> None:
    async with KV(endpoint) as kv:
        await kv.put_many(data)
