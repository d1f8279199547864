"""``python -m bench summary``: the latest results against issue 8's targets, as Markdown.

Reads bench/results/<name>-latest.json, prints the table, writes
bench/results/summary-latest.md (the table in bench/README.md is a copy of one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import MiB, Options, log

Doc = dict[str, Any]


def _load(results: Path, name: str) -> Doc | None:
    try:
        doc: Doc = json.loads((results / f"{name}-latest.json").read_text())
    except (OSError, ValueError):
        return None
    return None if "error" in doc else doc


def _get(doc: Doc | None, *path: str) -> Any:
    node: Any = doc
    for p in path:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v * 1e3:.0f} ms" if v >= 0.1 else f"{v * 1e3:.1f} ms"


def _mib(v: Any) -> str:
    return "—" if v is None else f"{v / MiB:.1f} MiB"


def _pct(v: Any) -> str:
    return "—" if v is None else f"{v:.2f} %"


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:g}"


# (figure, confd, target text, target test, formatter, value getter)
Row = tuple[
    str, str, str, Callable[[Any], bool], Callable[[Any], str], Callable[[dict[str, Doc | None]], Any]
]

ROWS: list[Row] = [
    ("onetime, N=10,000, wall (p50)", "≈ 205 ms", "≤ 205 ms", lambda v: v <= 0.205, _ms,
     lambda r: _get(r["onetime"], "cases", "etcd N=10000 fresh", "wall_s", "p50")),
    ("onetime, N=10,000, peak RSS", "≈ 38 MiB", "≤ 60 MiB", lambda v: v <= 60 * MiB, _mib,
     lambda r: _get(r["onetime"], "cases", "etcd N=10000 fresh", "peak_rss_bytes_median")),
    ("watch p99, N=1,000", "≈ 40 ms", "≤ 15 ms", lambda v: v <= 0.015, _ms,
     lambda r: _get(r["watch"], "sizes", "1000", "median_run_p99_s")),
    ("watch p99, N=10,000", "≈ 220 ms", "≤ 60 ms", lambda v: v <= 0.060, _ms,
     lambda r: _get(r["watch"], "sizes", "10000", "median_run_p99_s")),
    ("reloads per 500-put burst (max of bursts)", "19–25", "≤ 3", lambda v: v <= 3, _num,
     lambda r: max(
         (m["reloads_max"] for m in (_get(r["burst"], "modes") or {}).values()), default=None
     )),
    ("idle CPU, -interval 1, N=10,000", "≈ 16 %", "≤ 1 %", lambda v: v <= 1.0, _pct,
     lambda r: _get(r["idle"], "cases", "N=10000 -watch -interval 1", "cpu_percent")),
    ("idle RSS, N=1,000", "≈ 30 MiB", "≤ 50 MiB", lambda v: v <= 50 * MiB, _mib,
     lambda r: _get(r["idle"], "cases", "N=1000 -watch -interval 1", "rss_bytes_end")),
    ("daemon CPU, 20,000 puts to /calico keys no resource reads (worse of txn / separate)", "n/a",
     "≤ 0.05 s", lambda v: v <= 0.05, _ms,
     lambda r: max(
         (m["confpy_cpu_s"] for m in (_get(r["idle"], "unread_puts", "modes") or {}).values()), default=None
     )),
]  # fmt: skip

# Figures without a target: (figure, formatter, getter)
OTHER: list[tuple[str, Callable[[Any], str], Callable[[dict[str, Doc | None]], Any]]] = [
    ("onetime N=100 / 1,000 wall (etcd)", str, lambda r: " / ".join(
        _ms(_get(r["onetime"], "cases", f"etcd N={n} fresh", "wall_s", "p50")) for n in (100, 1000))),
    ("onetime N=10,000 wall, in sync (nothing written)", _ms,
     lambda r: _get(r["onetime"], "cases", "etcd N=10000 in sync", "wall_s", "p50")),
    ("onetime N=10,000 wall, file store .json / .yaml", str, lambda r: " / ".join(
        _ms(_get(r["onetime"], "cases", f"file{s} N=10000 fresh", "wall_s", "p50"))
        for s in (".json", ".yaml"))),
    ("interpreter floor: python -c pass / confpy --version", str, lambda r: " / ".join(
        _ms(_get(r["onetime"], "cases", c, "wall_s", "p50"))
        for c in ("python -c pass", "confpy --version"))),
    ("BIRD onetime sync-only, 10 / 100 / 1,000 nodes", str, lambda r: " / ".join(
        _ms(_get(r["bird"], "cases", c, "sync-only", "wall_s", "p50"))
        for c in ("10 nodes", "100 nodes", "1,000 nodes"))),
    ("BIRD onetime checked (bird -p), 10 / 100 / 1,000 nodes", str, lambda r: " / ".join(
        _ms(_get(r["bird"], "cases", c, "checked", "wall_s", "p50"))
        for c in ("10 nodes", "100 nodes", "1,000 nodes"))),
    ("BIRD onetime, 10,000 blocks on the node: sync-only / checked", str, lambda r: " / ".join(
        _ms(_get(r["bird"], "cases", "100 nodes, 10,000 blocks on node1", v, "wall_s", "p50"))
        for v in ("sync-only", "checked"))),
    ("BIRD onetime peak RSS, 1,000 nodes / 10,000 blocks", str, lambda r: " / ".join(
        _mib(_get(r["bird"], "cases", c, "sync-only", "peak_rss_bytes_median"))
        for c in ("1,000 nodes", "100 nodes, 10,000 blocks on node1"))),
    ("watch p50, N=1,000 / 10,000", str, lambda r: " / ".join(
        _ms(_get(r["watch"], "sizes", n, "median_run_p50_s")) for n in ("1000", "10000"))),
    ("watch: etcd put round trip alone (p50)", _ms,
     lambda r: _get(r["watch"], "sizes", "1000", "median_put_ack_p50_s")),
    ("watch: confpy CPU per change, N=1,000 / 10,000", str, lambda r: " / ".join(
        _ms(_get(r["watch"], "sizes", n, "median_cpu_s_per_change")) for n in ("1000", "10000"))),
    ("watch RSS, N=1,000 / 10,000 (after 50 changes)", str, lambda r: " / ".join(
        _mib(_get(r["watch"], "sizes", n, "median_rss_bytes")) for n in ("1000", "10000"))),
    ("burst: renders per burst, sequential / pipelined / paced", str, lambda r: " / ".join(
        _num(_get(r["burst"], "modes", m, "renders_median")) for m in ("sequential", "pipelined", "paced"))),
    ("burst: last put → final file (p50), sequential / pipelined / paced", str, lambda r: " / ".join(
        _ms(_get(r["burst"], "modes", m, "final_after_last_put_s", "p50"))
        for m in ("sequential", "pipelined", "paced"))),
    ("idle CPU, -interval 1, N=1,000 / plain -watch N=10,000", str, lambda r: " / ".join(
        _pct(_get(r["idle"], "cases", c, "cpu_percent"))
        for c in ("N=1000 -watch -interval 1", "N=10000 -watch"))),
    ("idle RSS, N=10,000", _mib,
     lambda r: _get(r["idle"], "cases", "N=10000 -watch -interval 1", "rss_bytes_end")),
    ("fleet: startup of 50 watchers (all have written)", _ms, lambda r: _get(r["fleet"], "startup", "all_s")),
    ("fleet: pool added → all 50 nodes, p50 / p99 / max", str, lambda r: " / ".join(
        _ms(_get(r["fleet"], "pool_added", k)) for k in ("median_p50_s", "median_p99_s", "median_max_s"))),
    ("fleet: etcd CPU per pool added / fleet CPU per pool added", str, lambda r: " / ".join(
        _ms(_get(r["fleet"], "pool_added", k)) for k in ("etcd_cpu_s_median", "fleet_cpu_s_median"))),
    ("fleet: RSS per watcher / PSS of all 50", str, lambda r: " / ".join(
        (_mib(_get(r["fleet"], "idle", "rss_bytes_median")),
         _mib(_get(r["fleet"], "idle", "pss_bytes_total"))))),
    ("fleet: idle CPU of all 50 watchers", _pct, lambda r: _get(r["fleet"], "idle", "fleet_cpu_percent")),
]  # fmt: skip


def table(results: Path) -> str:
    docs = {n: _load(results, n) for n in ("onetime", "bird", "watch", "burst", "idle", "fleet")}
    machine = next((d["machine"] for d in docs.values() if d), None)
    lines = []
    if machine:
        lines.append(
            f"Measured {machine['date'][:10]} on {machine['nproc']} cores ({machine['cpu']}),"
            f" {machine['memory_total_bytes'] / 2**30:.0f} GiB, Python {machine['python']},"
            f" {machine['etcd']}, confpy {machine.get('confpy') or machine['git']}."
        )
        lines.append("")
    lines += ["| figure | confd | target | confpy | |", "|---|---|---|---|---|"]
    for name, confd, target, ok, fmt, get in ROWS:
        try:
            v = get(docs)
        except (TypeError, KeyError):
            v = None
        verdict = "—" if v is None else ("✅ met" if ok(v) else "❌ not met")
        lines.append(f"| {name} | {confd} | {target} | {fmt(v) if v is not None else '—'} | {verdict} |")
    lines += ["", "| other figure | confpy |", "|---|---|"]
    for name, fmt, get in OTHER:
        try:
            v = get(docs)
        except (TypeError, KeyError):
            v = None
        lines.append(f"| {name} | {fmt(v) if v is not None else '—'} |")
    return "\n".join(lines) + "\n"


def run(opts: Options) -> dict[str, Any]:
    text = table(opts.results)
    log("== summary (latest results)\n" + text)
    opts.results.mkdir(parents=True, exist_ok=True)
    (opts.results / "summary-latest.md").write_text(text)
    return {}
