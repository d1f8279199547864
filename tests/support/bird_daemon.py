"""Start and stop a real BIRD 1.6 daemon (``bird`` or ``bird6``) in a directory of its own.

The daemon runs in the foreground (``-f``) as a child of the test process, with its
own config, control socket, pid file and log file (``log "FILE" all;``), so it needs no
network namespace. Every wait is bounded; :meth:`BirdDaemon.stop` always ends it.

    with BirdDaemon.start("bird", tmp_path / "bird") as bird:
        bird.socket, bird.pidfile, bird.log_text()

Also where the binaries are: :func:`bird_binary` (BIRD 1.6, ``ip``, ...) and
:func:`bird2_binary` (BIRD 2, unpacked beside BIRD 1.6 by scripts/bird2-unpack).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

#: Where Debian puts bird, birdc and ip, searched after ``$PATH``.
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MINIMAL_CONFIG = "router id 10.0.0.1;\nprotocol device {}\n"


def bird_binary(name: str = "bird") -> str | None:
    """Path of ``bird``/``bird6``/``birdc`` (or another binary such as ``ip``) on
    ``$PATH`` or in :data:`SBIN_PATH`, or None if not installed."""
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


#: Where scripts/bird2-unpack puts Debian's BIRD 2 (it conflicts with BIRD 1.6's package);
#: ``$BIRD_LAB_BIRD2`` names another ``bird`` binary of BIRD 2, as for shared/tools/bird-lab.
BIRD2_DEFAULT = "/opt/bird2/usr/sbin/bird"


def bird2_path() -> Path:
    """Where BIRD 2's ``bird`` should be; its ``birdc`` is beside it."""
    return Path(os.environ.get("BIRD_LAB_BIRD2") or BIRD2_DEFAULT)


@functools.cache
def bird2_missing() -> str | None:
    """Why BIRD 2 cannot be run here (None: it can): the reason a BIRD 2 test skips with."""
    binary = bird2_path()
    if not binary.is_file():
        return (
            f"BIRD 2 is not at {binary} (scripts/bird2-unpack unpacks Debian's bird2 there; "
            "$BIRD_LAB_BIRD2 names another)"
        )
    try:
        proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except OSError as exc:
        return f"BIRD 2 at {binary} cannot be run: {exc}"
    version = (proc.stdout + proc.stderr).strip()
    if not version.startswith("BIRD version 2."):
        return f"{binary} is not a working BIRD 2: {version.splitlines()[:1]}"
    return None


def bird2_binary(name: str = "bird") -> str | None:
    """Path of BIRD 2's ``bird`` or ``birdc``, or None when BIRD 2 cannot run here."""
    return None if bird2_missing() else str(bird2_path().with_name(name))


def bird_answers(ctl: Path) -> bool:
    """True when BIRD greets on its control socket ``ctl`` (``0001 BIRD x.y ready.``)."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1.0)
            s.connect(str(ctl))
            return s.recv(256).startswith(b"0001 ")
    except OSError:
        return False


def config_text(body: str, log: Path) -> str:
    """A config logging everything to ``log``, followed by ``body``."""
    return f'log "{log}" all;\n{body}'


class BirdDaemon:
    """One running BIRD daemon; use :meth:`start`."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes]  # set by start()
        self.config = workdir / f"{kind}.conf"
        self.socket = workdir / f"{kind}.ctl"
        self.pidfile = workdir / f"{kind}.pid"
        self.log = workdir / f"{kind}.log"
        self.stderr = workdir / f"{kind}.stderr"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(
        cls,
        kind: str,
        workdir: Path,
        body: str = MINIMAL_CONFIG,
        timeout: float = 10.0,
        user: str | None = None,
    ) -> BirdDaemon:
        """Start ``kind`` (``bird`` or ``bird6``) with ``body`` as config; wait until it
        answers on its control socket and has written its pid file. With ``user``, BIRD
        drops to that user and its group after start-up (as Debian's service runs it:
        ``-u bird -g bird``); ``workdir`` is then that user's, and every directory above
        the files it reads must let it pass."""
        binary = bird_binary(kind)
        if binary is None:
            raise FileNotFoundError(f"{kind} is not installed")
        workdir.mkdir(parents=True, exist_ok=True)
        daemon = cls(kind, workdir)
        daemon.config.write_text(config_text(body, daemon.log))
        as_user = ["-u", user, "-g", user] if user else []
        if user:
            shutil.chown(workdir, user, user)  # BIRD writes its pid file and log as that user
        with open(daemon.stderr, "wb") as err:
            daemon.proc = subprocess.Popen(
                [
                    binary,
                    "-f",
                    "-c",
                    str(daemon.config),
                    "-s",
                    str(daemon.socket),
                    "-P",
                    str(daemon.pidfile),
                    *as_user,
                ],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=workdir,
                start_new_session=True,
            )
        try:
            daemon._wait_ready(timeout)
        except BaseException:
            daemon.stop()
            raise
        return daemon

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = self.stderr.read_text(errors="replace")
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}: {err}")
            if self._pidfile_ok() and bird_answers(self.socket):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.kind} not ready within {timeout:g} s")
            time.sleep(0.02)

    def _pidfile_ok(self) -> bool:
        try:
            return self.pidfile.read_text().strip() == str(self.pid)
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle: str, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait (bounded) until ``needle`` appears ``count`` times in the log."""
        deadline = time.monotonic() + timeout
        while self.log_text().count(needle) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps the process."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)

    def __enter__(self) -> BirdDaemon:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
