"""Demo: the 3-node lab up, its routes and sessions, changes propagating with timings.

    sudo bash examples/lab                  # or: sudo .venv/bin/python -m tests.support.bgp_lab.demo
    sudo bash examples/lab --changes 20 --keep-logs
    sudo bash examples/lab --bird 2         # BIRD 2 and the bird2/ set: IPv4 and IPv6

1. builds the lab (etcd on loopback, one confpy watcher per node, BIRD per namespace:
   BIRD 1.6 with conf.d/, IPv4, or with ``--bird 2`` BIRD 2 with bird2/, IPv4 and IPv6)
   and waits for the full mesh;
2. prints each node's ``ip route`` and ``birdc show protocols``;
3. puts a new block for node1 in etcd and shows when it reaches each other node's
   kernel;
4. measures ``--changes`` puts (a new IPv4 /26 each, on node1, node2, node3 in turn,
   the same on either BIRD):
   time from the put to the route in every other node's kernel (p50 / max), and the
   reloads each BIRD received per change (from BIRD's own log);
5. tears everything down (also on ^C / SIGTERM; a watchdog covers SIGKILL).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.support.bgp_lab.cluster import Lab, missing_requirements
from tests.support.bgp_lab.observe import LabError
from tests.support.bgp_lab.plan import BIRD2_LAB, BIRD16_LAB, CONFIRMED, G, block_key, block_of


def put_and_time(
    lab: Lab, owner: str, cidr: str, timeout: float = 30.0
) -> tuple[float, float, dict[str, float]]:
    """Put a block of ``owner``; (etcdctl's own time, slowest node, per node) from the put."""
    others = [n for n in lab.nodes if n != owner]
    start = time.monotonic()
    lab.put(block_key(owner, cidr), CONFIRMED)
    put_done = time.monotonic() - start
    seen: dict[str, float] = {}
    while len(seen) < len(others):
        for n in others:
            if n not in seen and cidr in lab.kernel_routes(n):
                seen[n] = time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise LabError(f"{cidr} not in {set(others) - set(seen)} after {timeout:g} s\n{lab.report()}")
    return put_done, max(seen.values()), seen


def banner(text: str) -> None:
    print(f"\n{'=' * 8} {text} {'=' * max(0, 70 - len(text))}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.support.bgp_lab.demo", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--changes", type=int, default=10, help="puts to measure (default 10)")
    ap.add_argument("--wait-min", default="50ms", help="confpy's -wait-min (default 50ms)")
    ap.add_argument("--workdir", help="lab directory (default: a new temporary one)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the lab directory (logs, rendered files)")
    ap.add_argument("--bird", choices=("1.6", "2"), default="1.6", help="BIRD of the nodes (default 1.6)")
    args = ap.parse_args(argv)
    bird = BIRD2_LAB if args.bird == "2" else BIRD16_LAB
    why = missing_requirements(bird)
    if why:
        print(f"lab demo: {why}", file=sys.stderr)
        return 2

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="confpy-lab-"))
    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"{time.monotonic() - t0:7.2f}s  {msg}", flush=True)

    lab = Lab(workdir, 3, bird=bird, wait_min=args.wait_min, say=say)
    status = 1
    try:
        banner(f"bring up: etcd -> confpy x3 -> {bird} x3 (IPv{' and IPv'.join(map(str, bird.families))})")
        lab.up()
        say("every BIRD answers on its control socket")
        took = lab.wait_converged(30.0)
        say(f"full mesh Established, every block in every kernel ({took:.2f} s after the daemons)")
        lab.wait_settled(30.0)

        banner("each node")
        for n in lab.nodes:
            print(lab.show(n), flush=True)

        banner("a change: a second block for node1")
        cidr = block_of(1, 1)
        print(f"etcdctl put {block_key('node1', cidr)} '{CONFIRMED}'")
        before = lab.reload_counts()
        put_s, slowest, seen = put_and_time(lab, "node1", cidr)
        for n, s in sorted(seen.items()):
            print(f"  {n}: {cidr} in the kernel {s * 1000:6.0f} ms after the put")
        lab.wait_quiet()
        after = lab.reload_counts()
        for n in lab.nodes:
            print(f"  {n}: BIRD reloads for this change: {after[n][0] - before[n][0]}")
        print("--- node2: routes from BIRD")
        print("\n".join(lab.kernel_routes("node2").values()))
        lab.delete(block_key("node1", cidr))
        lab.wait_converged(30.0)
        lab.wait_quiet()

        banner(f"{args.changes} changes measured (a new /26 each, owners in turn)")
        times: list[float] = []
        per_change: list[dict[str, int]] = []
        added: list[tuple[str, str]] = []
        for i in range(args.changes):
            owner = f"node{i % 3 + 1}"
            cidr = block_of(lab.nodes[owner].index + 10 * (1 + i // 9), 1 + (i // 3) % 3)  # unique per i
            before = lab.reload_counts()
            put_s, slowest, seen = put_and_time(lab, owner, cidr)
            lab.wait_quiet()  # wait-max + 0.5 s: a late or second reload would be counted
            after = lab.reload_counts()
            reloads = {n: after[n][0] - before[n][0] for n in lab.nodes}
            times.append(slowest)
            per_change.append(reloads)
            added.append((owner, cidr))
            print(
                f"  #{i + 1:2d} {owner} {cidr:18s} etcdctl {put_s * 1000:4.0f} ms; in every other kernel after "
                f"{slowest * 1000:4.0f} ms ({', '.join(f'{n} {s * 1000:.0f}' for n, s in sorted(seen.items()))}); "
                f"BIRD reloads {' '.join(f'{n}+{r}' for n, r in reloads.items())}",
                flush=True,
            )
        owner_reloads = [pc[f"node{i % 3 + 1}"] for i, pc in enumerate(per_change)]
        other_reloads = [
            r for i, pc in enumerate(per_change) for n, r in pc.items() if n != f"node{i % 3 + 1}"
        ]
        banner("figures")
        print(f"put -> route in every other node's kernel, over {len(times)} changes:")
        print(
            f"  p50 {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms, "
            f"min {min(times) * 1000:.0f} ms (confpy -wait-min {args.wait_min}; timed from the "
            "start of `etcdctl put`, kernel polled every few ms)"
        )
        print(
            f"  reloads per change: the owner's BIRD {sorted(set(owner_reloads))} "
            f"(total {sum(owner_reloads)} for {len(times)} changes), every other BIRD "
            f"{sorted(set(other_reloads))}"
        )
        lab.etcd_txn(deletes=[block_key(o, c) for o, c in added])
        took = lab.wait_converged(30.0)
        print(
            f"  {len(added)} blocks deleted in one transaction: withdrawn everywhere in {took * 1000:.0f} ms"
        )

        # The peer must be an address of the lab: node3's own, on a port nothing listens
        # on. node3 skips a peer at its own address; the others dial and are refused.
        banner("a cluster-wide change: a global peer (node3's address, port 1790: nothing listens)")
        peer_key = f"{G}/peer_v4/10.99.0.3-1790"
        session = "Global_10_99_0_3_port_1790"
        dialers = [n for n in lab.nodes if n != "node3"]
        for action in ("put", "delete"):
            want = action == "put"
            before = lab.reload_counts()
            start = time.monotonic()
            if want:
                lab.put(peer_key, json.dumps({"ip": "10.99.0.3", "as_num": "64513", "port": 1790}))
            else:
                lab.delete(peer_key)

            def switched(want: bool = want) -> bool:
                return all((session in lab.protocols(n)) == want for n in dialers)

            lab.wait(switched, 30.0, f"{session} {'in' if want else 'gone from'} every other BIRD")
            took = time.monotonic() - start
            lab.wait_quiet()
            after = lab.reload_counts()
            print(
                f"  {action} {peer_key}: {session} {'in' if want else 'gone from'} "
                f"{', '.join(dialers)} {took * 1000:.0f} ms after the {action}; BIRD reloads "
                + " ".join(f"{n}+{after[n][0] - before[n][0]}" for n in lab.nodes)
            )
            if want:
                print(
                    "--- node2: birdc show protocols (the new session is never Established: port 1790 is closed)"
                )
                print(lab.birdc("node2", "show", "protocols").rstrip())
        lab.wait_converged(30.0)
        status = 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        status = 130
    except LabError as exc:
        print(f"lab demo failed: {exc}", file=sys.stderr)
    finally:
        banner("tear down")
        problems = lab.close()
        print(
            "lab removed: every process stopped, every namespace deleted"
            if not problems
            else f"PROBLEMS: {problems}"
        )
        if args.keep_logs or status:
            print(f"logs and rendered files kept in {workdir}")
        elif not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        status = status or (1 if problems else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
