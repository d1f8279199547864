"""The seed's Calico 2.x: its keys in etcd's v2 API, read by the seed's own command line.

``confd -confdir=/etc/calico/confd -interval=5 -watch --log-level=debug -node=http://etcd1:4001``
names no backend; confd's default is etcd's v2 API. confpy, given the same flags (a
loopback endpoint and a test confdir; the node name and the destination root come
from the environment), finds the keys there and says so once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from confpy.cli import main
from confpy.stores.file import FileStore
from tests.support.bird_confdir import CONFIG, bird_confdir, reloads
from tests.support.birdset import BIRD16, BirdSet
from tests.support.confpy_process import ConfpyProcess, read, wait_for
from tests.support.etcd_server import EtcdServer
from tests.test_bird_templates import statements

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "calico"
GOLDEN = ROOT / "tests" / "golden" / "node1"
FILES = BIRD16.files
DETECTED = "reading etcd's v2 API"


def data_file(path: Path) -> dict[str, str]:
    return asyncio.run(FileStore([path]).snapshot(["/"])).values


@pytest.fixture(autouse=True)
def _calico_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calico's BIRD build (the golden files are its), no router-id override; the
    daemons started here inherit it."""
    monkeypatch.setenv("BIRD_FLAVOR", "calico")
    monkeypatch.delenv("CALICO_ROUTER_ID", raising=False)


@pytest.fixture
def seed(etcd_calico: EtcdServer) -> EtcdServer:
    """The 6-node example cluster, written through the v2 API only."""
    etcd_calico.v2_load(data_file(EXAMPLES / "example-cluster.yaml"))
    return etcd_calico


@pytest.fixture
def confpy_seed(seed: EtcdServer, tmp_path: Path) -> Iterator[tuple[ConfpyProcess, Path, Path]]:
    confdir = bird_confdir(tmp_path / "confd", checks=False)
    root = tmp_path / "root"
    (root / CONFIG).mkdir(parents=True)
    argv = [f"-confdir={confdir}", "-interval=5", "-watch", "--log-level=debug", f"-node={seed.endpoint}"]
    env = {"NODENAME": "node1", "CONFPY_DEST_ROOT": str(root), "CONFPY_CONFIG_FILE": "/dev/null"}
    proc = ConfpyProcess(argv, tmp_path / "confpy.log", env)
    yield proc, root / CONFIG, confdir
    proc.close()


@pytest.mark.timeout(90)
def test_the_seeds_command_line_renders_node1_from_the_v2_api_and_follows_a_change(
    confpy_seed: tuple[ConfpyProcess, Path, Path], seed: EtcdServer
) -> None:
    proc, config, confdir = confpy_seed
    keys = data_file(EXAMPLES / "example-cluster.yaml")
    expected = BirdSet(ROOT, "node1").render(keys)

    def files_are(wanted: dict[str, str]) -> bool:
        return all(read(config / name) == text for name, text in wanted.items())

    try:
        wait_for(lambda: files_are(expected), 30, "node1's six files")
    except AssertionError as e:
        raise AssertionError(f"{e}; log:\n{proc.log}") from None
    for name in FILES:
        assert statements(read(config / name)) == statements((GOLDEN / name).read_text()), name
    assert proc.log.count(DETECTED) == 1
    # A seventh node joins, written as Calico 2.x wrote it: one v2 set per key.
    new = {
        "/calico/bgp/v1/host/node7/ip_addr_v4": "172.29.141.101",
        "/calico/bgp/v1/host/node7/ip_addr_v6": "",
    }
    seed.v2_load(new)
    after = BirdSet(ROOT, "node1").render(keys | new)
    assert "protocol bgp Mesh_172_29_141_101 from bgp_template {" in after["bird.cfg"]
    try:
        wait_for(lambda: files_are(after), 20, "node7 in bird.cfg")
    except AssertionError as e:
        raise AssertionError(f"{e}; log:\n{proc.log}") from None
    assert "bird" in reloads(confdir)
    assert proc.stop() == 0
    assert proc.log.count(DETECTED) == 1


def onetime(server: EtcdServer, root: Path, node: str, *flags: str) -> int:
    (root / CONFIG).mkdir(parents=True, exist_ok=True)
    confdir = bird_confdir(root.parent / f"confd-{len(list(root.parent.iterdir()))}", checks=False)
    return main(["-onetime", f"-confdir={confdir}", f"-node={server.endpoint}", f"-node-name={node}",
                 f"-dest-root={root}", "-config-file=/dev/null", *flags])  # fmt: skip


def on_disk(root: Path) -> dict[str, str]:
    return {name: read(root / CONFIG / name) for name in FILES}


@pytest.mark.timeout(60)
def test_2017_era_values_through_the_v2_api(etcd_calico: EtcdServer, tmp_path: Path) -> None:
    keys = data_file(EXAMPLES / "cluster-2017.yaml")
    etcd_calico.v2_load(keys)
    root = tmp_path / "root"
    assert onetime(etcd_calico, root, "kube-node-1", "-backend=etcdv2") == 0
    files = on_disk(root)
    assert files == BirdSet(ROOT, "kube-node-1").render(keys)
    # 2017 shapes rendered with the current meaning (spec 1.4, 1.5, 7).
    assert "neighbor 10.240.0.2 as 64514;" in files["bird.cfg"]  # a peer with only ip and as_num
    assert "neighbor 10.240.0.22 as 64515;" in files["bird.cfg"]
    assert "if ( net = 192.168.31.64/26 ) then { accept; }" in files["bird_aggr.cfg"]  # value "{}"
    assert "if ( net = 192.168.31.128/26 ) then { accept; }" in files["bird_aggr.cfg"]  # value ""


@pytest.mark.timeout(60)
def test_an_explicit_backend_etcd_guesses_nothing(
    seed: EtcdServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert onetime(seed, tmp_path / "root", "node1", "-backend=etcd") == 1  # the v3 API is empty
    assert DETECTED not in caplog.text
    assert "missing" in caplog.text


@pytest.mark.timeout(60)
def test_with_keys_in_the_v3_api_no_backend_means_the_v3_api(
    seed: EtcdServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = data_file(EXAMPLES / "example-cluster.yaml")
    as_node6 = {**keys, "/calico/bgp/v1/host/node6/as_num": "64999"}
    seed.txn(as_node6)  # the v2 API holds the example as it is
    root = tmp_path / "root"
    assert onetime(seed, root, "node1") == 0
    assert "neighbor 172.29.141.100 as 64999;" in on_disk(root)["bird.cfg"]
    assert DETECTED not in caplog.text


@pytest.mark.timeout(60)
def test_no_backend_and_an_etcd_without_the_v2_api_is_the_v3_api(
    etcd_factory: Callable[..., EtcdServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = etcd_factory()  # no --enable-v2, and nothing in the v3 API either
    assert onetime(server, tmp_path / "root", "node1") == 1  # node1's keys are missing
    assert DETECTED not in caplog.text and "unreachable" not in caplog.text
