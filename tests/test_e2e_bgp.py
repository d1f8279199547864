"""End to end with real BGP: etcd -> confpy -> BIRD on simulated nodes (issues 6, 15).

Three nodes, each a network namespace on one bridge with a real BIRD; etcd on
loopback; one ``confpy -watch`` per node in the root namespace reloading only its own
BIRD through its control socket (``tests/support/bgp_lab/cluster.py``). Every scenario is judged
on BIRD's state (``birdc show protocols``) and the kernel's (``ip route ... proto
bird``), reloads are counted from BIRD's own log ("Reconfiguring") as well as from
confpy's. Every wait is bounded.

Every scenario runs twice (``tests/support/bgp_lab/plan.py``): on BIRD 1.6 with the
``conf.d/`` set (IPv4), and on BIRD 2 with the ``bird2/`` set (one daemon per node,
IPv4 and IPv6 sessions, blocks of both families). The tests of one BIRD share one lab
(building it takes about 3 s) and run in file order; each one starts from the converged
3-node mesh and restores it when it is done.
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
from tests.support.bgp_lab.cluster import ROOT, Lab, missing_requirements
from tests.support.bgp_lab.observe import IP, run
from tests.support.bgp_lab.plan import (
    BIRD2_LAB,
    CONFIRMED,
    LAB_BIRDS,
    POOL,
    G,
    H,
    LabBird,
    address,
    block_key,
    block_of,
    cluster_keys,
    protocol_name,
)

pytestmark = [pytest.mark.root, pytest.mark.bird, pytest.mark.etcd]

CONVERGE = 30.0  # s: bound for BGP convergence after any change


@pytest.fixture(scope="module", params=[pytest.param(b, id=str(b)) for b in LAB_BIRDS])
def lab3(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab of one BIRD, built once for the module; always torn down."""
    bird: LabBird = request.param
    why = missing_requirements(bird)
    if why:
        pytest.skip(why)
    lb = Lab(tmp_path_factory.mktemp(f"e2e-{bird}"), 3, bird=bird)
    try:
        lb.up()
        took = lb.wait_converged(CONVERGE)
        print(f"{bird}: mesh Established and every block routed {took:.2f} s after the daemons answered")
        lb.wait_settled(CONVERGE)  # each confpy's first reload (BIRD was not up yet) retried
        yield lb
    finally:
        problems = lb.close()
    assert not problems, f"lab teardown: {problems}"


@pytest.fixture
def lab(lab3: Lab) -> Lab:
    """The lab, converged: the 3-node mesh Established, one block per node and family routed."""
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
    """1. Every BGP session Established (BIRD 2: an IPv4 and an IPv6 session per pair);
    each kernel has the other nodes' blocks of every family via BIRD and its own as
    blackholes."""
    for name, node in lab.nodes.items():
        sessions = {s for o in lab.nodes.values() if o is not node for s in o.sessions}
        assert len(sessions) == 2 * len(lab.bird.families)
        assert lab.established(name) == sessions == set(lab.protocols(name))
        routes = lab.kernel_routes(name)  # `ip route show proto bird`: only BIRD's routes
        for block in node.blocks:
            assert routes[block].startswith(f"blackhole {block}"), routes
        for other in lab.nodes.values():
            for family in lab.bird.families if other is not node else ():
                block, via = block_of(other.index, 0, family), re.escape(other.address(family))
                assert re.match(rf"{re.escape(block)} via {via} dev eth0\b", routes[block]), routes
        assert set(routes) == {b for n in lab.nodes.values() for b in n.blocks}, routes
        # Each node's files are its own: confpy wrote them, BIRD reads them.
        assert f"router id {node.addr};" in node.bird_cfg.read_text()


def test_block_added_and_deleted(lab: Lab) -> None:
    """2. A new block of node1 (BIRD 2: a new IPv4 and a new IPv6 block, one
    transaction) reaches node2's and node3's kernels; deleted, it is withdrawn. Only
    node1's BIRD is reloaded, once per change."""
    new = {f: block_of(1, 1, f) for f in lab.bird.families}  # 192.168.101.64/26, fd00:10::1:40/122
    blocks = {n: lab.nodes[n].blocks for n in lab.nodes}
    blocks["node1"] += new.values()
    before = reloads(lab)
    lab.etcd_txn({block_key("node1", b): CONFIRMED for b in new.values()})
    took = lab.wait(lambda: lab.converged(blocks), CONVERGE, f"{list(new.values())} routed to node1's peers")
    for family, block in new.items():
        via = lab.nodes["node1"].address(family)
        assert lab.kernel_routes("node2")[block].startswith(f"{block} via {via} dev eth0")
        assert lab.kernel_routes("node1")[block].startswith(f"blackhole {block}")
    lab.wait_quiet()
    assert delta(before, reloads(lab)) == {"node1": (1, 1), "node2": (0, 0), "node3": (0, 0)}

    before = reloads(lab)
    start = time.monotonic()
    lab.etcd_txn(deletes=[block_key("node1", b) for b in new.values()])
    lab.wait(lambda: lab.converged(), CONVERGE, f"{list(new.values())} withdrawn everywhere")
    withdrawn = time.monotonic() - start
    for name in lab.nodes:
        assert not set(new.values()) & set(lab.kernel_routes(name))
    lab.wait_quiet()
    assert delta(before, reloads(lab)) == {"node1": (1, 1), "node2": (0, 0), "node3": (0, 0)}
    print(f"{lab.bird}: block propagated in {took:.2f} s, withdrawn in {withdrawn:.2f} s")


def test_fourth_node_joins_and_leaves(lab: Lab) -> None:
    """3. A fourth node's keys (one transaction, as its calico/node would write them):
    the others' bird.cfg gains Mesh_10_99_0_4 and each of their BIRDs is reloaded once.

    The node is real (namespace, confpy, BIRD), not just keys: with keys only, the new
    session could never be Established, so the test could not tell a right peer
    definition from a wrong one. Here all 4x3 sessions must come up and node4's block
    must reach every kernel. Joining and leaving cost about 5 s.
    """
    before = reloads(lab)
    sessions4: set[str] = set()
    try:
        n4 = lab.add_node(4)
        sessions4 = n4.sessions  # Mesh_10_99_0_4 (and Mesh_fd00_99__4)
        took = lab.wait_converged(CONVERGE)
        print(f"{lab.bird}: node4 meshed and routed {took:.2f} s after its BIRD answered")
        for name in ("node1", "node2", "node3"):
            cfg = lab.nodes[name].bird_cfg.read_text()
            assert all(f"protocol bgp {s} from bgp_template" in cfg for s in sessions4)
            assert sessions4 <= lab.established(name)
            for family in lab.bird.families:
                block, via = block_of(4, 0, family), n4.address(family)
                assert lab.kernel_routes(name)[block].startswith(f"{block} via {via} dev eth0")
        assert lab.established("node4") == lab.mesh_sessions("node4")
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
        assert sessions4 and not any(s in lab.nodes[name].bird_cfg.read_text() for s in sessions4)
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
    blocks = {n: lab.nodes[n].blocks for n in lab.nodes}
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
            assert lab.established(n) == set(lab.protocols(n)) == lab.mesh_sessions(n)
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
    blocks = {n: lab.nodes[n].blocks for n in lab.nodes}
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
    "rr client"); on BIRD 2 the same for IPv6 (fd00:99::1, ...). Then node2 and node3
    have a single session per family, Global_10_99_0_1 (and Global_fd00_99__1); node1
    has Node_10_99_0_2 and Node_10_99_0_3 (and their IPv6 twins); no Mesh_ session is
    left, and node2 still learns node3's blocks (via node3's address: reflected, next
    hop unchanged) although they no longer peer. Each BIRD is reloaded once. Then the
    mesh is restored.
    """
    puts = {f"{G}/node_mesh": json.dumps({"enabled": False}), f"{H}/node1/rr_cluster_id": "1.0.0.1"}
    want: dict[str, set[str]] = {"node1": set(), "node2": set(), "node3": set()}
    for family in lab.bird.families:
        rr, clients = address(1, family), [address(2, family), address(3, family)]
        puts[f"{G}/peer_v{family}/{rr}"] = json.dumps({"ip": rr, "as_num": "64512"})
        for client in clients:
            puts[f"{H}/node1/peer_v{family}/{client}"] = json.dumps({"ip": client, "as_num": "64512"})
            want["node1"].add(protocol_name("Node", client))
        for name in ("node2", "node3"):
            want[name].add(protocol_name("Global", rr))

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
            [k for k in puts if "/peer_v" in k],
        )
    lab.wait_converged(CONVERGE)
    for n in lab.nodes:
        assert not {p for p in lab.protocols(n) if not p.startswith("Mesh_")}


def test_ipip_pool_routes_through_tunl0_onlink(lab: Lab) -> None:
    """7. BIRD 2 only: an IPIP pool makes the other nodes' blocks ``via <node> dev tunl0
    onlink``, as Calico's BIRD fork does with krt_tunnel (stock BIRD 1.6 has no way to).

    This kernel has no ipip module, so each node's ``tunl0`` is a stand-in (one end of a
    veth pair, up): the routes BIRD programs are real, packets through them are not
    encapsulated. The pool is switched back afterwards: the routes go back to eth0.
    """
    if lab.bird is not BIRD2_LAB:
        pytest.skip("BIRD 1.6 (stock) has no krt_tunnel: an IPIP pool programs no tunnel there")
    pool_key = f"/calico/v1/ipam/v4/pool/{POOL[4].replace('/', '-')}"
    plain = cluster_keys(lab.bird.families)[pool_key]  # as the lab wrote it: no IPIP
    for node in lab.nodes.values():
        run([IP, "-n", node.ns, "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0-peer"])
        for link in ("tunl0", "tunl0-peer"):
            run([IP, "-n", node.ns, "link", "set", link, "up"])

    def routed(dev: str) -> bool:
        for name, node in lab.nodes.items():
            routes = lab.kernel_routes(name)
            for other in lab.nodes.values():
                if other is not node and not routes.get(other.block, "").startswith(
                    f"{other.block} via {other.addr} dev {dev}"
                ):
                    return False
                if other is not node and (dev == "tunl0") != ("onlink" in routes[other.block]):
                    return False
        return True

    before = reloads(lab)
    try:
        lab.put(pool_key, json.dumps({**json.loads(plain), "ipip": "tunl0", "ipip_mode": "always"}))
        took = lab.wait(lambda: routed("tunl0"), CONVERGE, "every other node's IPv4 block via tunl0 onlink")
        for name, node in lab.nodes.items():
            assert lab.kernel_routes(name)[node.block].startswith(
                f"blackhole {node.block}"
            )  # ours: untouched
            assert lab.established(name) == lab.mesh_sessions(name)
        lab.wait_quiet()
        assert delta(before, reloads(lab)) == {n: (1, 1) for n in lab.nodes}  # bird_ipam.cfg of each node
        print(f"{lab.bird}: IPIP pool applied in {took:.2f} s")
    finally:
        lab.put(pool_key, plain)
    lab.wait(lambda: routed("eth0"), CONVERGE, "the blocks back on eth0")
    for node in lab.nodes.values():
        run([IP, "-n", node.ns, "link", "del", "tunl0"])
    lab.wait_converged(CONVERGE)


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
