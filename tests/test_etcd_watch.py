"""The watch of only the prefixes read: one watcher per prefix, transactions whole."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Callable

import pytest

from confpy.stores.base import Change, Changes
from confpy.stores.etcd import EtcdStore
from confpy.stores.etcd_transport import WatchQueue, WatchResponse
from confpy.stores.etcd_watch import Reassembler, follow
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


@pytest.mark.parametrize("gathering", [False, True], ids=["creating", "gathering"])
def test_a_watch_cancelled_as_a_response_arrives_ends(gathering: bool) -> None:
    """Found by the model-checked daemon (tests/test_model_daemon.py): confpy logged
    "stopping" and never stopped, after etcd was restarted. The daemon stops by
    cancelling its watch; Python 3.11's asyncio.wait_for returns the result instead of
    raising when the cancel comes as the awaited response arrives, so the watch went on
    waiting for the next one, for ever. Cancelled at every step of a response's hand-over
    (while the watchers are created, and while a revision's parts are gathered), the
    watch must end."""
    created = WatchResponse(created=True)
    event = WatchResponse(events=((5, "/a/1", "v"),))

    async def one(steps: int) -> bool:
        responses: WatchQueue = asyncio.Queue()

        async def consume() -> None:
            async for _ in follow(responses, 2, ["/a", "/b"], 1, 30.0):
                pass

        task = asyncio.create_task(consume())
        responses.put_nowait(created)
        if gathering:
            responses.put_nowait(created)
            responses.put_nowait(event)  # a revision's part: the watch waits SETTLE for more
        await asyncio.sleep(0.001)
        responses.put_nowait(event if gathering else created)
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=1)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return bool(done)

    async def main() -> list[int]:
        return [steps for steps in range(8) if not await one(steps)]

    assert asyncio.run(main()) == [], "the watch went on after being cancelled at these steps"
