"""The watch of only the prefixes read: one watcher per prefix, transactions whole."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Callable

import pytest

from confpy.stores.base import Change, Changes
from confpy.stores.etcd import EtcdStore
from confpy.stores.etcd_watch import Reassembler
from tests.support.etcd_server import EtcdServer
from tests.support.watching import Recorder, off


def test_revisions_gathered_from_several_watchers_come_out_whole_and_in_order() -> None:
    r = Reassembler()
    r.add(7, [Change("/c/1", "x")], 0.0)
    r.add(5, [Change("/a/2", None)], 0.0)
    r.add(7, [Change("/a/1", "y")], 0.0)
    r.add(9, [Change("/a/9", "z")], 0.0)
    assert r.take(below=9) == [
        Changes(5, (Change("/a/2", None),)),
        Changes(7, (Change("/a/1", "y"), Change("/c/1", "x"))),  # one batch, key order
    ]
    assert r.newest == 9
    assert r.take() == [Changes(9, (Change("/a/9", "z"),))]
    assert not r


def watch_messages_sent(server: EtcdServer) -> float:
    """How many watch responses etcd has sent, all streams together (its /metrics)."""
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    pattern = r'^grpc_server_msg_sent_total\{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"\} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.M))


@pytest.mark.timeout(60)
def test_keys_between_the_watched_prefixes_are_never_sent(etcd_factory: Callable[..., EtcdServer]) -> None:
    """Puts to keys no resource reads (Felix's workload endpoints sort between the BIRD
    prefixes) cost the watcher nothing: etcd sends it nothing for them."""
    server = etcd_factory()
    watched = ["/calico/bgp/v1/host", "/calico/v1/ipam/v4/pool"]

    async def main() -> tuple[float, list[Changes]]:
        store = EtcdStore([server.endpoint])
        try:
            snap = await store.snapshot(watched)
            rec = Recorder(store, watched, snap.revision)
            first = await off(server.put, "/calico/bgp/v1/host/n1/ip_addr_v4", "10.0.0.1")
            await rec.wait_revision(first)
            before = await off(watch_messages_sent, server)
            for i in range(200):  # between the two prefixes: a covering range would hold them
                await off(server.put, f"/calico/ipam/v2/assignment/ipv4/block/10.1.{i}.0-26", "{}")
                await off(server.put, f"/calico/v1/host/n{i}/workload/k8s/pod{i}/endpoint/eth0", "{}")
            sent = await off(watch_messages_sent, server) - before
            last = await off(server.put, "/calico/v1/ipam/v4/pool/10.2.0.0-16", '{"cidr":"10.2.0.0/16"}')
            await rec.wait_revision(last)
            await rec.stop()
            return sent, [ev for ev in rec.events if isinstance(ev, Changes)]
        finally:
            await store.close()

    sent, events = asyncio.run(main())
    assert sent == 0, f"etcd sent {sent} watch responses for 400 puts nobody reads"
    assert [c.key for ev in events for c in ev.changes] == [
        "/calico/bgp/v1/host/n1/ip_addr_v4",
        "/calico/v1/ipam/v4/pool/10.2.0.0-16",
    ]
