"""``python -m bench [all|onetime|bird|watch|burst|idle|fleet|cluster|profile ...] [--quick] [--reps N]``."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench.common import RESULTS, Options, log, machine_info, use_revision, write_result

BENCHMARKS = {
    "onetime": "bench.b1_onetime",
    "bird": "bench.b2_bird",
    "watch": "bench.b3_watch",
    "burst": "bench.b4_burst",
    "idle": "bench.b5_idle",
    "fleet": "bench.b6_fleet",
}
# Run only when named: minutes and gigabytes (150 watchers on a 3-member etcd cluster).
HEAVY = {"cluster": "bench.b7_cluster"}
EXTRA = {"profile": "bench.hotspots", "summary": "bench.report", "render": "bench.render_bird"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "names",
        nargs="*",
        default=["all"],
        help=(
            f"all (the six benchmarks, summary, profile), {', '.join([*BENCHMARKS, *HEAVY])},"
            " summary, profile, render"
        ),
    )
    p.add_argument("--quick", action="store_true", help="fewer repetitions, shorter windows")
    p.add_argument("--reps", type=int, help="repetitions per case (overrides each benchmark's default)")
    p.add_argument("--results", type=Path, default=RESULTS, help="JSON results (bench/results)")
    p.add_argument(
        "--rev",
        help="measure this git revision (extracted apart) instead of the working tree, e.g. HEAD or HEAD~1",
    )
    args = p.parse_args(argv)
    names: list[str] = []
    for n in args.names:
        if n == "all":
            names += [*BENCHMARKS, "summary", "profile"]
        elif n in BENCHMARKS or n in EXTRA or n in HEAVY:
            names.append(n)
        else:
            p.error(f"unknown benchmark {n!r}")
    opts = Options(quick=args.quick, reps=args.reps, results=args.results)
    source = use_revision(args.rev)
    m = machine_info()
    log(f"confpy bench: {m['date']}, {m['nproc']} cores ({m['cpu']}), Python {m['python']}, {m['etcd']}")
    log(f"measuring confpy {source.label}")
    failed: list[str] = []
    start = time.monotonic()
    for name in names:
        module = importlib.import_module(BENCHMARKS.get(name) or HEAVY.get(name) or EXTRA[name])
        t0 = time.monotonic()
        try:
            module.run(opts)
        except Exception as exc:  # one failing benchmark must not hide the others' figures
            failed.append(name)
            log(f"!! {name} failed: {type(exc).__name__}: {exc}")
            write_result(opts, name, {"error": f"{type(exc).__name__}: {exc}"})
        log(f"   ({name}: {time.monotonic() - t0:.0f} s)")
    log(f"done in {time.monotonic() - start:.0f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
