"""The six BIRD files rendered in-process (no interpreter start, no etcd): where the
render time of a large cluster goes, per file, and how long ``bird -p`` takes on them.

Cases: a 1,000-node cluster (node1's bird.cfg / bird6.cfg hold 999 mesh sessions each),
and node1 holding 10,000 IPv4 blocks (bird_aggr.cfg). BIRD_FLAVOR=stock.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Options, log, write_result
from bench.data import cluster, node_name
from tests.support.birdset import BirdSet, bird_check

CASES: dict[str, tuple[int, int]] = {"1,000 nodes": (1_000, 1), "10,000 blocks on node1": (100, 10_000)}


def run(opts: Options) -> dict[str, Any]:
    reps = opts.n_reps(full=7, quick=3)
    log(f"== render: the six BIRD files in-process ({reps} runs each)")
    os.environ["BIRD_FLAVOR"] = "stock"
    birdset = BirdSet(REPO, node_name(1))
    results: dict[str, Any] = {"reps": reps, "cases": {}}
    for case, (nodes, blocks) in CASES.items():
        keys = cluster(nodes, blocks_on_node1=blocks)
        per_file: dict[str, list[float]] = {}
        files: dict[str, str] = {}
        for _ in range(reps):
            for name, (r, view) in birdset.views(keys).items():
                start = time.perf_counter()
                files[name] = birdset.renderer.render(r.src, view, birdset.node_name)
                per_file.setdefault(name, []).append(time.perf_counter() - start)
        medians = {name: statistics.median(v) * 1e3 for name, v in per_file.items()}
        checks: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for daemon in ("bird", "bird6"):
                start = time.perf_counter()
                ok, out = bird_check(files, daemon, Path(tmp) / daemon)
                checks[daemon] = (time.perf_counter() - start) * 1e3
                if not ok:
                    raise RuntimeError(f"bird -p rejected the {case} set: {out}")
        total = sum(medians.values())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        slowest = ", ".join(f"{n} {ms:.1f} ms" for n, ms in sorted(medians.items(), key=lambda x: -x[1])[:2])
        log(
            f"   {case:24s} six files {total:6.1f} ms ({slowest});  bird -p {checks['bird']:.0f} ms, "
            f"bird6 -p {checks['bird6']:.0f} ms;  peak RSS {peak:.0f} MiB"
        )
        results["cases"][case] = {"keys": len(keys), "render_ms": medians, "bird_p_ms": checks}
    write_result(opts, "render", results)
    return results
