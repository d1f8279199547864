"""``etcd grpc-proxy`` in front of etcd members, on loopback: the gRPC-only endpoint an
operator may put between confpy and etcd (it serves no JSON gateway)."""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support.etcd_server import ETCD, HOST, free_ports

_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class GrpcProxy:
    """``etcd grpc-proxy start`` on a free loopback port in front of ``endpoints``
    (the proxy coalesces watchers of the same range into one watch on a member).
    ``max_send_bytes``: the proxy's limit on one response (etcd's default 1.5 MiB)."""

    def __init__(self, workdir: Path, endpoints: list[str], *, max_send_bytes: int | None = None) -> None:
        port, metrics_port = free_ports(2)
        self.endpoint = f"http://{HOST}:{port}"
        self.metrics_url = f"http://{HOST}:{metrics_port}/metrics"
        self.workdir = workdir
        self.log_path = workdir / "grpc-proxy.log"
        self.args = [
            ETCD or "etcd", "grpc-proxy", "start",
            f"--endpoints={','.join(e.split('://', 1)[-1] for e in endpoints)}",
            f"--listen-addr={HOST}:{port}",
            f"--advertise-client-url={HOST}:{port}",
            f"--metrics-addr=http://{HOST}:{metrics_port}",
            f"--data-dir={workdir / 'proxy.data'}",
        ]  # fmt: skip
        if max_send_bytes is not None:
            self.args.append(f"--max-send-bytes={max_send_bytes}")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 15.0) -> GrpcProxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"grpc-proxy exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            with contextlib.suppress(OSError), _LOOPBACK.open(self.metrics_url, timeout=1):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"grpc-proxy did not answer within {timeout:g} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
