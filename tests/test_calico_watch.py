"""``-backend calico`` following a real etcd: the store's watch, and the daemon as a process.

Resources are written as Calico's etcdv3 backend writes them
(``tests/support/calico_resources.py``), with etcdctl.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from confpy.cli import main
from confpy.stores.base import Change, Changes, Resync
from confpy.stores.calico import CalicoStore
from confpy.stores.endpoints import Access
from confpy.stores.etcd import EtcdStore
from tests.support.bird_confdir import CONFIG, bird_confdir
from tests.support.birdset import BirdSet
from tests.support.calico_resources import etcd_keys, key_of, value_of
from tests.support.confpy_process import ConfpyProcess, read, wait_for
from tests.support.etcd_server import EtcdServer
from tests.test_calico_v3_scenarios import SCENARIOS, expected_for

ROOT = Path(__file__).resolve().parents[1]
H = "/calico/bgp/v1/host"
SELECTORS = SCENARIOS / "selectors" / "resources.yaml"


def resources(path: Path) -> dict[str, dict[str, Any]]:
    """The YAML documents of a scenario by name, to be changed and written back."""
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(path.read_text()) if d and "metadata" in d}


def write(server: EtcdServer, *docs: dict[str, Any]) -> int:
    return server.txn({key_of(d): value_of(d) for d in docs})


def relabel(doc: dict[str, Any], **labels: str) -> dict[str, Any]:
    return {**doc, "metadata": {**doc["metadata"], "labels": labels}}


# --- the store's watch -----------------------------------------------------------------


def test_watch_gives_one_batch_per_revision_and_moves_a_relabelled_node(etcd_calico: EtcdServer) -> None:
    etcd_calico.txn(etcd_keys(SELECTORS))
    docs = resources(SELECTORS)

    async def main() -> None:
        store = CalicoStore(EtcdStore([etcd_calico.endpoint]), "node1")
        try:
            snap = await store.snapshot([H])
            tor = snap.values[f"{H}/node1/peer_v4/10.60.0.1"]
            events = store.watch([H], snap.revision)
            # node1 leaves rack a, node2 joins it, in one transaction: one batch.
            node1, node2 = (
                relabel(docs["node1"], rack="b", zone="z1"),
                relabel(docs["node2"], rack="a", zone="z1"),
            )
            rev = await asyncio.to_thread(write, etcd_calico, node1, node2)
            assert await asyncio.wait_for(anext(events), 10) == Changes(
                rev,
                (Change(f"{H}/node1/peer_v4/10.60.0.1", None), Change(f"{H}/node2/peer_v4/10.60.0.1", tor)),
            )
            # Nothing of ours (a policy): no batch; the next change of ours comes next.
            await asyncio.to_thread(
                etcd_calico.put, "/calico/resources/v3/projectcalico.org/networkpolicies/p", "{}"
            )
            # A resource read that changes no v1 key (a label no selector reads): an empty
            # batch at its revision, so that the revision read is not behind (/status).
            noop = await asyncio.to_thread(
                write, etcd_calico, relabel(node2, rack="a", zone="z1", colour="blue")
            )
            assert await asyncio.wait_for(anext(events), 10) == Changes(noop, ())
            rev2 = await asyncio.to_thread(write, etcd_calico, relabel(docs["node3"], rack="a", zone="z2"))
            event = await asyncio.wait_for(anext(events), 10)
            assert isinstance(event, Changes) and event.revision == rev2
            assert {c.key: c.value for c in event.changes} == {
                f"{H}/node1/peer_v4/10.60.0.13": None,
                f"{H}/node2/peer_v4/10.60.0.13": None,
                f"{H}/node3/peer_v4/10.60.0.11": None,
                f"{H}/node3/peer_v4/10.60.0.12": None,
            }, "node3 is no edge node any more: the edge peerings go"
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_a_compaction_while_away_is_a_resync_of_the_view(etcd_factory: Callable[..., EtcdServer]) -> None:
    server = etcd_factory()
    server.txn(etcd_keys(SELECTORS))
    docs = resources(SELECTORS)

    async def main() -> None:
        store = CalicoStore(EtcdStore([server.endpoint], Access(connect_timeout=2)), "node1")
        try:
            snap = await store.snapshot([H])

            def away() -> None:  # a change, and the history compacted
                write(server, relabel(docs["node1"], rack="b", zone="z1"))
                server.put("/elsewhere", "x")  # compacting to it drops the change above
                server.compact()

            await asyncio.to_thread(server.while_away, away)
            event = await asyncio.wait_for(anext(store.watch([H], snap.revision)), 30)
            assert isinstance(event, Resync)
            assert f"{H}/node1/peer_v4/10.60.0.1" not in event.snapshot.values
            assert f"{H}/node1/peer_v4/10.60.0.13" in event.snapshot.values
        finally:
            await store.close()

    asyncio.run(main())


# --- the daemon ------------------------------------------------------------------------


class CalicoNode:
    """confpy -backend calico -watch for one node, writing under a dest root."""

    def __init__(self, tmp: Path, server: EtcdServer, node: str) -> None:
        self.confdir = bird_confdir(tmp / "confdir", checks=False)
        self.root = tmp / "root"
        (self.root / CONFIG).mkdir(parents=True)
        self.node = node
        self.proc = ConfpyProcess(
            ["-backend", "calico", "-watch", f"-confdir={self.confdir}", f"-node={server.endpoint}",
             f"-node-name={node}", f"-dest-root={self.root}", "-config-file=/dev/null", "-wait-min=0"],
            tmp / "confpy.log",
        )  # fmt: skip

    def file(self, name: str) -> str:
        return read(self.root / CONFIG / name)

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
        try:
            wait_for(condition, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}; confpy's log:\n{self.proc.log}") from None

    def wait_files(self, expected: dict[str, str]) -> None:
        self.wait(lambda: all(self.file(n) == t for n, t in expected.items()), "the six files")

    def close(self) -> None:
        self.proc.close()


@pytest.fixture
def calico_node(
    tmp_path: Path, etcd_calico: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CalicoNode]:
    monkeypatch.delenv("CALICO_ROUTER_ID", raising=False)
    monkeypatch.setenv("BIRD_FLAVOR", "calico")  # the daemon inherits it: no detection on either side
    etcd_calico.txn(etcd_keys(SELECTORS))
    node = CalicoNode(tmp_path, etcd_calico, "node1")
    yield node
    node.close()


def rendered(keys: dict[str, str]) -> dict[str, str]:
    return BirdSet(ROOT, "node1").render(keys)


@pytest.mark.timeout(90)
def test_the_daemon_follows_resource_changes(calico_node: CalicoNode, etcd_calico: EtcdServer) -> None:
    calico_node.wait_files(rendered(expected_for("selectors", "node1")))
    docs = resources(SELECTORS)
    write(etcd_calico, relabel(docs["node1"], rack="b", zone="z1"))
    calico_node.wait(
        lambda: "neighbor 10.60.0.1 as 65010;" not in calico_node.file("bird.cfg"), "node1 to leave rack a"
    )
    assert "neighbor 10.60.0.13 as 65013;" in calico_node.file("bird.cfg")
    # A new pool and a block of ours: the ipam and aggr files follow.
    pool = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"},
            "spec": {"cidr": "192.168.0.0/16", "ipipMode": "Always"}}  # fmt: skip
    block = {
        "kind": "BlockAffinity",
        "spec": {"node": "node1", "cidr": "192.168.5.0/26", "state": "confirmed"},
    }
    write(etcd_calico, pool, block)
    calico_node.wait(
        lambda: "route 192.168.5.0/26 blackhole;" in calico_node.file("bird_aggr.cfg"), "the block"
    )
    calico_node.wait(lambda: 'krt_tunnel = "tunl0";' in calico_node.file("bird_ipam.cfg"), "the pool")
    assert calico_node.proc.stop() == 0


@pytest.mark.timeout(90)
def test_a_bad_resource_keeps_the_files_and_the_next_good_revision_is_applied(
    calico_node: CalicoNode, etcd_calico: EtcdServer
) -> None:
    calico_node.wait_files(rendered(expected_for("selectors", "node1")))
    before = calico_node.file("bird.cfg")
    docs = resources(SELECTORS)
    bad = json.loads(value_of(docs["node3"]))
    bad["spec"]["bgp"]["asNumber"] = "sixty-five thousand"
    etcd_calico.put(key_of(docs["node3"]), json.dumps(bad))
    calico_node.proc.wait_log(
        "key /calico/resources/v3/projectcalico.org/nodes/node3: spec.bgp.asNumber: 'sixty-five thousand' "
        "is not an AS number; keeping its last good version"
    )
    # A later good change of another resource is applied; node3 stays as it was.
    write(etcd_calico, relabel(docs["node1"], rack="b", zone="z1"))
    calico_node.wait(
        lambda: "neighbor 10.60.0.1 as 65010;" not in calico_node.file("bird.cfg"), "the good change"
    )
    node3 = "neighbor 10.60.0.13 as 65013;"
    assert node3 in before and node3 in calico_node.file("bird.cfg")
    # node3 fixed, with a new AS: applied.
    fixed = {**docs["node3"], "spec": {"bgp": {**docs["node3"]["spec"]["bgp"], "asNumber": 65099}}}
    write(etcd_calico, fixed)
    calico_node.wait(
        lambda: "neighbor 10.60.0.13 as 65099;" in calico_node.file("bird.cfg"), "the fixed node3"
    )
    assert calico_node.proc.proc.poll() is None
    assert calico_node.proc.stop() == 0


def test_onetime_with_a_bad_resource_writes_nothing_and_exits_3_naming_it(
    etcd_calico: EtcdServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    etcd_calico.txn(etcd_keys(SELECTORS))
    etcd_calico.put(
        "/calico/resources/v3/projectcalico.org/bgppeers/edge", '{"spec": {"peerSelector": "role = edge"}}'
    )
    confdir = bird_confdir(tmp_path / "confdir", checks=False)
    root = tmp_path / "root"
    (root / CONFIG).mkdir(parents=True)
    argv = ["-onetime", "-backend=calico", f"-confdir={confdir}", f"-node={etcd_calico.endpoint}",
            "-node-name=node1", f"-dest-root={root}", "-config-file=/dev/null"]  # fmt: skip
    assert main(argv) == 3
    assert (
        "key /calico/resources/v3/projectcalico.org/bgppeers/edge: spec.peerSelector: expected =="
        in caplog.text
    )
    assert list((root / CONFIG).iterdir()) == []
