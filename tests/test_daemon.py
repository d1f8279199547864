"""The watch daemon's scheduling, against the in-memory store (etcd: tests/test_watch_etcd.py)."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest

from confpy.daemon import Daemon
from confpy.engine import Engine
from confpy.settings import Settings
from confpy.stores.memory import MemoryStore
from tests.conftest import MakeConfdir
from tests.support.confpy_process import read


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Harness:
    def __init__(
        self, daemon: Daemon, store: MemoryStore, out: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        self.daemon, self.store, self.out, self.caplog = daemon, store, out, caplog

    @property
    def reloads(self) -> int:
        return len(read(self.out.parent.parent / "reloads").splitlines())

    @property
    def writes(self) -> int:
        records = self.caplog.get_records("setup") + self.caplog.records  # the first apply is in setup
        return sum(1 for r in records if r.getMessage().startswith(f"wrote {self.out} "))

    async def settle(self, name: str = "settled") -> None:
        """Instead of sleeping: a later change the resource reads, written and reloaded.
        The daemon applies changes in order, so all before it are done by then."""
        revision = await self.store.put("/app/name", name)
        await until(lambda: f"keys changed at revision {revision}: /app/name" in self.caplog.text)
        await until(lambda: self.reloads == self.writes)


@pytest.fixture
async def harness(
    make_confdir: MakeConfdir,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Harness]:
    caplog.set_level(logging.INFO)
    options = getattr(request, "param", {})
    confdir = make_confdir(
        {
            "app": 'src = "app.j2"\ndest = "{out}/app.conf"\nprefix = "/app"\nkeys = ["/peers", "/name"]\nreload_cmd = "echo r >> {out}/../reloads"\n'
        },
        {"app.j2": "name={{ getv('/name') }}\n{% for p in gets('/peers/*') %}{{ p.value }}\n{% endfor %}"},
    )
    settings = Settings(
        confdir=confdir, watch=True, node_name="n1", **{"wait_min": 0.05, "wait_max": 0.5, **options}
    )
    store = MemoryStore({"/app/name": "a", "/app/peers/1": "p1", "/other/x": "1"})
    daemon = Daemon(Engine.create(settings, store))
    task = asyncio.create_task(daemon.run())
    h = Harness(daemon, store, tmp_path / "out" / "app.conf", caplog)
    await until(lambda: read(h.out) == "name=a\np1\n")
    yield h
    daemon.stop()
    assert await asyncio.wait_for(task, 5) == 0


async def test_follows_puts_and_deletes(harness: Harness) -> None:
    await harness.store.put("/app/peers/2", "p2")
    await until(lambda: read(harness.out) == "name=a\np1\np2\n")
    await harness.store.delete("/app/peers/1")
    await until(lambda: read(harness.out) == "name=a\np2\n")
    # The file is replaced before its reload runs: wait for the reload, then count.
    await until(lambda: harness.reloads >= 3)
    assert harness.reloads == 3


@pytest.mark.parametrize("harness", [{"wait_min": 0.2, "wait_max": 5.0}], indirect=True)
async def test_a_burst_becomes_one_render_and_one_reload(harness: Harness) -> None:
    for i in range(200):
        await harness.store.put(f"/app/peers/{i:03d}", f"v{i}")
    await until(lambda: "v199" in read(harness.out))
    await harness.settle()
    # The first apply, the burst, the settling change: one write and one reload each.
    assert (harness.writes, harness.reloads) == (3, 3)


async def test_changes_outside_the_resource_keys_render_nothing(harness: Harness) -> None:
    await harness.store.put("/other/x", "2")
    await harness.settle()
    assert (harness.writes, harness.reloads) == (2, 2), "the first apply and the settling change only"


async def test_a_failed_resource_keeps_its_last_good_file_and_recovers_on_the_next_change(
    harness: Harness,
) -> None:
    await harness.store.delete("/app/name")
    await until(lambda: "app" in harness.daemon.retries)
    assert read(harness.out) == "name=a\np1\n"
    await harness.store.put("/app/name", "b")
    await until(lambda: read(harness.out) == "name=b\np1\n")
    await until(lambda: "app" not in harness.daemon.retries)  # cleared once the apply thread returns


@pytest.mark.parametrize("harness", [{"interval": 0.2}], indirect=True)
async def test_interval_reconcile_restores_a_file_deleted_by_hand(harness: Harness) -> None:
    harness.out.unlink()
    await until(lambda: read(harness.out) == "name=a\np1\n")


async def test_sighup_with_a_broken_template_keeps_the_old_set_running(harness: Harness) -> None:
    templates = harness.daemon.settings.confdir / "templates"
    (templates / "app.j2").write_text("{% for %}")
    harness.daemon.request_config_reload()
    await until(lambda: "keeping the old one" in harness.caplog.text)
    await harness.store.put("/app/name", "c")
    await until(lambda: read(harness.out) == "name=c\np1\n")
    (templates / "app.j2").write_text("new {{ getv('/name') }}\n")
    harness.daemon.request_config_reload()
    await until(lambda: read(harness.out) == "new c\n")


async def test_a_failed_reload_is_retried_on_a_timer_until_it_succeeds(
    make_confdir: MakeConfdir, tmp_path: Path
) -> None:
    flag = tmp_path / "daemon-up"
    confdir = make_confdir(
        {
            "app": f'src = "app.j2"\ndest = "{{out}}/app.conf"\nprefix = "/app"\nreload_cmd = "test -e {flag} && echo r >> {{out}}/../reloads"\n'
        },
        {"app.j2": "{{ getv('/name') }}\n"},
    )
    settings = Settings(confdir=confdir, watch=True, node_name="n1", wait_min=0.0)
    daemon = Daemon(Engine.create(settings, MemoryStore({"/app/name": "a"})))
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: "app" in daemon.retries)
        assert read(tmp_path / "out" / "app.conf") == "a\n", "the file is written; only the reload failed"
        flag.touch()
        await until(lambda: read(tmp_path / "reloads") == "r\n", timeout=5)
        # The reload's output lands before the apply thread returns and clears the retry.
        await until(lambda: "app" not in daemon.retries, timeout=5)
    finally:
        daemon.stop()
        assert await asyncio.wait_for(task, 5) == 0


async def test_a_full_disk_is_retried_and_written_once_it_fits_again(
    make_confdir: MakeConfdir, small_tmpfs: Path
) -> None:
    confdir = make_confdir(
        {"app": f'src = "app.j2"\ndest = "{small_tmpfs}/app.conf"\nprefix = "/app"\n'},
        {"app.j2": "{{ getv('/blob') }}\n"},
    )
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"f" * 40_000)  # someone else's file fills the disk
    settings = Settings(confdir=confdir, watch=True, node_name="n1", wait_min=0.0)
    daemon = Daemon(Engine.create(settings, MemoryStore({"/app/blob": "b" * 30_000})))
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.retries.attempts("app") >= 2, timeout=10)
        assert not (small_tmpfs / "app.conf").exists()
        assert [p.name for p in small_tmpfs.iterdir()] == ["filler"], "no stage left by any attempt"
        filler.unlink()
        await until(lambda: read(small_tmpfs / "app.conf") == "b" * 30_000 + "\n", timeout=10)
        assert sorted(p.name for p in small_tmpfs.iterdir()) == ["app.conf"]
    finally:
        daemon.stop()
        assert await asyncio.wait_for(task, 5) == 0


async def test_a_daemon_that_is_not_running_has_nothing_to_reload_and_nothing_is_retried(
    make_confdir: MakeConfdir, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    absent = f"confpy-absent-{os.getpid()}"
    confdir = make_confdir(
        {
            "app": f'src = "app.j2"\ndest = "{{out}}/app.conf"\nprefix = "/app"\nreload_signal = "HUP"\nreload_process = "{absent}"\n'
        },
        {"app.j2": "{{ getv('/name') }}\n"},
    )
    store = MemoryStore({"/app/name": "a"})
    daemon = Daemon(Engine.create(Settings(confdir=confdir, watch=True, node_name="n1", wait_min=0.0), store))
    task = asyncio.create_task(daemon.run())
    out = tmp_path / "out" / "app.conf"
    try:
        await until(lambda: read(out) == "a\n")
        await store.put("/app/name", "b")
        await until(lambda: read(out) == "b\n")
        await until(lambda: caplog.text.count("nothing to reload") == 2)
        assert len(daemon.retries) == 0, "applied: nothing owed, nothing retried"
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert not any(p.name.startswith(".confpy-pending") for p in out.parent.iterdir())
    finally:
        daemon.stop()
        assert await asyncio.wait_for(task, 5) == 0


async def test_a_hung_reload_holds_back_only_its_own_unit(make_confdir: MakeConfdir, tmp_path: Path) -> None:
    hung = tmp_path / "hung"
    confdir = make_confdir(
        {
            "slow": f'src = "s.j2"\ndest = "{{out}}/slow.conf"\nprefix = "/app/slow"\nreload_cmd = "test -e {hung} && sleep 29.25 || true"\n',
            "fast": 'src = "f.j2"\ndest = "{out}/fast.conf"\nprefix = "/app/fast"\nreload_cmd = "true"\n',
        },
        {"s.j2": "{{ getv('/v') }}\n", "f.j2": "{{ getv('/v') }}\n"},
    )
    store = MemoryStore({"/app/slow/v": "1", "/app/fast/v": "1"})
    daemon = Daemon(Engine.create(Settings(confdir=confdir, watch=True, node_name="n1", wait_min=0.0), store))
    task = asyncio.create_task(daemon.run())
    out = tmp_path / "out"
    try:
        await until(lambda: read(out / "slow.conf") == "1\n" and read(out / "fast.conf") == "1\n")
        await until(lambda: len(daemon.workers) == 0)  # the first reloads are done
        hung.touch()
        await store.put("/app/slow/v", "2")
        await until(lambda: read(out / "slow.conf") == "2\n")  # written; its reload now hangs
        for i in range(3, 6):
            await store.put("/app/fast/v", str(i))
            await until(lambda i=i: read(out / "fast.conf") == f"{i}\n", timeout=3)
        assert "slow" in daemon.workers, "the slow unit's reload is still running"
        start = asyncio.get_running_loop().time()
        daemon.stop()
        assert await asyncio.wait_for(task, 5) == 0
        assert asyncio.get_running_loop().time() - start < 2, "stopped within 2 s"
        sleepers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "29.25"]]
        assert sleepers == [], "the hung reload's process group is killed"
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 5)
