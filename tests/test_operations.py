"""Running confpy for real: metrics, health, status, JSON logs without secrets,
systemd notify, config reload on SIGHUP and --watch-config."""

from __future__ import annotations

import json
import signal
import socket
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from confpy.cli import main
from tests.conftest import MakeConfdir
from tests.support.confpy_process import App, ConfpyProcess, read, wait_for
from tests.support.etcd_server import EtcdServer, free_ports

SECRET = "hunter2-very-secret"
PEER = json.dumps({"ip": "10.0.0.1", "as_num": "64512", "password": SECRET})
# Prints a BIRD-style password line, and feeds the peer JSON to a validating filter when
# /name is "bad": the validation error would quote the value, password and all.
TEMPLATE = """name={{ getv('/name') }}
{% for p in gets('/peers/*') %}
{% set peer = json(p.value) %}
peer {{ peer.ip }} password "{{ peer.password }}";
{% endfor %}
{% if getv('/name') == 'bad' %}{{ getv('/peers/p1') | ipv4 }}{% endif %}
"""


@pytest.fixture
def app(make_confdir: MakeConfdir, tmp_path: Path, etcd_prefix: str) -> Iterator[App]:
    a = App(make_confdir, tmp_path, etcd_prefix, template=TEMPLATE)
    yield a
    a.close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric(base: str, metric_name: str, **labels: str) -> float:
    _, text = get(base + "/metrics")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_metrics_health_readiness_status_and_json_logs(app: App, tmp_path: Path) -> None:
    etcd_port, http_port = free_ports(2)
    base = f"http://127.0.0.1:{http_port}"
    # The data goes in first, on a port confpy does not know; then etcd moves to the one it tries.
    server = EtcdServer(tmp_path / "etcd", client_port=free_ports(1)[0])
    server.start()
    server.txn({f"{app.key}/name": "a", f"{app.key}/peers/p1": PEER})
    server.stop()
    try:
        proc = app.watch(
            [f"http://127.0.0.1:{etcd_port}"],
            "-wait-min=0",
            f"--metrics-addr=127.0.0.1:{http_port}",
            "--log-format=json",
        )
        wait_for(lambda: get(base + "/healthz")[0] == 200, 15, "/healthz to answer")
        assert get(base + "/readyz")[0] == 503, "not ready before the first snapshot is applied"
        server.restart(client_port=etcd_port)
        wait_for(lambda: get(base + "/readyz")[0] == 200, 30, "/readyz")
        assert SECRET in read(app.out)
        renders = metric(base, "confpy_steps_total", step="render", name="app")
        assert renders >= 1
        assert metric(base, "confpy_store_connected", endpoint=server.endpoint) == 1

        server.put(f"{app.key}/name", "b")
        app.wait_file(f'name=b\npeer 10.0.0.1 password "{SECRET}";\n')
        wait_for(
            lambda: metric(base, "confpy_steps_total", step="render", name="app") > renders, 5, "render count"
        )
        assert metric(base, "confpy_steps_total", step="reload", name="app") == 2
        assert metric(base, "confpy_store_revision") == server.revision()
        assert metric(base, "confpy_seconds_since_sync") == 0, "in sync: 0, however long it stays quiet"

        bad = server.put(f"{app.key}/name", "bad")
        wait_for(lambda: metric(base, "confpy_resources_failing") == 1, 10, "the failure to show")
        assert metric(base, "confpy_store_revision") == bad, "the revision read, whatever the apply did"
        first = metric(base, "confpy_seconds_since_sync")
        wait_for(lambda: metric(base, "confpy_seconds_since_sync") > first, 5, "the out-of-sync time to grow")
        status = json.loads(get(base + "/status")[1])
        entry = status["resources"]["app"]
        assert entry["result"] == "failed" and entry["failed_step"] == "render"
        assert f"key {app.key}/peers/p1" in entry["error"] and "is not an IPv4 address" in entry["error"]
        assert entry["next_retry"] is None, "bad data waits for a change, not a timer"
        assert SECRET not in json.dumps(status)
        assert read(app.out).startswith("name=b\n"), "the last good file stays"
        assert proc.stop() == 0
    finally:
        server.close()

    records = [json.loads(line) for line in proc.log.splitlines() if line.strip()]
    assert all({"time", "level", "message"} <= r.keys() for r in records)
    wrote = [r for r in records if r.get("unit") == "app" and "wrote" in r["message"]]
    assert wrote and all(isinstance(r["revision"], int) for r in wrote)
    assert any(r.get("keys") == [f"{app.key}/name"] for r in wrote), "each write names the keys that changed"
    assert any("<redacted>" in r["message"] for r in records), "the failing value was logged, masked"
    assert SECRET not in proc.log


def test_a_file_holding_a_secret_is_0640_in_its_readers_group_and_noop_masks_it(
    make_confdir: MakeConfdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    confdir = make_confdir(
        {"peers": 'src = "p.j2"\ndest = "{out}/peers.conf"\nprefix = "/app"\n'},
        {"p.j2": "{% for p in gets('/peers/*') %}password \"{{ json(p.value).password }}\";\n{% endfor %}"},
    )
    data = tmp_path / "d.yaml"
    data.write_text(f"app:\n  peers:\n    p1: '{PEER}'\n")
    args = [f"-confdir={confdir}", f"-file={data}", "-config-file=/dev/null"]
    assert main(["-noop", *args]) == 0
    report = capsys.readouterr().out
    assert 'password "<redacted>"' in report and SECRET not in report
    assert main(["-onetime", *args]) == 0
    dest = tmp_path / "out" / "peers.conf"
    assert SECRET in dest.read_text()
    # No daemon to read it here: the directory's group reads it, nobody else.
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert dest.stat().st_gid == dest.parent.stat().st_gid
    assert main(["--stdout", *args]) == 0
    assert SECRET not in capsys.readouterr().out
    assert main(["--stdout", "--show-secrets", *args]) == 0
    assert SECRET in capsys.readouterr().out


def test_systemd_notify_ready_status_watchdog_and_stopping(
    app: App, etcd: EtcdServer, tmp_path: Path
) -> None:
    etcd.txn({f"{app.key}/name": "a", f"{app.key}/peers/p1": PEER})
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        app_env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
        proc = app.watch([etcd.endpoint], env=app_env)
        seen: list[str] = []

        def receive_until(predicate: Callable[[str], bool]) -> None:
            while not any(predicate(m) for m in seen):
                seen.extend(sock.recv(4096).decode().split("\n"))

        receive_until(lambda m: m == "READY=1")
        assert read(app.out).startswith("name=a"), "READY=1 only once the first snapshot is applied"
        receive_until(lambda m: m == "WATCHDOG=1")
        assert any(m.startswith("STATUS=revision") and "all in sync" in m for m in seen)
        proc.signal(signal.SIGTERM)
        receive_until(lambda m: m == "STOPPING=1")
        assert proc.proc.wait(10) == 0


NEW_RESOURCE = 'src = "extra.j2"\ndest = "{out}/extra.conf"\nprefix = "{key}"\nkeys = ["/name"]\n'


@pytest.mark.parametrize("how", ["sighup", "watch-config"])
def test_a_new_resource_is_picked_up(app: App, etcd: EtcdServer, how: str) -> None:
    etcd.txn({f"{app.key}/name": "a", f"{app.key}/peers/p1": PEER})
    proc = app.watch([etcd.endpoint], *(["--watch-config"] if how == "watch-config" else []))
    app.wait_file(f'name=a\npeer 10.0.0.1 password "{SECRET}";\n')
    (app.confdir / "templates" / "extra.j2").write_text("extra {{ getv('/name') }}\n")
    out = app.out.parent
    (app.confdir / "conf.d" / "extra.toml").write_text(
        "[template]\n" + NEW_RESOURCE.format(out=out, key=app.key)
    )
    if how == "sighup":
        proc.signal(signal.SIGHUP)
    wait_for(lambda: read(out / "extra.conf") == "extra a\n", 15, f"extra.conf; log:\n{proc.log}")
    assert "config reload: loaded 2 resources" in proc.log


def test_sighup_rereads_the_config_file(app: App, etcd: EtcdServer, tmp_path: Path) -> None:
    etcd.txn({f"{app.key}/name": "a", f"{app.key}/peers/p1": PEER})
    conf = tmp_path / "confpy.toml"
    conf.write_text('log-level = "info"\n')
    proc = app.watch([etcd.endpoint], f"-config-file={conf}")
    app.wait_file(f'name=a\npeer 10.0.0.1 password "{SECRET}";\n')
    assert "rendered app" not in proc.log
    conf.write_text('log-level = "debug"\n')
    proc.signal(signal.SIGHUP)
    proc.wait_log("config reload: loaded 1 resources")
    etcd.put(f"{app.key}/name", "b")
    proc.wait_log("rendered app from")


def test_noop_watch_reports_what_would_change_and_writes_nothing(app: App, etcd: EtcdServer) -> None:
    etcd.txn({f"{app.key}/name": "a", f"{app.key}/peers/p1": PEER})
    proc = app.watch([etcd.endpoint], "-noop", "-wait-min=0")
    proc.wait_log("would reload once: echo r")
    etcd.put(f"{app.key}/name", "b")
    proc.wait_log("+name=b")
    assert not app.out.exists()
    assert SECRET not in proc.log


def test_sigterm_stops_within_2_s_and_kills_a_hung_reload(make_confdir: MakeConfdir, tmp_path: Path) -> None:
    confdir = make_confdir(
        {"app": 'src = "a.j2"\ndest = "{out}/a.conf"\nprefix = "/app"\nreload_cmd = "sleep 28.75"\n'},
        {"a.j2": "{{ getv('/name') }}\n"},
    )
    data = tmp_path / "d.yaml"
    data.write_text("app:\n  name: a\n")
    args = ["-watch", f"-confdir={confdir}", f"-file={data}", "-config-file=/dev/null", "-node-name=n1"]
    proc = ConfpyProcess(args, tmp_path / "confpy.log")
    try:
        wait_for(lambda: read(tmp_path / "out" / "a.conf") == "a\n", 15, "the first write")
        wait_for(lambda: bool(sleepers()), 5, "the reload to hang")
        start = time.monotonic()
        assert proc.stop(timeout=5) == 0, proc.log
        assert time.monotonic() - start < 2, proc.log
        assert sleepers() == [], "the hung reload's process group is killed"
        assert "killed 1 running command" in proc.log
    finally:
        proc.close()


def sleepers() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "28.75"]]


def test_status_names_the_units_pending_until_their_change_is_applied(app: App, etcd: EtcdServer) -> None:
    """/status's ``pending``: with a 3 s quiet window a change is read (``store_revision``)
    well before it is applied; once the revision is read and nothing is pending, the file
    and its reload are done. What a test or an operator waits for instead of sleeping."""
    (http_port,) = free_ports(1)
    base = f"http://127.0.0.1:{http_port}"
    etcd.txn({f"{app.key}/name": "a", f"{app.key}/peers/p1": PEER})
    proc = app.watch([etcd.endpoint], "-wait-min=3s", "-wait-max=3s", f"--metrics-addr=127.0.0.1:{http_port}")
    wait_for(lambda: get(base + "/readyz")[0] == 200, 30, "/readyz")
    assert json.loads(get(base + "/status")[1])["pending"] == []
    revision = etcd.put(f"{app.key}/name", "b")
    seen: list[list[str]] = []

    def applied() -> bool:
        code, body = get(base + "/status")
        status = json.loads(body) if code == 200 else {}
        if status.get("store_revision", 0) < revision:
            return False
        seen.append(status["pending"])
        return not status["pending"]

    wait_for(applied, 30, "revision read and nothing pending")
    assert read(app.out).startswith("name=b\n") and app.reloads == 2, "applied and reloaded by then"
    assert ["app"] in seen, f"the unit was pending while its change waited for the window: {seen}"
    assert proc.stop() == 0
