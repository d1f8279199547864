"""pytest fixtures for tests against a real etcd (helpers in ``tests/support/etcd_server.py``).

- ``etcd``: one single-member etcd shared by the whole session (starting one costs
  about half a second), serving the v2 API too. Tests using it must keep to their own
  ``etcd_prefix`` and must not stop, pause, compact it or turn auth on: those take
  ``etcd_factory``.
- ``etcd_prefix``: a key prefix no other test uses, ending in ``/``.
- ``etcd_calico``: a single-member etcd (v2 API on) for the tests of Calico's fixed key
  paths (``/calico/...``), shared by the session and empty at the start of each test
  (every v3 key and every v2 key under ``/calico`` is deleted first).
- ``etcd_factory``: ``etcd_factory(tls=None, enable_v2=False)`` starts a private member,
  stopped and removed after the test; ``enable_v2`` serves etcd's v2 API too.
- ``etcd_tls``: a private member that requires TLS client certificates
  (``etcd_tls.tls`` holds the CA, server and client files).
- ``etcd_cluster``: a private 3-member cluster.
- ``v3_api``: ``"gateway"`` or ``"grpc"``, once each: the test runs twice, and
  ``etcd_any`` (shared, like ``etcd``), ``etcd_args(v3_api)`` (for ``etcd_factory``)
  and ``etcd_cluster_any`` give an etcd that serves its JSON gateway, then one that
  does not, so the store speaks each of its two transports.

Tests using any of them are marked ``etcd``. Everything listens on 127.0.0.1. They
are skipped, with the reason, only when the etcd binaries are missing
(``apt-get install etcd-server etcd-client``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.etcd_server import ETCD, ETCDCTL, OPENSSL, EtcdCluster, EtcdServer, TLSFiles, make_certs

_counter = itertools.count(1)
_ETCD_FIXTURES = {
    "etcd",
    "etcd_any",
    "etcd_calico",
    "etcd_factory",
    "etcd_tls",
    "etcd_cluster",
    "etcd_cluster_any",
}
#: etcd's flag for an etcd that serves gRPC only, as an ``etcd grpc-proxy`` does.
NO_GATEWAY = ("--enable-grpc-gateway=false",)


def etcd_args(v3_api: str) -> Sequence[str]:
    """The flags of an etcd that serves ``v3_api`` ("gateway": the default, or "grpc")."""
    return NO_GATEWAY if v3_api == "grpc" else ()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use an etcd fixture, so that ``-m "not etcd"`` leaves them out."""
    for item in items:
        if _ETCD_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.etcd)


def _require_etcd() -> None:
    if ETCD is None or ETCDCTL is None:
        pytest.skip("etcd and etcdctl are not installed (Debian: apt-get install etcd-server etcd-client)")


def _serve(**options: Any) -> Iterator[EtcdServer]:
    _require_etcd()
    server = EtcdServer(**options)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdServer]:
    yield from _serve(enable_v2=True)


@pytest.fixture(scope="session")
def _grpc_only_server() -> Iterator[EtcdServer]:
    yield from _serve(extra_args=NO_GATEWAY)


@pytest.fixture(params=["gateway", "grpc"])
def v3_api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def etcd_any(v3_api: str, request: pytest.FixtureRequest) -> EtcdServer:
    server: EtcdServer = request.getfixturevalue("etcd" if v3_api == "gateway" else "_grpc_only_server")
    return server


@pytest.fixture(scope="session")
def _calico_server() -> Iterator[EtcdServer]:
    yield from _serve(enable_v2=True)


@pytest.fixture
def etcd_calico(_calico_server: EtcdServer) -> EtcdServer:
    _calico_server.delete("/", prefix=True)
    _calico_server.v2("DELETE", "/calico", recursive="true")
    return _calico_server


@pytest.fixture
def etcd_prefix(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60]
    return f"/confpy-test/{next(_counter)}-{name}/"


@pytest.fixture(scope="session")
def etcd_certs(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    if OPENSSL is None:
        pytest.skip("openssl is not installed")
    return make_certs(tmp_path_factory.mktemp("etcd-certs"))


@pytest.fixture
def etcd_factory(tmp_path: Path) -> Iterator[Callable[..., EtcdServer]]:
    _require_etcd()
    servers: list[EtcdServer] = []

    def start(
        *, tls: TLSFiles | None = None, enable_v2: bool = False, extra_args: Sequence[str] = ()
    ) -> EtcdServer:
        server = EtcdServer(
            tmp_path / f"etcd{len(servers)}", tls=tls, enable_v2=enable_v2, extra_args=extra_args
        )
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def etcd_tls(etcd_factory: Callable[..., EtcdServer], etcd_certs: TLSFiles) -> EtcdServer:
    return etcd_factory(tls=etcd_certs)


def _cluster(workdir: Path, extra_args: Sequence[str]) -> Iterator[EtcdCluster]:
    _require_etcd()
    cluster = EtcdCluster(3, workdir, extra_args=extra_args)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    yield from _cluster(tmp_path / "cluster", ())


@pytest.fixture
def etcd_cluster_any(tmp_path: Path, v3_api: str) -> Iterator[EtcdCluster]:
    yield from _cluster(tmp_path / "cluster", etcd_args(v3_api))
