"""The etcd store against real etcd processes on loopback (see tests/support/etcd_server.py).

Keys are written with etcdctl, an independent client, while the store watches. The
writes run in a thread (``off``) so that the watch keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from confpy.stores.base import Change, Changes, Resync, StoreUnreachable
from confpy.stores.endpoints import Access, parse_endpoint
from confpy.stores.etcd import EtcdStore, Refused
from tests.support.etcd_fixtures import etcd_args
from tests.support.etcd_proxy import GrpcProxy
from tests.support.etcd_server import EtcdCluster, EtcdServer, TLSFiles, free_ports
from tests.support.watching import Recorder, off

T = TypeVar("T")
LOG = "confpy.etcd"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def opened(endpoints: Sequence[str], **kwargs: Any) -> AsyncIterator[EtcdStore]:
    store = EtcdStore(endpoints, Access(**kwargs))
    try:
        yield store
    finally:
        await store.close()


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG and text in r.getMessage()]


def assert_once_each(rec: Recorder) -> None:
    revs = rec.revisions()
    assert revs == sorted(set(revs)), f"revisions out of order or repeated: {revs}"


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger=LOG)
    yield caplog


# -- no etcd needed --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "target", "tls"),
    [
        ("http://127.0.0.1:2379", "127.0.0.1:2379", False),
        ("https://etcd1:4001", "etcd1:4001", True),
        ("127.0.0.1:4001", "127.0.0.1:4001", False),
        ("etcd1", "etcd1:2379", False),
        ("http://[::1]:2379", "[::1]:2379", False),
    ],
)
def test_endpoint_forms(text: str, target: str, tls: bool) -> None:
    ep = parse_endpoint(0, text, False)
    assert (ep.target, ep.tls, ep.url) == (target, tls, text)


def test_a_ca_turns_tls_on_for_plain_endpoints() -> None:
    assert parse_endpoint(0, "http://127.0.0.1:2379", True).tls


@pytest.mark.parametrize("text", ["ftp://h:1", "http://h:notaport", "http://:2379"])
def test_bad_endpoints_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="etcd endpoint"):
        EtcdStore([text])


def test_bad_tls_and_auth_settings_are_rejected(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="needs its key"):
        EtcdStore(["h:1"], Access(client_cert="c.pem"))
    with pytest.raises(ValueError, match="username and a password"):
        EtcdStore(["h:1"], Access(username="root"))
    with pytest.raises(ValueError, match=r"cannot read the etcd CA certificate .*missing\.pem"):
        EtcdStore(["h:1"], Access(ca_cert=str(tmp_path / "missing.pem")))


@pytest.mark.timeout(30)
def test_sibling_prefixes_stay_apart_in_snapshot_and_watch(etcd_any: EtcdServer, etcd_prefix: str) -> None:
    p = etcd_prefix
    for key in ("a", "a/x", "a-b/y", "av6/z", "a10"):
        etcd_any.put(p + key, key)

    async def main() -> tuple[list[str], list[str], list[str]]:
        async with opened([etcd_any.endpoint]) as store:
            only_a = await store.snapshot([p + "a/"])
            both = await store.snapshot([p + "a", p + "av6"])
            rec = Recorder(store, [p + "a"], both.revision)
            await off(etcd_any.put, p + "av6/new", "sibling")
            await off(etcd_any.put, p + "a-b/new", "sibling")
            rev = await off(etcd_any.put, p + "a/new", "mine")
            await rec.wait_revision(rev)
            await rec.stop()
            seen = [c.key for ev in rec.events if isinstance(ev, Changes) for c in ev.changes]
            return sorted(only_a.values), sorted(both.values), seen

    only_a, both, seen = run(main())
    assert only_a == [p + "a", p + "a/x"]
    assert both == [p + "a", p + "a/x", p + "av6/z"]
    assert seen == [p + "a/new"]


# -- snapshot -----------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_snapshot_reads_every_prefix(etcd_any: EtcdServer, etcd_prefix: str) -> None:
    p = etcd_prefix
    etcd_any.put(p + "a/1", "one")
    etcd_any.put(p + "a/2/deep", "two")
    etcd_any.put(p + "ab", "outside: shares the string but not the prefix a/")
    etcd_any.put(p + "c/1", "outside")
    etcd_any.put(p + "bin", b"\xff\xfe not utf-8")
    rev = etcd_any.put(p + "b/1", "uno y dos")

    async def main() -> Any:
        async with opened([etcd_any.endpoint]) as store:
            return await store.snapshot([p + "a/", p + "b/", p + "a/2/", p + "bin"])

    snap = run(main())
    assert snap.revision >= rev
    assert snap.values == {
        p + "a/1": "one",
        p + "a/2/deep": "two",
        p + "b/1": "uno y dos",
        p + "bin": "\udcff\udcfe not utf-8",
    }
    assert snap.values[p + "bin"].encode("utf-8", "surrogateescape") == b"\xff\xfe not utf-8"


@pytest.mark.timeout(30)
def test_snapshot_reads_all_prefixes_at_the_first_reads_revision(
    etcd_any: EtcdServer, etcd_prefix: str
) -> None:
    """A write landing between the range reads is not seen: all are read at one revision."""
    p = etcd_prefix
    etcd_any.put(p + "a/x", "1")
    etcd_any.put(p + "b/x", "1")

    async def main() -> Any:
        async with opened([etcd_any.endpoint]) as store:
            await store.snapshot([])  # connected: over the transport it will use
            real = store._transport.range
            reads = 0

            async def range_(start: bytes, end: bytes, revision: int) -> Any:
                nonlocal reads
                answer = await real(start, end, revision)
                if reads == 0:
                    await off(etcd_any.put, p + "b/x", "2")  # after the first read, before the second
                reads += 1
                return answer

            store._transport.range = range_  # type: ignore[method-assign]
            return await store.snapshot([p + "a/", p + "b/"]), reads

    snap, reads = run(main())
    assert reads == 2
    assert snap.values == {p + "a/x": "1", p + "b/x": "1"}
    assert etcd_any.get_prefix(p + "b/") == {p + "b/x": "2"}


@pytest.mark.timeout(30)
def test_snapshot_of_unreachable_endpoints_names_them_within_the_timeout() -> None:
    refused = f"http://127.0.0.1:{free_ports(1)[0]}"
    # A listener that never answers: TCP connects, gRPC's handshake never completes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        mute = f"127.0.0.1:{silent.getsockname()[1]}"

        async def main() -> None:
            async with opened([refused, mute], connect_timeout=1.0) as store:
                await store.snapshot(["/a/"])

        t0 = time.monotonic()
        with pytest.raises(StoreUnreachable) as exc:
            run(main())
        elapsed = time.monotonic() - t0
    assert elapsed < 4, elapsed
    msg = str(exc.value)
    assert refused in msg and mute in msg
    assert "Connection refused" in msg


# -- watch --------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_watch_follows_puts_and_deletes_and_ends_on_close(etcd_any: EtcdServer, etcd_prefix: str) -> None:
    a, c = etcd_prefix + "a/", etcd_prefix + "c/"

    async def main() -> None:
        store = EtcdStore([etcd_any.endpoint])
        snap = await store.snapshot([a, c])
        rec = Recorder(store, [a, c], snap.revision)
        r1 = await off(etcd_any.put, a + "1", "x")
        await off(etcd_any.put, etcd_prefix + "b/1", "between the prefixes: filtered out")
        r2 = await off(etcd_any.put, c + "1", "y")
        r3 = await off(etcd_any.put, a + "1", "x2")
        r4 = await off(etcd_any.delete, a + "1")
        await off(etcd_any.put, c + "2", "z")
        r6 = await off(etcd_any.delete, c, prefix=True)
        await rec.wait_revision(r6)
        assert rec.events == [
            Changes(r1, (Change(a + "1", "x"),)),
            Changes(r2, (Change(c + "1", "y"),)),
            Changes(r3, (Change(a + "1", "x2"),)),
            Changes(r4, (Change(a + "1", None),)),
            Changes(r6 - 1, (Change(c + "2", "z"),)),
            Changes(r6, (Change(c + "1", None), Change(c + "2", None))),
        ]
        await store.close()
        await asyncio.wait_for(rec.task, 5)  # ends quietly

    run(main())


@pytest.mark.timeout(30)
def test_a_transaction_arrives_as_one_batch(etcd_any: EtcdServer, etcd_prefix: str) -> None:
    a, c = etcd_prefix + "a/", etcd_prefix + "c/"
    etcd_any.put(a + "old", "1")

    async def main() -> None:
        async with opened([etcd_any.endpoint]) as store:
            snap = await store.snapshot([a, c])
            rec = Recorder(store, [a, c], snap.revision)
            r1 = await off(
                etcd_any.txn, {a + "1": "1", etcd_prefix + "b/1": "filtered", c + "1": "2"}, [a + "old"]
            )
            many = {f"{c}{i:03}": str(i) for i in range(120)}  # etcd allows 128 ops per txn
            r2 = await off(etcd_any.txn, many)
            await rec.wait_revision(r2)
            assert rec.events == [
                # One batch at its revision, across both watched prefixes, in key order.
                Changes(r1, (Change(a + "1", "1"), Change(a + "old", None), Change(c + "1", "2"))),
                Changes(r2, tuple(Change(k, v) for k, v in many.items())),
            ]
            await rec.stop()

    run(main())


@pytest.mark.timeout(60)
def test_kill_and_restart_loses_and_repeats_nothing(
    etcd_factory: Callable[..., EtcdServer], v3_api: str, log: pytest.LogCaptureFixture
) -> None:
    srv = etcd_factory(extra_args=etcd_args(v3_api))
    p = "/kill/"

    async def main() -> None:
        async with opened([srv.endpoint], connect_timeout=2) as store:
            snap = await store.snapshot([p])
            rec = Recorder(store, [p], snap.revision)
            r1 = await off(srv.put, p + "k1", "1")
            await rec.wait_revision(r1)

            port = srv.client_port
            await off(srv.kill)
            await rec.wait(lambda: messages(log, "lost connection to etcd"))
            # Back, but where the watcher cannot see it: these changes happen "while down".
            await off(srv.restart, client_port=free_ports(1)[0])
            await off(srv.put, p + "k2", "2")
            await off(srv.txn, {p + "k3": "3", p + "k4": "4"}, [p + "k1"])
            await off(srv.restart, client_port=port)
            r5 = await off(srv.put, p + "k5", "5")
            await rec.wait_revision(r5, 15)

            # A crash right after a big transaction: it arrives once, whole.
            rt = await off(srv.txn, {f"{p}t{i:02}": str(i) for i in range(50)})
            await off(srv.kill)
            await off(srv.start)
            r6 = await off(srv.put, p + "k6", "6")
            await rec.wait_revision(r6, 15)
            await rec.stop()

            assert_once_each(rec)
            assert [
                len(ev.changes) for ev in rec.events if isinstance(ev, Changes) and ev.revision == rt
            ] == [50]
            assert rec.state(snap.values) == await off(srv.get_prefix, p)
            assert p + "k2" in rec.state({})

    run(main())
    # Once per state change, not once per retry.
    assert len(messages(log, "lost connection to etcd")) == 2
    assert len(messages(log, "reconnected to etcd")) == 2
    assert not messages(log, "unreachable")


@pytest.mark.timeout(60)
def test_cluster_member_in_use_killed(etcd_cluster_any: EtcdCluster, log: pytest.LogCaptureFixture) -> None:
    cl = etcd_cluster_any
    p = "/cluster/"

    async def main() -> None:
        async with opened(cl.endpoints, connect_timeout=2) as store:
            snap = await store.snapshot([p])
            rec = Recorder(store, [p], snap.revision)
            r1 = await off(cl.put, p + "k1", "1")
            await rec.wait_revision(r1)
            await off(cl.kill, 0)  # the first endpoint: the one in use
            revs = [await off(cl.put, f"{p}k{i}", str(i)) for i in range(2, 6)]
            await rec.wait_revision(revs[-1], 15)
            await rec.stop()
            assert_once_each(rec)
            assert rec.state(snap.values) == await off(cl.get_prefix, p)

    run(main())
    assert messages(log, f"lost connection to etcd at {cl.members[0].endpoint}")
    assert messages(log, f"reconnected to etcd at {cl.members[1].endpoint}")


@pytest.mark.timeout(60)
def test_compaction_while_disconnected_resyncs(
    etcd_factory: Callable[..., EtcdServer], v3_api: str, log: pytest.LogCaptureFixture
) -> None:
    srv = etcd_factory(extra_args=etcd_args(v3_api))
    p = "/compact/"

    async def main() -> None:
        async with opened([srv.endpoint], connect_timeout=2) as store:
            snap = await store.snapshot([p])
            rec = Recorder(store, [p], snap.revision)
            r1 = await off(srv.put, p + "k1", "1")
            await rec.wait_revision(r1)

            port = srv.client_port
            await off(srv.restart, client_port=free_ports(1)[0])  # out of the watcher's sight
            await rec.wait(lambda: messages(log, "lost connection to etcd"))
            await off(srv.put, p + "k2", "2")
            await off(srv.delete, p + "k1")
            await off(srv.put, "/elsewhere", "not watched")
            compacted = await off(srv.compact)
            await off(srv.restart, client_port=port)

            await rec.wait(lambda: any(isinstance(ev, Resync) for ev in rec.events), 15)
            resync = rec.events[-1]
            assert isinstance(resync, Resync)
            assert resync.snapshot.revision >= compacted
            assert resync.snapshot.values == {p + "k2": "2"}

            r3 = await off(srv.put, p + "k3", "3")
            await rec.wait_revision(r3)
            assert rec.events[-1] == Changes(r3, (Change(p + "k3", "3"),))
            await rec.stop()

            # Starting from a compacted revision: the same, at once.
            late = Recorder(store, [p], snap.revision)
            await late.wait(lambda: late.events)
            first = late.events[0]
            assert isinstance(first, Resync)
            assert first.snapshot.values == {p + "k2": "2", p + "k3": "3"}
            await late.stop()

    run(main())


@pytest.mark.timeout(60)
def test_frozen_single_endpoint_is_noticed_and_followed_after_resume(
    etcd_factory: Callable[..., EtcdServer], v3_api: str, log: pytest.LogCaptureFixture
) -> None:
    srv = etcd_factory(extra_args=etcd_args(v3_api))
    p = "/frozen/"

    async def main() -> None:
        async with opened([srv.endpoint], connect_timeout=1) as store:
            snap = await store.snapshot([p])
            rec = Recorder(store, [p], snap.revision)
            r1 = await off(srv.put, p + "k1", "1")
            await rec.wait_revision(r1)
            t0 = time.monotonic()
            srv.pause()
            await rec.wait(lambda: messages(log, "lost connection to etcd"), 15)
            noticed = time.monotonic() - t0
            srv.resume()
            r2 = await off(srv.put, p + "k2", "2")
            await rec.wait_revision(r2, 15)
            await rec.stop()
            assert_once_each(rec)
            assert noticed < 10, noticed  # heartbeat: 5 s between two + 2.5 s for the answer

    run(main())
    assert "stopped answering its heartbeat" in messages(log, "lost connection to etcd")[0]
    assert len(messages(log, "reconnected to etcd")) == 1


@pytest.mark.timeout(60)
def test_frozen_member_in_use_fails_over(
    etcd_cluster_any: EtcdCluster, log: pytest.LogCaptureFixture
) -> None:
    cl = etcd_cluster_any
    p = "/failover/"

    async def main() -> None:
        async with opened(cl.endpoints, connect_timeout=1) as store:
            snap = await store.snapshot([p])
            rec = Recorder(store, [p], snap.revision)
            r1 = await off(cl.put, p + "k1", "1")
            await rec.wait_revision(r1)
            await off(cl.pause, 0)
            try:
                r2 = await off(cl.put, p + "k2", "2")  # through another member
                await rec.wait_revision(r2, 15)
            finally:
                cl.resume(0)
            await rec.stop()
            assert_once_each(rec)
            assert rec.state(snap.values) == await off(cl.get_prefix, p)

    run(main())
    assert messages(log, f"lost connection to etcd at {cl.members[0].endpoint}")
    assert messages(log, f"reconnected to etcd at {cl.members[1].endpoint}")


@pytest.mark.timeout(30)
def test_watch_waits_for_an_etcd_that_is_down_at_start(
    etcd_factory: Callable[..., EtcdServer], log: pytest.LogCaptureFixture
) -> None:
    srv = etcd_factory()
    rev = srv.revision()
    srv.stop()

    async def main() -> None:
        async with opened([srv.endpoint], connect_timeout=1) as store:
            rec = Recorder(store, ["/late/"], rev)
            await rec.wait(lambda: messages(log, "unreachable"))
            await off(srv.start)
            r1 = await off(srv.put, "/late/k", "v")
            await rec.wait_revision(r1, 15)
            await rec.stop()

    run(main())
    assert len(messages(log, "unreachable")) == 1
    assert messages(log, "connected to etcd")


# -- TLS and auth -------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_tls_with_client_certificates(
    etcd_factory: Callable[..., EtcdServer], etcd_certs: TLSFiles, v3_api: str
) -> None:
    srv = etcd_factory(tls=etcd_certs, extra_args=etcd_args(v3_api))
    tls = etcd_certs
    files = {"ca_cert": str(tls.ca), "client_cert": str(tls.client_cert), "client_key": str(tls.client_key)}
    srv.put("/tls/k", "v")

    async def main() -> None:
        async with opened([srv.endpoint], **files) as store:
            snap = await store.snapshot(["/tls/"])
            assert snap.values == {"/tls/k": "v"}
            rec = Recorder(store, ["/tls/"], snap.revision)
            r1 = await off(srv.put, "/tls/k", "w")
            await rec.wait_revision(r1)
            assert rec.events == [Changes(r1, (Change("/tls/k", "w"),))]
            await rec.stop()
        # A CA alone means TLS for a bare host:port too.
        async with opened([f"127.0.0.1:{srv.client_port}"], **files) as store:
            assert (await store.snapshot(["/tls/"])).values == {"/tls/k": "w"}
        # Without a client certificate the server refuses the handshake.
        async with opened([srv.endpoint], ca_cert=str(tls.ca), connect_timeout=2) as store:
            with pytest.raises(StoreUnreachable, match=srv.endpoint):
                await store.snapshot(["/tls/"])

    run(main())


@pytest.mark.timeout(30)
def test_username_and_password(etcd_factory: Callable[..., EtcdServer], v3_api: str) -> None:
    srv = etcd_factory(extra_args=etcd_args(v3_api))
    srv.enable_auth("s3cret")
    srv.put("/auth/k", "v")

    async def main() -> None:
        async with opened([srv.endpoint], username="root", password="s3cret") as store:
            snap = await store.snapshot(["/auth/"])
            assert snap.values == {"/auth/k": "v"}
            rec = Recorder(store, ["/auth/"], snap.revision)
            r1 = await off(srv.put, "/auth/k", "w")
            await rec.wait_revision(r1)
            await rec.stop()

        async with opened([srv.endpoint], username="root", password="wrong", connect_timeout=2) as store:
            t0 = time.monotonic()
            with pytest.raises(Refused, match=r"refused user 'root'.*authentication failed"):
                await store.snapshot(["/auth/"])
            with pytest.raises(Refused, match="authentication failed"):
                async for _ in store.watch(["/auth/"], snap.revision):
                    pass
            assert time.monotonic() - t0 < 2  # no retrying of a wrong password

        async with opened([srv.endpoint]) as store:
            with pytest.raises(Refused, match="user name is empty"):
                await store.snapshot(["/auth/"])

    run(main())


# -- the two transports -------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_an_endpoint_without_a_gateway_switches_the_store_to_grpc_once(
    etcd_factory: Callable[..., EtcdServer], log: pytest.LogCaptureFixture
) -> None:
    srv = etcd_factory(extra_args=etcd_args("grpc"))
    rev = srv.put("/nogw/k", "v")

    async def main() -> None:
        async with opened([srv.endpoint]) as store:
            assert (await store.snapshot(["/nogw/"])).values == {"/nogw/k": "v"}
            rec = Recorder(store, ["/nogw/"], rev)
            r1 = await off(srv.put, "/nogw/k", "w")
            await rec.wait_revision(r1)
            await rec.stop()
            assert rec.events == [Changes(r1, (Change("/nogw/k", "w"),))]

    run(main())
    switched = messages(log, "speaking gRPC")
    assert len(switched) == 1
    assert f"etcd at {srv.endpoint} serves no JSON gateway" in switched[0]


@pytest.mark.timeout(60)
def test_through_grpc_proxy_the_watch_stays_connected(
    etcd: EtcdServer, etcd_prefix: str, tmp_path: Any, log: pytest.LogCaptureFixture
) -> None:
    """An idle watch through grpc-proxy stays connected. The proxy sends away (GOAWAY
    too_many_pings, after about 17 s) a client whose HTTP/2 pings come more often than
    every 5 minutes with no answer between them, as the 5.5 s keepalive pings confpy
    sent before its heartbeat (a status call) replaced them: this test failed then."""
    p = etcd_prefix
    proxy = GrpcProxy(tmp_path / "proxy", [etcd.endpoint]).start()

    async def main() -> None:
        async with opened([proxy.endpoint]) as store:
            snap = await store.snapshot([p])
            rec = Recorder(store, [p], snap.revision)
            r1 = await off(etcd.put, p + "k", "1")
            await rec.wait_revision(r1)
            await asyncio.sleep(20)
            r2 = await off(etcd.put, p + "k", "2")
            await rec.wait_revision(r2)
            await rec.stop()
            assert rec.revisions() == [r1, r2]

    try:
        run(main())
    finally:
        proxy.stop()
    assert messages(log, "speaking gRPC")
    assert not messages(log, "lost connection")


@pytest.mark.timeout(30)
def test_over_the_gateway_no_grpc_is_loaded(etcd: EtcdServer, etcd_prefix: str) -> None:
    """The daemon's memory and start-up: gRPC's stack (16 MiB, 50 ms) only when needed."""
    script = f"""
import asyncio, sys
from confpy.stores.etcd import EtcdStore

async def main():
    store = EtcdStore([{etcd.endpoint!r}])
    snap = await store.snapshot([{etcd_prefix!r}])
    events = store.watch([{etcd_prefix!r}], snap.revision)
    first = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0.5)  # the watch is created
    first.cancel()
    await store.close()
    print(sorted(m for m in sys.modules if m.split(".")[0] in ("grpc", "aetcd", "google")))

asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20, check=True
    ).stdout
    assert out.strip() == "[]"
