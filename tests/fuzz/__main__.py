"""``python -m tests.fuzz``: run fuzz harnesses, bounded.

    python -m tests.fuzz --list                       # the harnesses
    python -m tests.fuzz selector --seconds 60        # atheris (coverage-guided) for 60 s
    python -m tests.fuzz all --runs 20000             # each harness in turn, 20,000 inputs each
    python -m tests.fuzz selector --engine builtin --runs 5000 --seed 3   # no atheris: the seeded mutator
    python -m tests.fuzz selector --replay            # the corpus only
    python -m tests.fuzz selector --minimize tests/fuzz/crashes/selector-crash-...
    python -m tests.fuzz selector --seconds 300 --grow   # keep inputs that add coverage in the corpus

Every input is bounded: ``--timeout`` seconds (default 2) and ``--rss-mb`` of memory
(default 2048). Failing inputs are written to ``tests/fuzz/crashes/`` (atheris: crash-*,
timeout-*, oom-* there). Exit status: 0 when no input failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz import engine
from tests.fuzz.harnesses import HARNESSES

ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.fuzz", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("harnesses", nargs="*", metavar="HARNESS", help="harness names, or all")
    p.add_argument("--list", action="store_true", help="list the harnesses")
    p.add_argument("--runs", type=int, help="new inputs per harness (after the corpus)")
    p.add_argument("--seconds", type=float, help="time per harness")
    p.add_argument("--engine", choices=("atheris", "builtin"), help="default: atheris when installed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=engine.DEFAULT_TIMEOUT, help="seconds per input")
    p.add_argument("--rss-mb", type=int, default=2048, help="memory limit of the fuzzing process")
    p.add_argument("--replay", action="store_true", help="run the corpus only")
    p.add_argument(
        "--grow", action="store_true", help="atheris: merge inputs that add coverage into the corpus"
    )
    p.add_argument("--minimize", metavar="FILE", help="shrink a failing input (same failure), print it")
    return p


def _atheris_available() -> bool:
    return importlib.util.find_spec("atheris") is not None


def _run_atheris(name: str, args: argparse.Namespace) -> int:
    h = HARNESSES[name]
    engine.CRASHES.mkdir(exist_ok=True)
    seeds = engine.CORPUS / name
    seeds.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"confpy-fuzz-{name}-"))
    flags = [
        f"-timeout={max(1, round(args.timeout))}",
        f"-rss_limit_mb={args.rss_mb}",
        f"-malloc_limit_mb={args.rss_mb}",
        f"-max_len={h.max_len}",
        f"-seed={args.seed}",
        f"-artifact_prefix={engine.CRASHES}/{name}-",
        "-print_final_stats=1",
    ]
    if args.runs is not None:
        flags.append(f"-runs={args.runs}")
    if args.seconds is not None:
        flags.append(f"-max_total_time={max(1, round(args.seconds))}")
    if args.runs is None and args.seconds is None:
        flags.append("-runs=0")  # the corpus only
    command = [sys.executable, "-m", "tests.fuzz.atheris_main", name, *flags, str(work), str(seeds)]
    print(f"== {name} (atheris): {' '.join(command[3:])}", flush=True)
    start = time.monotonic()
    try:
        rc = subprocess.call(command, cwd=ROOT)
        if rc == 0 and args.grow:
            rc = subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "tests.fuzz.atheris_main",
                    name,
                    "-merge=1",
                    *flags[:4],
                    str(seeds),
                    str(work),
                ],
                cwd=ROOT,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"== {name}: exit {rc} after {time.monotonic() - start:.1f} s", flush=True)
    return 0 if rc == 0 else 1


def _run_builtin(name: str, args: argparse.Namespace) -> int:
    h = HARNESSES[name]
    runs = 0 if args.replay else args.runs
    stats = engine.fuzz(
        name,
        h.run,
        runs=runs,
        seconds=None if args.replay else args.seconds,
        seed=args.seed,
        timeout=args.timeout,
        rss_mb=args.rss_mb,
        max_len=h.max_len,
    )
    for failure in stats.failures:
        engine.save(failure)
        print(failure, file=sys.stderr)
    rate = stats.runs / stats.seconds if stats.seconds else 0
    print(
        f"== {name} (builtin, seed {args.seed}): {stats.runs} inputs ({stats.corpus} from the corpus) "
        f"in {stats.seconds:.1f} s ({rate:.0f}/s), {len(stats.failures)} failure(s)",
        flush=True,
    )
    return 1 if stats.failures else 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for h in HARNESSES.values():
            print(f"{h.name:16} {len(engine.corpus(h.name)):4} seeds  {h.doc}")
        return 0
    names = list(HARNESSES) if args.harnesses in (["all"], []) else args.harnesses
    unknown = [n for n in names if n not in HARNESSES]
    if unknown:
        print(f"unknown harness {unknown[0]!r}; --list shows them", file=sys.stderr)
        return 2
    if args.minimize:
        if len(names) != 1:
            print("--minimize: name one harness", file=sys.stderr)
            return 2
        data, failure = engine.minimize(names[0], HARNESSES[names[0]].run, Path(args.minimize).read_bytes())
        print(f"{len(data)} bytes: {data!r}\n{failure.error}")
        out = Path(args.minimize).with_name(Path(args.minimize).name + ".min")
        out.write_bytes(data)
        print(f"written to {out}")
        return 0
    use_atheris = args.engine == "atheris" or (
        args.engine is None and _atheris_available() and not args.replay
    )
    if use_atheris and not _atheris_available():
        print("atheris is not installed (pip install atheris): use --engine builtin", file=sys.stderr)
        return 2
    if not use_atheris:
        limit = args.rss_mb * 1024 * 1024 * 2  # address space: twice the RSS limit (mappings, stacks)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY or soft > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    status = 0
    for name in names:
        status |= _run_atheris(name, args) if use_atheris else _run_builtin(name, args)
    return status


if __name__ == "__main__":
    os.environ.setdefault("BIRD_FLAVOR", "calico")  # never probe a bird binary from a harness
    logging.disable(logging.CRITICAL)  # the stores log every retry; failures are reported here
    sys.exit(main(sys.argv[1:]))
