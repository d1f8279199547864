"""Run confpy as a real process (the daemon) and watch what it does, with bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.conftest import MakeConfdir
from tests.support.etcd_server import EtcdCluster, EtcdServer


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


class ConfpyProcess:
    """``python -m confpy ARGS`` with its log in a file; always stopped by :meth:`close`."""

    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "confpy", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    @property
    def log(self) -> str:
        return read(self.log_path)

    def wait_log(self, text: str, timeout: float = 15.0, count: int = 1) -> None:
        wait_for(lambda: self.log.count(text) >= count, timeout, f"{text!r} x{count} in the log:\n{self.log}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and the exit status (killed after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"confpy did not stop within {timeout:g} s:\n{self.log}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


TEMPLATE = (
    "name={{ getv('/name') }}\n{% for p in gets('/peers/*') %}{{ base(p.key) }}={{ p.value }}\n{% endfor %}"
)


class App:
    """One resource reading ``<prefix>app/name`` and ``<prefix>app/peers/*``."""

    def __init__(
        self, make_confdir: MakeConfdir, tmp_path: Path, prefix: str, template: str = TEMPLATE
    ) -> None:
        self.key = prefix + "app"
        self.confdir = make_confdir(
            {
                "app": f'src = "app.j2"\ndest = "{{out}}/app.conf"\nprefix = "{self.key}"\nkeys = ["/peers", "/name"]\nreload_cmd = "echo r >> {{out}}/../reloads"\n'
            },
            {"app.j2": template},
        )
        self.out = tmp_path / "out" / "app.conf"
        self.reload_log = tmp_path / "reloads"
        self.tmp_path = tmp_path
        self.procs: list[ConfpyProcess] = []

    @property
    def reloads(self) -> int:
        return len(read(self.reload_log).splitlines())

    def expected(self, server: EtcdServer | EtcdCluster) -> str:
        keys = server.get_prefix(self.key + "/")
        peers = sorted((k.rsplit("/", 1)[1], v) for k, v in keys.items() if "/peers/" in k)
        return f"name={keys[self.key + '/name']}\n" + "".join(f"{k}={v}\n" for k, v in peers)

    def watch(self, nodes: list[str], *extra: str, env: dict[str, str] | None = None) -> ConfpyProcess:
        args = ["-watch", f"-confdir={self.confdir}", "-node-name=n1", "-config-file=/dev/null", *extra]
        for n in nodes:
            args += ["-node", n]
        proc = ConfpyProcess(args, self.tmp_path / f"confpy{len(self.procs)}.log", env)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop (kill) every watcher started by :meth:`watch`."""
        for p in self.procs:
            p.close()

    @property
    def writes(self) -> int:
        """Writes of the file that the watchers logged."""
        return sum(p.log.count(f"wrote {self.out} ") for p in self.procs)

    def settle(self, server: EtcdServer | EtcdCluster, name: str = "settled") -> None:
        """Instead of sleeping: a later change the resource reads, written and reloaded.
        A watcher applies changes in revision order, so all before it are done by then."""
        revision = server.put(f"{self.key}/name", name)
        self.wait_file(self.expected(server))
        logged = f"keys changed at revision {revision}: {self.key}/name"
        wait_for(lambda: any(logged in p.log for p in self.procs), 15, f"{logged!r} in the log")
        wait_for(lambda: self.reloads == self.writes, 15, f"{self.writes} writes to be reloaded")

    def wait_file(self, text: str, timeout: float = 15.0) -> None:
        logs = "\n".join(p.log for p in self.procs)
        wait_for(lambda: read(self.out) == text, timeout, f"{self.out} to read {text!r}; logs:\n{logs}")
