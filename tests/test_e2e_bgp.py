"""End to end with real BGP: etcd -> confpy -> BIRD on simulated nodes (issue 6).

Three nodes, each a network namespace on one bridge with a real BIRD 1.6; etcd on
loopback; one ``confpy -watch`` per node in the root namespace reloading only its own
BIRD through its control socket (``tests/support/bgp_lab/cluster.py``). Every scenario is judged
on BIRD's state (``birdc show protocols``) and the kernel's (``ip route ... proto
bird``), reloads are counted from BIRD's own log ("Reconfiguring") as well as from
confpy's. Every wait is bounded.

The tests share one lab (building it takes about 3 s) and run in file order; each one
starts from the converged 3-node mesh and restores it when it is done.
"""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.bgp_lab.cleanup import is_alive, netns_list
from tests.support.bgp_lab.cluster import ROOT, G, H, Lab, block_key, block_of, missing_requirements

pytestmark = [pytest.mark.root, pytest.mark.bird, pytest.mark.etcd]

CONVERGE = 30.0  # s: bound for BGP convergence after any change
CONFIRMED = json.dumps({"state": "confirmed", "deleted": False})


@pytest.fixture(scope="module")
def lab3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab, built once for the module; always torn down."""
    why = missing_requirements()
    if why:
        pytest.skip(why)
    lb = Lab(tmp_path_factory.mktemp("e2e"), 3)
    try:
        lb.up()
        lb.wait_converged(CONVERGE)
        lb.wait_settled(CONVERGE)  # each confpy's first reload (BIRD was not up yet) retried
        yield lb
    finally:
        problems = lb.close()
    assert not problems, f"lab teardown: {problems}"


@pytest.fixture
def lab(lab3: Lab) -> Lab:
    """The lab, converged: the 3-node mesh Established, one block per node routed."""
    assert set(lab3.nodes) == {"node1", "node2", "node3"}
    lab3.wait_converged(CONVERGE)
    lab3.wait_settled(CONVERGE)
    return lab3


def reloads(lab: Lab) -> dict[str, tuple[int, int]]:
    return lab.reload_counts()


def delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """Reloads per node since ``before``: (seen in BIRD's log, logged by confpy)."""
    return {n: (after[n][0] - before[n][0], after[n][1] - before[n][1]) for n in before}


def test_start_mesh_and_blocks(lab: Lab) -> None:
    """1. Every BGP session Established; each kernel has the other nodes' /26 blocks via
    BIRD and its own block as a blackhole."""
    for name, node in lab.nodes.items():
        others = {f"Mesh_{o.addr.replace('.', '_')}" for o in lab.nodes.values() if o is not node}
        assert lab.established(name) == others == set(lab.protocols(name))
        routes = lab.kernel_routes(name)  # `ip route show proto bird`: only BIRD's routes
        assert routes[node.block].startswith(f"blackhole {node.block}"), routes
        for other in lab.nodes.values():
            if other is not node:
                assert re.match(
                    rf"{re.escape(other.block)} via {re.escape(other.addr)} dev eth0\b", routes[other.block]
                )
        assert set(routes) == {n.block for n in lab.nodes.values()}, routes
        # Each node's files are its own: confpy wrote them, BIRD reads them.
        assert f"router id {node.addr};" in node.bird_cfg.read_text()


def test_block_added_and_deleted(lab: Lab) -> None:
    """2. A new block of node1 reaches node2's and node3's kernels; deleted, it is withdrawn.
    Only node1's BIRD is reloaded (once per change)."""
    block = block_of(1, 1)  # 192.168.101.64/26
    blocks = {n: [lab.nodes[n].block] for n in lab.nodes}
    blocks["node1"].append(block)
    before = reloads(lab)
    lab.put(block_key("node1", block), CONFIRMED)
    took = lab.wait(lambda: lab.converged(blocks), CONVERGE, f"{block} routed to node1's peers")
    assert lab.kernel_routes("node2")[block].startswith(f"{block} via 10.99.0.1 dev eth0")
    assert lab.kernel_routes("node1")[block].startswith(f"blackhole {block}")
    lab.wait_quiet()
    assert delta(before, reloads(lab)) == {"node1": (1, 1), "node2": (0, 0), "node3": (0, 0)}

    before = reloads(lab)
    lab.delete(block_key("node1", block))
    lab.wait(lambda: lab.converged(), CONVERGE, f"{block} withdrawn everywhere")
    for name in lab.nodes:
        assert block not in lab.kernel_routes(name)
    lab.wait_quiet()
    assert delta(before, reloads(lab)) == {"node1": (1, 1), "node2": (0, 0), "node3": (0, 0)}
    print(f"block propagated in {took:.2f} s")


def test_fourth_node_joins_and_leaves(lab: Lab) -> None:
    """3. A fourth node's keys (one transaction, as its calico/node would write them):
    the others' bird.cfg gains Mesh_10_99_0_4 and each of their BIRDs is reloaded once.

    The node is real (namespace, confpy, BIRD), not just keys: with keys only, the new
    session could never be Established, so the test could not tell a right peer
    definition from a wrong one. Here all 4x3 sessions must come up and node4's block
    must reach every kernel. Joining and leaving cost about 5 s.
    """
    before = reloads(lab)
    try:
        n4 = lab.add_node(4)
        lab.wait_converged(CONVERGE)
        for name in ("node1", "node2", "node3"):
            assert "protocol bgp Mesh_10_99_0_4 from bgp_template" in lab.nodes[name].bird_cfg.read_text()
            assert "Mesh_10_99_0_4" in lab.established(name)
            assert lab.kernel_routes(name)[n4.block].startswith(f"{n4.block} via 10.99.0.4 dev eth0")
        assert lab.established("node4") == {"Mesh_10_99_0_1", "Mesh_10_99_0_2", "Mesh_10_99_0_3"}
        lab.wait_quiet()
        counts = delta(before, reloads(lab))
        for name in ("node1", "node2", "node3"):
            assert counts[name] == (1, 1), counts
    finally:
        if "node4" in lab.nodes:
            before = {n: c for n, c in reloads(lab).items() if n != "node4"}
            lab.remove_node("node4")  # keys deleted in one transaction, then its daemons stopped
    lab.wait_converged(CONVERGE)
    for name in lab.nodes:
        assert "Mesh_10_99_0_4" not in lab.nodes[name].bird_cfg.read_text()
    lab.wait_quiet()
    assert delta(before, reloads(lab)) == {n: (1, 1) for n in lab.nodes}


def test_hostile_value_is_contained(lab: Lab) -> None:
    """4. A peer IP carrying an extra statement: every confpy refuses it with an error
    naming the key; BIRD keeps its config (no reload), sessions and routes stay. A
    legitimate change made meanwhile is not lost: it is applied once the key is gone."""
    key = f"{G}/peer_v4/10.99.0.50"
    value = json.dumps(
        {"ip": "10.99.0.50; protocol static { route 0.0.0.0/0 blackhole; }", "as_num": "64512"}
    )
    files = {n: node.bird_cfg.read_bytes() for n, node in lab.nodes.items()}
    restarts = {n: lab.session_restarts(n) for n in lab.nodes}
    routes = {n: lab.kernel_routes(n) for n in lab.nodes}
    errors_before = {n: node.confpy_text().count(key) for n, node in lab.nodes.items()}
    before = reloads(lab)
    block = block_of(1, 2)  # 192.168.101.128/26
    blocks = {n: [lab.nodes[n].block] for n in lab.nodes}
    blocks["node1"].append(block)

    def refused() -> bool:
        return all(
            any(
                key in line and re.search(r"\berror\b", line, re.I)
                for line in node.confpy_text().splitlines()[-50:]
            )
            and node.confpy_text().count(key) > errors_before[n]
            for n, node in lab.nodes.items()
        )

    try:
        lab.put(key, value)
        lab.wait(refused, 10.0, f"every confpy logs an error naming {key}")
        lab.wait_quiet()
        for n, node in lab.nodes.items():
            assert node.bird_cfg.read_bytes() == files[n], f"{n}: bird.cfg changed"
            assert "0.0.0.0/0" not in node.bird_cfg.read_text()
            assert not any(node.out.glob(".confpy-stage-*")), "a staging directory was left behind"
            assert lab.established(n) == set(lab.protocols(n)) and len(lab.protocols(n)) == 2
            assert lab.session_restarts(n) == restarts[n], f"{n}: a session restarted"
            assert lab.kernel_routes(n) == routes[n]
            assert "0.0.0.0/0" not in lab.kernel_routes(n, proto_bird=False)
            assert "0.0.0.0/0" not in lab.birdc(n, "show", "route")
        assert delta(before, reloads(lab)) == {n: (0, 0) for n in lab.nodes}
        lab.put(block_key("node1", block), CONFIRMED)  # while the bad key is still there
    finally:
        lab.delete(key)
    try:
        # The bad key gone: the pending block is applied (one reload on node1), the other
        # nodes are back in sync without any reload.
        lab.wait(lambda: lab.converged(blocks), CONVERGE, f"{block} routed once {key} is gone")
        lab.wait_quiet()
        assert delta(before, reloads(lab)) == {"node1": (1, 1), "node2": (0, 0), "node3": (0, 0)}
        for n in lab.nodes:
            assert lab.session_restarts(n) == restarts[n], f"{n}: a session restarted"
    finally:
        lab.delete(block_key("node1", block))
    lab.wait_converged(CONVERGE)


def test_etcd_outage_then_change(lab: Lab) -> None:
    """5. etcd stopped for a few seconds while the watchers run, restarted on the same
    port and data dir; a change made right after reaches the kernels; no watcher was
    restarted (same pids, still running)."""
    pids = lab.pids()
    block = block_of(2, 1)  # node2's second block
    blocks = {n: [lab.nodes[n].block] for n in lab.nodes}
    blocks["node2"].append(block)
    lab.stop_etcd()
    try:
        time.sleep(3.0)
        assert lab.watchers_alive(), "a watcher exited while etcd was down"
        assert lab.converged(), "BGP must not depend on etcd being up"
    finally:
        lab.start_etcd()
    start = time.monotonic()
    lab.put(block_key("node2", block), CONFIRMED)
    try:
        lab.wait(lambda: lab.converged(blocks), CONVERGE, f"{block} routed after the etcd restart")
        took = time.monotonic() - start
        assert lab.kernel_routes("node1")[block].startswith(f"{block} via 10.99.0.2 dev eth0")
        assert lab.kernel_routes("node3")[block].startswith(f"{block} via 10.99.0.2 dev eth0")
        assert lab.pids() == pids and lab.watchers_alive()
        print(f"change after the etcd restart reached the kernels in {took:.2f} s")
    finally:
        lab.delete(block_key("node2", block))
    lab.wait_converged(CONVERGE)
    assert lab.pids() == pids and lab.watchers_alive()


def test_mesh_off_global_peer(lab: Lab) -> None:
    """6. Mesh off and a global peer instead: node1 becomes the cluster's route reflector.

    One transaction, as an operator's calicoctl would leave it: node_mesh disabled,
    global peer 10.99.0.1 (every node peers with it; node1 skips itself), node1 gets a
    cluster id and node-specific peers to node2 and node3 (so it reflects to them as
    "rr client"). Then node2 and node3 have a single session, Global_10_99_0_1;
    node1 has Node_10_99_0_2 and Node_10_99_0_3; no Mesh_ session is left, and node2
    still learns node3's block (via 10.99.0.3: reflected, next hop unchanged) although
    they no longer peer. Each BIRD is reloaded once. Then the mesh is restored.
    """
    puts = {
        f"{G}/node_mesh": json.dumps({"enabled": False}),
        f"{G}/peer_v4/10.99.0.1": json.dumps({"ip": "10.99.0.1", "as_num": "64512"}),
        f"{H}/node1/rr_cluster_id": "1.0.0.1",
        f"{H}/node1/peer_v4/10.99.0.2": json.dumps({"ip": "10.99.0.2", "as_num": "64512"}),
        f"{H}/node1/peer_v4/10.99.0.3": json.dumps({"ip": "10.99.0.3", "as_num": "64512"}),
    }
    want = {
        "node1": {"Node_10_99_0_2", "Node_10_99_0_3"},
        "node2": {"Global_10_99_0_1"},
        "node3": {"Global_10_99_0_1"},
    }

    def sessions_switched() -> bool:
        return all(set(lab.protocols(n)) == s and lab.established(n) == s for n, s in want.items())

    before = reloads(lab)
    try:
        lab.etcd_txn(puts)
        took = lab.wait(sessions_switched, CONVERGE, f"sessions {want} Established, no mesh")
        # Routes are whole again: node2 and node3 learn each other's block through node1.
        lab.wait(
            lambda: all(lab.routes_match(n, lab.expected_routes(n)) for n in lab.nodes),
            CONVERGE,
            "every block routed through the route reflector",
        )
        assert "rr client;" in lab.nodes["node1"].bird_cfg.read_text()
        assert "Mesh_" not in lab.birdc("node2", "show", "protocols")
        lab.wait_quiet()
        assert delta(before, reloads(lab)) == {n: (1, 1) for n in lab.nodes}
        print(f"sessions switched to the route reflector in {took:.2f} s")
    finally:
        lab.etcd_txn(
            {f"{G}/node_mesh": json.dumps({"enabled": True}), f"{H}/node1/rr_cluster_id": ""},
            [k for k in puts if "peer_v4" in k],
        )
    lab.wait_converged(CONVERGE)
    for n in lab.nodes:
        assert not {p for p in lab.protocols(n) if not p.startswith("Mesh_")}


def test_watchdog_cleans_up_after_a_killed_owner(tmp_path: Path) -> None:
    """The fixture's own promise: if the process owning a lab is SIGKILLed (no
    finalizer runs), the lab's watchdog stops its daemons and deletes its namespaces."""
    why = missing_requirements()
    if why:
        pytest.skip(why)
    script = (
        "import json, sys, time\n"
        "from tests.support.bgp_lab.cluster import Lab\n"
        "lb = Lab(sys.argv[1], 1)\n"
        "lb.up()\n"
        "print(json.dumps(lb.state.data), flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "k")], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    data: dict[str, Any] = {}
    try:
        assert owner.stdout is not None
        ready, _, _ = select.select([owner.stdout], [], [], 30.0)
        assert ready, "the 1-node lab did not come up within 30 s"
        data = json.loads(owner.stdout.readline())
        assert data["netns"] and data["procs"]
        assert all(is_alive(p["pid"], p["start"]) for p in data["procs"].values())
    finally:
        owner.kill()
        owner.wait(10)
    deadline = time.monotonic() + 20.0
    while True:
        left_ns = [n for n in netns_list() if data and n.startswith(data["prefix"])]
        left_procs = [k for k, p in data.get("procs", {}).items() if is_alive(p["pid"], p["start"])]
        if not left_ns and not left_procs:
            break
        assert time.monotonic() < deadline, f"watchdog left {left_ns} {left_procs}"
        time.sleep(0.2)
