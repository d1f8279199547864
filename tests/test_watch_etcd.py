"""confpy against a real etcd: -onetime, and the -watch daemon through faults."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aetcd
import pytest

from confpy.cli import main
from tests.conftest import MakeConfdir
from tests.support.confpy_process import App, ConfpyProcess, read, wait_for
from tests.support.etcd_server import EtcdCluster, EtcdServer, free_ports


@pytest.fixture
def app(make_confdir: MakeConfdir, tmp_path: Path, etcd_prefix: str) -> Iterator[App]:
    a = App(make_confdir, tmp_path, etcd_prefix)
    yield a
    a.close()


def seed(server: EtcdServer | EtcdCluster, app: App) -> None:
    server.txn({f"{app.key}/name": "a", f"{app.key}/peers/p1": "1", f"{app.key}/peers/p2": "2"})


def test_onetime_renders_from_etcd(app: App, etcd: EtcdServer) -> None:
    seed(etcd, app)
    assert (
        main(["-onetime", f"-confdir={app.confdir}", f"-node={etcd.endpoint}", "-config-file=/dev/null"]) == 0
    )
    assert read(app.out) == "name=a\np1=1\np2=2\n"


def test_onetime_against_unreachable_etcd_exits_3_in_bounded_time_naming_the_endpoints(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    p1, p2 = free_ports(2)
    start = time.monotonic()
    status = main(
        [
            "-onetime",
            f"-confdir={app.confdir}",
            f"-node=127.0.0.1:{p1}",
            f"-node=http://127.0.0.1:{p2}",
            "-connect-timeout=1s",
            "-config-file=/dev/null",
        ]
    )
    assert status == 3
    assert 1 <= time.monotonic() - start < 10, "tried until -connect-timeout, not longer"
    assert f"127.0.0.1:{p1}" in caplog.text and f"127.0.0.1:{p2}" in caplog.text
    assert not app.out.exists()


def test_onetime_waits_up_to_connect_timeout_for_an_etcd_that_starts_later(
    app: App, etcd_factory: Callable[..., EtcdServer], tmp_path: Path
) -> None:
    """A node booting before etcd: -onetime keeps trying a refused endpoint until the
    timeout instead of exiting 3 at once."""
    server = etcd_factory()
    seed(server, app)
    server.kill()  # down while the node boots
    argv = ["-onetime", f"-confdir={app.confdir}", f"-node={server.endpoint}", "-connect-timeout=20s"]
    proc = ConfpyProcess([*argv, "-config-file=/dev/null"], tmp_path / "onetime.log")
    try:
        wait_for(lambda: "store unreachable, trying for" in proc.log, 10, "the first refused attempt")
        time.sleep(2.0)  # etcd comes up 2 s later
        assert proc.proc.poll() is None, f"gave up before -connect-timeout:\n{proc.log}"
        server.restart()
        assert proc.proc.wait(30) == 0, proc.log
        assert read(app.out) == "name=a\np1=1\np2=2\n"
    finally:
        proc.close()


def test_watch_follows_puts_and_deletes_and_stops_cleanly(app: App, etcd: EtcdServer) -> None:
    seed(etcd, app)
    proc = app.watch([etcd.endpoint], "-wait-min=0")
    app.wait_file("name=a\np1=1\np2=2\n")
    etcd.put(f"{app.key}/peers/p3", "3")
    app.wait_file("name=a\np1=1\np2=2\np3=3\n")
    etcd.delete(f"{app.key}/peers/p1")
    app.wait_file("name=a\np2=2\np3=3\n")
    proc.wait_log(f"keys changed at revision {etcd.revision()}: {app.key}/peers/p1")
    etcd.put("/elsewhere/x", "1")  # not a key of ours: no render
    app.settle(etcd)
    assert (app.writes, app.reloads) == (4, 4), "three changes of ours and the settling one"
    assert proc.stop() == 0


def test_a_transaction_lands_as_one_render_and_one_reload(app: App, etcd: EtcdServer) -> None:
    seed(etcd, app)
    app.watch([etcd.endpoint], "-wait-min=0")
    app.wait_file("name=a\np1=1\np2=2\n")
    etcd.txn({f"{app.key}/name": "b", f"{app.key}/peers/p9": "9"}, deletes=[f"{app.key}/peers/p1"])
    app.wait_file("name=b\np2=2\np9=9\n")
    app.settle(etcd)
    assert (app.writes, app.reloads) == (3, 3), "the first apply, the transaction, the settling change"


async def burst(server: EtcdServer, puts: dict[str, str]) -> None:
    """Separate puts (500 revisions), back to back from one client."""
    async with aetcd.Client(host="127.0.0.1", port=server.client_port) as client:
        for key, value in puts.items():
            await client.put(key.encode(), value.encode())


def test_a_burst_of_500_puts_gives_a_handful_of_reloads_and_the_final_file(
    app: App, etcd: EtcdServer
) -> None:
    seed(etcd, app)
    app.watch([etcd.endpoint])  # default quiet window: 100 ms / 1 s
    app.wait_file("name=a\np1=1\np2=2\n")
    asyncio.run(burst(etcd, {f"{app.key}/peers/b{i:03d}": str(i) for i in range(500)}))
    app.wait_file(app.expected(etcd), timeout=20)
    app.settle(etcd)
    assert app.reloads <= 1 + 5 + 1, f"{app.reloads - 2} reloads for one burst"


def test_etcd_restarted_mid_watch_changes_made_meanwhile_are_applied(
    app: App, etcd_factory: Callable[..., EtcdServer]
) -> None:
    server = etcd_factory()
    seed(server, app)
    proc = app.watch([server.endpoint], "-wait-min=0")
    app.wait_file("name=a\np1=1\np2=2\n")
    port = server.client_port
    # Out of confpy's reach (another client port), the keys change and the history is compacted.
    server.restart(client_port=free_ports(1)[0])
    server.put(f"{app.key}/peers/p1", "changed-while-away")
    server.delete(f"{app.key}/peers/p2")
    server.compact()
    server.restart(client_port=port)
    app.wait_file("name=a\np1=changed-while-away\n", timeout=30)
    server.put(f"{app.key}/name", "after")
    app.wait_file("name=after\np1=changed-while-away\n")
    assert proc.proc.poll() is None


def test_etcd_killed_and_restarted_on_the_same_port(
    app: App, etcd_factory: Callable[..., EtcdServer]
) -> None:
    server = etcd_factory()
    seed(server, app)
    app.watch([server.endpoint], "-wait-min=0")
    app.wait_file("name=a\np1=1\np2=2\n")
    server.kill()
    time.sleep(1.0)
    server.restart()
    server.put(f"{app.key}/name", "back")
    app.wait_file("name=back\np1=1\np2=2\n", timeout=30)


def test_cluster_member_in_use_killed_watch_continues_on_another(app: App, etcd_cluster: EtcdCluster) -> None:
    seed(etcd_cluster, app)
    app.watch(etcd_cluster.endpoints, "-wait-min=0")
    app.wait_file("name=a\np1=1\np2=2\n")
    etcd_cluster.kill(0)  # confpy connects to the first endpoint first
    etcd_cluster.put(f"{app.key}/name", "failover")
    app.wait_file("name=failover\np1=1\np2=2\n", timeout=30)


def test_a_frozen_member_is_noticed_and_another_endpoint_used(app: App, etcd_cluster: EtcdCluster) -> None:
    seed(etcd_cluster, app)
    app.watch(etcd_cluster.endpoints, "-wait-min=0")
    app.wait_file("name=a\np1=1\np2=2\n")
    etcd_cluster.pause(0)
    try:
        etcd_cluster.put(f"{app.key}/name", "frozen")
        app.wait_file("name=frozen\np1=1\np2=2\n", timeout=30)
    finally:
        etcd_cluster.resume(0)


def test_tls_client_certificates(app: App, etcd_tls: EtcdServer) -> None:
    seed(etcd_tls, app)
    tls = etcd_tls.tls
    assert tls is not None
    args = ["-onetime", f"-confdir={app.confdir}", f"-node={etcd_tls.endpoint}", "-config-file=/dev/null",
            f"-client-cert={tls.client_cert}", f"-client-key={tls.client_key}", f"-client-ca-keys={tls.ca}"]  # fmt: skip
    assert main(args) == 0
    assert read(app.out) == "name=a\np1=1\np2=2\n"
    assert (
        main([a for a in args if not a.startswith("-client-cert") and not a.startswith("-client-key")]) == 3
    )


def test_username_and_password(app: App, etcd_factory: Callable[..., EtcdServer]) -> None:
    server = etcd_factory()
    seed(server, app)
    server.enable_auth("s3cret")
    base = [
        "-onetime",
        f"-confdir={app.confdir}",
        f"-node={server.endpoint}",
        "-config-file=/dev/null",
        "-username=root",
    ]
    assert main([*base, "-password=wrong"]) == 3
    assert main([*base, "-password=s3cret"]) == 0
    assert read(app.out) == "name=a\np1=1\np2=2\n"


def test_sighup_with_a_broken_template_keeps_the_old_set_running(app: App, etcd: EtcdServer) -> None:
    seed(etcd, app)
    proc = app.watch([etcd.endpoint], "-wait-min=0")
    app.wait_file("name=a\np1=1\np2=2\n")
    template = app.confdir / "templates" / "app.j2"
    template.write_text("{% for %}")
    proc.signal(signal.SIGHUP)
    proc.wait_log("config reload: new configuration is invalid, keeping the old one")
    assert "app.j2:1: template syntax error" in proc.log
    etcd.put(f"{app.key}/name", "still")
    app.wait_file("name=still\np1=1\np2=2\n")
    template.write_text("v2 {{ getv('/name') }}\n")
    proc.signal(signal.SIGHUP)
    app.wait_file("v2 still\n")
    assert proc.stop() == 0


HOSTILE = {
    "a": 'src = "a.j2"\ndest = "{out}/a.conf"\nprefix = "/KEY/a"\n',
    "b": 'src = "b.j2"\ndest = "{out}/b.conf"\nprefix = "/KEY/b"\n',
}


def test_a_value_that_is_not_utf8_fails_only_the_resource_that_reads_it(
    make_confdir: MakeConfdir, tmp_path: Path, etcd: EtcdServer, etcd_prefix: str
) -> None:
    key = etcd_prefix.rstrip("/")
    confdir = make_confdir(
        {n: body.replace("/KEY", key) for n, body in HOSTILE.items()},
        {"a.j2": "{% for p in gets('/*') %}{{ p.value }}\n{% endfor %}", "b.j2": "{{ getv('/v') }}\n"},
    )
    etcd.put(f"{key}/a/x", "fine")
    etcd.put(f"{key}/b/v", "1")
    out = tmp_path / "out"
    args = ["-confdir", str(confdir), "-node", etcd.endpoint, "-config-file=/dev/null", "-node-name=n1"]
    watcher = ConfpyProcess(["-watch", "-wait-min=0", *args], tmp_path / "watch.log")
    try:
        wait_for(
            lambda: read(out / "a.conf") == "fine\n" and read(out / "b.conf") == "1\n", 15, "first apply"
        )
        etcd.put(f"{key}/a/x", b"\xff\xfe bad")
        watcher.wait_log(f"key {key}/a/x: value is not UTF-8: b'\\xff\\xfe bad'")
        etcd.put(f"{key}/b/v", "2")
        wait_for(lambda: read(out / "b.conf") == "2\n", 15, f"b.conf after the bad value:\n{watcher.log}")
        assert read(out / "a.conf") == "fine\n", "the last good file stays"
        assert watcher.proc.poll() is None and "Traceback" not in watcher.log
        assert watcher.stop() == 0
    finally:
        watcher.close()
    (out / "b.conf").unlink()
    # Restarted with the value present: no crash loop, the rest is applied.
    assert main(["-onetime", *args]) == 1
    assert read(out / "b.conf") == "2\n"


def test_an_etcd_whose_revision_went_backwards_is_noticed_and_read_again(
    app: App, etcd_factory: Callable[..., EtcdServer]
) -> None:
    """etcd's data dir wiped (or restored from an older snapshot): the revision falls
    below what confpy has seen. Watching "from revision 40" would never apply another
    change; confpy warns, reads everything again and applies the difference."""
    server = etcd_factory()
    seed(server, app)
    for i in range(30):
        server.put(f"{app.key}/peers/p2", str(i))
    proc = app.watch([server.endpoint], "-wait-min=0")
    app.wait_file(app.expected(server))
    seen = server.revision()
    server.kill()
    shutil.rmtree(server.data_dir)
    server.start()
    server.txn({f"{app.key}/name": "fresh", f"{app.key}/peers/p9": "9"})
    assert server.revision() < seen
    app.wait_file("name=fresh\np9=9\n", timeout=30)
    proc.wait_log(f"below revision {seen} already seen")
    server.put(f"{app.key}/name", "after")  # and it follows the new history
    app.wait_file("name=after\np9=9\n")
