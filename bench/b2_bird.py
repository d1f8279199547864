"""2. ``confpy -onetime`` of the six BIRD files (the repo's conf.d/ and templates/) from etcd.

Clusters of 10 / 100 / 1,000 nodes (node1's files: a full mesh of N-1 sessions per
family), and node1 holding 10,000 IPv4 blocks in a 100-node cluster. BIRD_FLAVOR=stock,
every destination under -dest-root, written fresh each run. Two variants:
"sync-only" (render + write), and "checked" (``bird -p -c`` / ``bird6 -p -c`` on the
staged unit, then the reload, replaced by ``true`` since no BIRD daemon runs here);
the checked variant runs only where ``bird`` is installed.
"""

from __future__ import annotations

import shutil
from typing import Any

from bench import common
from bench.b1_onetime import measure
from bench.common import Options, confpy_cmd, confpy_env, log, workdir, write_result
from bench.data import BIRD_CONFIG_DIR, BIRD_FILES, bird_confdir, cluster
from bench.etcd import etcd_server, load
from tests.support.bird_daemon import bird_binary

CASES: dict[str, tuple[int, int]] = {  # name: (nodes, IPv4 blocks on node1)
    "10 nodes": (10, 1),
    "100 nodes": (100, 1),
    "1,000 nodes": (1_000, 1),
    "100 nodes, 10,000 blocks on node1": (100, 10_000),
}


def bird_available() -> bool:
    return bird_binary("bird") is not None and bird_binary("bird6") is not None


def run(opts: Options) -> dict[str, Any]:
    reps = opts.n_reps(full=7, quick=3)
    checks = bird_available()
    log(
        f"== 2. onetime, the six BIRD files of node1 ({reps} runs each, after one warm-up; "
        f"bird -p checks {'on' if checks else 'skipped: bird not installed'})"
    )
    results: dict[str, Any] = {"reps": reps, "bird_checks": checks, "cases": {}}
    env = confpy_env({"BIRD_FLAVOR": "stock"})
    with workdir("bird") as tmp:
        checked_confdir = bird_confdir(tmp / "conf-checked")
        dest_root = tmp / "out"
        config_dir = dest_root / BIRD_CONFIG_DIR.relative_to("/")

        def fresh() -> None:
            shutil.rmtree(dest_root, ignore_errors=True)
            config_dir.mkdir(parents=True)

        def written() -> None:
            missing = [f for f in BIRD_FILES if not (config_dir / f).is_file()]
            if missing:
                raise RuntimeError(f"not written: {missing}")

        with etcd_server(tmp) as etcd:
            for case, (nodes, blocks) in CASES.items():
                data = cluster(nodes, blocks_on_node1=blocks)
                load(etcd.endpoint, data, clear="/calico")
                base = [
                    "-onetime",
                    f"-node={etcd.endpoint}",
                    f"-dest-root={dest_root}",
                    "-node-name=node1",
                    "-log-level=warning",
                ]
                entry: dict[str, Any] = {"nodes": nodes, "blocks_on_node1": blocks, "keys": len(data)}
                entry["sync-only"] = measure(
                    f"{case:<34} sync-only",
                    confpy_cmd(*base, f"-confdir={common.SOURCE.root}", "-sync-only"),
                    env,
                    reps,
                    fresh,
                    written,
                )
                entry["output_bytes"] = {f: (config_dir / f).stat().st_size for f in BIRD_FILES}
                if checks:
                    entry["checked"] = measure(
                        f"{case:<34} checked",
                        confpy_cmd(*base, f"-confdir={checked_confdir}"),
                        env,
                        reps,
                        fresh,
                        written,
                    )
                results["cases"][case] = entry
        results["note"] = (
            "checked = sync-only + bird -p -c and bird6 -p -c on the staged units + reload 'true'"
        )
    write_result(opts, "bird", results)
    return results
