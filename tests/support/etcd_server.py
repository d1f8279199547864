"""Real etcd processes on loopback for tests: start, stop, kill, pause, restart.

Plain helpers, no pytest here (the fixtures are in ``tests/support/etcd_fixtures.py``).
Everything listens on 127.0.0.1 only, every wait is bounded, and every process is
stopped by its PID. Keys are written with ``etcdctl`` rather than with confpy's own
client, so the tests check the store against an independent writer.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.etcd_v2 import V2Api

ETCD = shutil.which("etcd")
ETCDCTL = shutil.which("etcdctl")
OPENSSL = shutil.which("openssl")
HOST = "127.0.0.1"

#: Short raft timers: a single member elects itself at once and a cluster that loses
#: its leader elects another in well under a second.
HEARTBEAT_MS = 50
ELECTION_MS = 500


class EtcdError(RuntimeError):
    """etcd or etcdctl did not do what a test asked."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certs(directory: Path) -> TLSFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate.

    EC keys: generating them takes milliseconds, RSA keys take seconds.
    """
    if OPENSSL is None:
        raise EtcdError("openssl is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    d = directory

    def run(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True, timeout=30)

    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(
        "req",
        "-x509",
        *newkey,
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=confpy test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    for name, cn, ext in (
        (
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        ),
        ("client", "root", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        run(
            "req",
            *newkey,
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
            "-subj",
            f"/CN={cn}",
        )
        run(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.crt"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(d / f"{name}.ext"),
            "-out",
            str(d / f"{name}.crt"),
        )
    return TLSFiles(
        ca=d / "ca.crt",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        client_cert=d / "client.crt",
        client_key=d / "client.key",
    )


class EtcdServer(V2Api):
    """One etcd member with its own data dir, on loopback ports.

    Alone it is a single-member cluster; :class:`EtcdCluster` passes ``initial_cluster``.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        name: str = "m0",
        tls: TLSFiles | None = None,
        client_port: int | None = None,
        peer_port: int | None = None,
        initial_cluster: str | None = None,
        cluster_token: str = "confpy-test",
        enable_v2: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.extra_args = list(extra_args)  # more of etcd's flags, as given
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="etcdlab-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.tls = tls
        ports = free_ports(2)
        self.client_port = client_port or ports[0]
        self.peer_port = peer_port or ports[1]
        self.initial_cluster = initial_cluster or f"{name}={self.peer_url}"
        self.cluster_token = cluster_token
        #: Serve etcd's v2 API too (``--enable-v2=true``), as Calico 2.x's etcd did.
        self.enable_v2 = enable_v2
        self.data_dir = self.workdir / f"{name}.data"
        self.log_path = self.workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        #: (user, password) for etcdctl once auth is enabled.
        self.auth: tuple[str, str] | None = None

    #: Raft timers (``--heartbeat-interval`` / ``--election-timeout``); set others on the
    #: instance before :meth:`start`, as :class:`EtcdCluster` does when asked.
    heartbeat_ms: int = HEARTBEAT_MS
    election_ms: int = ELECTION_MS

    # -- addresses ---------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def endpoint(self) -> str:
        """The client URL, as confpy's ``-node`` takes it."""
        return f"{self.scheme}://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- process control ------------------------------------------------------------
    def start(self, *, wait: bool = True, timeout: float = 15.0) -> None:
        if self.running:
            raise EtcdError(f"{self.name} is already running")
        if ETCD is None:
            raise EtcdError("etcd is not installed")
        args = [
            ETCD,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.endpoint,
            "--advertise-client-urls",
            self.endpoint,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            self.initial_cluster,
            "--initial-cluster-token",
            self.cluster_token,
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            str(self.heartbeat_ms),
            "--election-timeout",
            str(self.election_ms),
            "--logger",
            "zap",
            "--log-level",
            "warn",
        ]
        if self.enable_v2:
            args.append("--enable-v2=true")
        args += self.extra_args
        if self.tls:
            args += [
                "--cert-file",
                str(self.tls.server_cert),
                "--key-file",
                str(self.tls.server_key),
                "--trusted-ca-file",
                str(self.tls.ca),
                "--client-cert-auth",
            ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.paused = False
        if wait:
            self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 15.0) -> None:
        """Wait until the member has a leader and answers, at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running:
                raise EtcdError(
                    f"{self.name} exited with {self.proc and self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if self._health():
                    return
                last = "not healthy"
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise EtcdError(f"{self.name} not healthy within {timeout} s ({last}):\n{self.log_tail()}")

    def _opener(self) -> urllib.request.OpenerDirector:
        """HTTP(S) to this member with its client certificate; no proxy, whatever the
        environment says: loopback only."""
        ctx = None
        if self.tls:
            ctx = ssl.create_default_context(cafile=str(self.tls.ca))
            ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
        )

    def _etcdctl_binary(self) -> str:
        if ETCDCTL is None:
            raise EtcdError("etcdctl is not installed")
        return ETCDCTL

    def _health(self) -> bool:
        with self._opener().open(f"{self.endpoint}/health", timeout=1) as resp:
            return bool(json.load(resp).get("health") == "true")

    def _signal(self, sig: signal.Signals) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()  # a stopped process cannot act on SIGTERM
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed beyond what etcd already synced."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(5)
        self.proc = None
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the process freezes while the kernel keeps its sockets open."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.paused = False

    def restart(self, *, client_port: int | None = None) -> None:
        """Stop (if running) and start again on the same data dir.

        ``client_port`` moves the client listener, e.g. to a port no client knows
        so that the keys can be changed behind a watcher's back.
        """
        self.stop()
        if client_port is not None:
            self.client_port = client_port
        self.start()

    def while_away(self, change: Callable[[], object]) -> None:
        """Run ``change`` (writes) while this member listens on a client port no client
        knows, then come back on the old one: the changes happen behind their backs."""
        port = self.client_port
        self.restart(client_port=free_ports(1)[0])
        try:
            change()
        finally:
            self.restart(client_port=port)

    def close(self) -> None:
        """Stop and remove the data dir (etcd preallocates 64 MB of WAL); a workdir
        passed in keeps the log."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.workdir if self._own_workdir else self.data_dir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- data ----------------------------------------------------------------------
    def etcdctl(self, *args: str | bytes, input: bytes | None = None, timeout: float = 10.0) -> str:
        if ETCDCTL is None:
            raise EtcdError("etcdctl is not installed")
        cmd: list[str | bytes] = [
            ETCDCTL,
            f"--endpoints={self.endpoint}",
            "--dial-timeout=3s",
            "--command-timeout=5s",
        ]
        if self.tls:
            cmd += [
                f"--cacert={self.tls.ca}",
                f"--cert={self.tls.client_cert}",
                f"--key={self.tls.client_key}",
            ]
        if self.auth:
            cmd.append(f"--user={self.auth[0]}:{self.auth[1]}")
        cmd += args
        env = {**os.environ, "ETCDCTL_API": "3"}
        p = subprocess.run(cmd, input=input, capture_output=True, env=env, timeout=timeout)
        if p.returncode:
            raise EtcdError(
                f"etcdctl {' '.join(map(str, args))} failed: {p.stderr.decode(errors='replace').strip()}"
            )
        return p.stdout.decode(errors="replace")

    def _rev(self, *args: str | bytes, input: bytes | None = None) -> int:
        return int(json.loads(self.etcdctl("-w", "json", *args, input=input))["header"]["revision"])

    def put(self, key: str, value: str | bytes) -> int:
        """Put one key; returns the new revision."""
        return self._rev("put", "--", key, value)

    def delete(self, key: str, *, prefix: bool = False) -> int:
        return self._rev("del", *(["--prefix"] if prefix else []), "--", key)

    def txn(self, puts: dict[str, str] | None = None, deletes: Sequence[str] = ()) -> int:
        """One transaction putting and deleting several keys; returns its revision."""
        ops = [f"put {json.dumps(k)} {json.dumps(v)}" for k, v in (puts or {}).items()]
        ops += [f"del {json.dumps(k)}" for k in deletes]
        # No comparisons, the success ops, no failure ops: three blank-line separated parts.
        script = "\n" + "\n".join(ops) + "\n\n\n"
        return self._rev("txn", input=script.encode())

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """Every key under ``prefix``, decoded as confpy's etcd store decodes them."""
        out = json.loads(self.etcdctl("-w", "json", "get", "--prefix", "--", prefix))

        def text(b64: str) -> str:
            return base64.b64decode(b64).decode("utf-8", "surrogateescape")

        return {text(kv["key"]): text(kv.get("value", "")) for kv in out.get("kvs", [])}

    def revision(self) -> int:
        return self._rev("get", "--keys-only", "--", "/")

    def status(self) -> dict[str, Any]:
        """This member's ``endpoint status``: ``header.member_id``, ``leader``, ..."""
        return dict(json.loads(self.etcdctl("-w", "json", "endpoint", "status"))[0]["Status"])

    def compact(self, revision: int | None = None) -> int:
        """Compact history up to ``revision`` (default: the current one)."""
        rev = self.revision() if revision is None else revision
        self.etcdctl("compact", "--physical", str(rev))
        return rev

    def enable_auth(self, root_password: str) -> None:
        """Create ``root`` with ``root_password`` and turn authentication on."""
        self.etcdctl("user", "add", "root", f"--new-user-password={root_password}", "--interactive=false")
        self.etcdctl("user", "grant-role", "root", "root")
        self.etcdctl("auth", "enable")
        self.auth = ("root", root_password)


class EtcdCluster:
    """``size`` members on loopback forming one cluster."""

    def __init__(
        self,
        size: int = 3,
        workdir: Path | None = None,
        *,
        tls: TLSFiles | None = None,
        heartbeat_ms: int = HEARTBEAT_MS,
        election_ms: int = ELECTION_MS,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="etcdlab-cluster-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * size)
        names = [f"m{i}" for i in range(size)]
        initial = ",".join(f"{n}=http://{HOST}:{ports[2 * i + 1]}" for i, n in enumerate(names))
        token = f"confpy-test-{os.getpid()}-{ports[0]}"
        self.members = [
            EtcdServer(
                self.workdir,
                name=n,
                tls=tls,
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                initial_cluster=initial,
                cluster_token=token,
                extra_args=extra_args,
            )
            for i, n in enumerate(names)
        ]
        for m in self.members:
            m.heartbeat_ms, m.election_ms = heartbeat_ms, election_ms

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, timeout: float = 15.0) -> None:
        # All at once: a member waits for a quorum of its peers before it is healthy.
        for m in self.members:
            m.start(wait=False)
        deadline = time.monotonic() + timeout
        for m in self.members:
            m.wait_healthy(max(0.1, deadline - time.monotonic()))

    def wait_leader(self, timeout: float = 15.0) -> None:
        """Wait until every live member follows the same live leader.

        After a leader is killed or frozen its peers need an election timeout to
        notice; a write sent before that is forwarded to the old leader and lost.
        """
        deadline = time.monotonic() + timeout
        while True:
            live = [m for m in self.members if m.running and not m.paused]
            try:
                statuses = [m.status() for m in live]
                ids = {st["header"]["member_id"] for st in statuses}
                # JSON omits a zero "leader": a member without a leader has no such field.
                leaders = {st.get("leader") for st in statuses}
                if len(leaders) == 1 and statuses[0].get("leader") in ids:
                    return
            except EtcdError:
                pass  # a member between two states: ask again
            if time.monotonic() > deadline:
                raise EtcdError(f"no leader among the live members within {timeout} s")
            time.sleep(0.05)

    def kill(self, i: int) -> None:
        self.members[i].kill()
        self.wait_leader()

    def pause(self, i: int) -> None:
        self.members[i].pause()
        self.wait_leader()

    def resume(self, i: int) -> None:
        self.members[i].resume()

    def live(self) -> EtcdServer:
        """A member that is running and not paused, to write through."""
        for m in self.members:
            if m.running and not m.paused:
                return m
        raise EtcdError("no live member")

    def put(self, key: str, value: str | bytes) -> int:
        return self.live().put(key, value)

    def txn(self, puts: dict[str, str] | None = None, deletes: Sequence[str] = ()) -> int:
        return self.live().txn(puts, deletes)

    def get_prefix(self, prefix: str) -> dict[str, str]:
        return self.live().get_prefix(prefix)

    def close(self) -> None:
        try:
            for m in self.members:
                m.close()
        finally:
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
