"""The one-shot read through etcd's JSON gateway, against real etcd: the same snapshot
as the gRPC store's, siblings apart, TLS, authentication, failover, and the hand-over
to gRPC for a large read."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest

from confpy.cli import main
from confpy.stores.base import StoreError, StoreUnreachable
from confpy.stores.endpoints import Access
from confpy.stores.etcd import EtcdStore
from confpy.stores.etcd_gateway import GATEWAY_MAX_KEYS, GatewayReader, UseStore
from tests.support.etcd_server import EtcdServer, free_ports


def grpc_snapshot(endpoint: str, prefixes: list[str]) -> dict[str, str]:
    async def main() -> dict[str, str]:
        store = EtcdStore([endpoint])
        try:
            return (await store.snapshot(prefixes)).values
        finally:
            await store.close()

    return asyncio.run(main())


def test_the_gateway_reads_what_the_grpc_store_reads(etcd: EtcdServer, etcd_prefix: str) -> None:
    p = etcd_prefix
    for key in ("a", "a/x", "a-b/y", "av6/z", "c/1"):
        etcd.put(p + key, key)
    etcd.put(p + "a/bin", b"\xff\xfe not utf-8")
    prefixes = [p + "a", p + "c/"]
    snap = GatewayReader([etcd.endpoint]).read(prefixes)
    assert snap.values == grpc_snapshot(etcd.endpoint, prefixes)
    assert sorted(snap.values) == [p + "a", p + "a/bin", p + "a/x", p + "c/1"]
    assert snap.values[p + "a/bin"].encode("utf-8", "surrogateescape") == b"\xff\xfe not utf-8"
    assert snap.revision == etcd.revision()


def test_a_large_read_is_handed_to_grpc(etcd: EtcdServer, etcd_prefix: str) -> None:
    etcd.txn({f"{etcd_prefix}big/{i}": "x" for i in range(100)})
    reader = GatewayReader([etcd.endpoint])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("confpy.stores.etcd_gateway.GATEWAY_MAX_KEYS", 99)
        with pytest.raises(UseStore):
            reader.read([etcd_prefix + "big"])
    assert len(reader.read([etcd_prefix + "big"]).values) == 100 <= GATEWAY_MAX_KEYS


def test_failover_to_the_next_endpoint_and_unreachable_names_them(etcd: EtcdServer, etcd_prefix: str) -> None:
    (closed,) = free_ports(1)
    etcd.put(etcd_prefix + "k", "v")
    dead = f"http://127.0.0.1:{closed}"
    assert GatewayReader([dead, etcd.endpoint]).read([etcd_prefix]).values == {etcd_prefix + "k": "v"}
    with pytest.raises(StoreUnreachable, match=f"127.0.0.1:{closed}"):
        GatewayReader([dead], Access(connect_timeout=1)).read([etcd_prefix])


def test_tls_with_client_certificates(etcd_tls: EtcdServer) -> None:
    tls = etcd_tls.tls
    assert tls is not None
    etcd_tls.put("/tls/k", "v")
    files = {"ca_cert": str(tls.ca), "client_cert": str(tls.client_cert), "client_key": str(tls.client_key)}
    assert GatewayReader([f"127.0.0.1:{etcd_tls.client_port}"], Access(**files)).read(["/tls"]).values == {
        "/tls/k": "v"
    }
    with pytest.raises(StoreUnreachable):
        GatewayReader([etcd_tls.endpoint], Access(ca_cert=str(tls.ca), connect_timeout=2)).read(["/tls"])


def test_username_and_password(etcd_factory: Callable[..., EtcdServer]) -> None:
    srv = etcd_factory()
    srv.put("/auth/k", "v")
    srv.enable_auth("s3cret")
    assert GatewayReader([srv.endpoint], Access(username="root", password="s3cret")).read(
        ["/auth"]
    ).values == {"/auth/k": "v"}
    with pytest.raises(StoreError, match="refused"):
        GatewayReader([srv.endpoint], Access(username="root", password="wrong")).read(["/auth"])


def test_a_one_shot_run_loads_neither_grpc_nor_asyncio(
    etcd: EtcdServer, etcd_prefix: str, tmp_path: Path
) -> None:
    """The point of the gateway: a small -onetime costs no gRPC stack and no event loop."""
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "conf.d" / "a.toml").write_text(
        f'[template]\nsrc = "a.j2"\ndest = "{tmp_path}/a.conf"\nprefix = "{etcd_prefix}"\n'
    )
    (tmp_path / "templates" / "a.j2").write_text("{{ getv('/k') }}\n")
    etcd.put(etcd_prefix + "k", "v")
    script = (
        "import sys\nfrom confpy.cli import main\n"
        f"rc = main(['-onetime', '-confdir={tmp_path}', '-node={etcd.endpoint}', '-config-file=/dev/null'])\n"
        "print(rc, sorted(m for m in ('grpc', 'asyncio', 'aetcd', 'yaml') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split("\n")[-2] == "0 []", out.stdout + out.stderr
    assert (tmp_path / "a.conf").read_text() == "v\n"


def test_an_etcd_without_its_gateway_is_read_through_grpc(
    etcd_factory: Callable[..., EtcdServer], tmp_path: Path
) -> None:
    server = etcd_factory(extra_args=["--enable-grpc-gateway=false"])
    server.put("/g/k", "v")
    with pytest.raises(UseStore, match="no JSON gateway"):
        GatewayReader([server.endpoint]).read(["/g"])
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "conf.d" / "a.toml").write_text(
        f'[template]\nsrc = "a.j2"\ndest = "{tmp_path}/a.conf"\nprefix = "/g"\n'
    )
    (tmp_path / "templates" / "a.j2").write_text("{{ getv('/k') }}\n")
    argv = ["-onetime", f"-confdir={tmp_path}", f"-node={server.endpoint}", "-config-file=/dev/null"]
    assert main(argv) == 0
    assert (tmp_path / "a.conf").read_text() == "v\n"


COUNT = b'{"header": {"revision": "1"}, "count": "1"}'


@pytest.mark.parametrize(
    "answers",
    [
        [b"2"],
        [b'{"header": []}'],
        [COUNT, b"[]"],
        [COUNT, b'{"kvs": [7]}'],
        [COUNT, b'{"kvs": [{"key": 7}]}'],
    ],
)
def test_an_answer_of_the_wrong_shape_is_an_endpoint_failing(answers: list[bytes]) -> None:
    # Found by the etcd_gateway fuzz harness's seeded mutator (tests/fuzz/corpus/etcd_gateway/regress-*): a JSON
    # answer that is not the object etcd sends went through as a TypeError or AttributeError.
    from confpy.stores import etcd_gateway
    from tests.fuzz.harnesses import FakeGatewayLink

    link = FakeGatewayLink([(200, a) for a in answers])
    with (
        mock.patch.object(etcd_gateway, "_Link", lambda *args: link),
        pytest.raises(StoreUnreachable, match=r"no etcd endpoint answered .*tried http://127.0.0.1:2379 \("),
    ):
        GatewayReader(["http://127.0.0.1:2379"]).read(["/calico"])
