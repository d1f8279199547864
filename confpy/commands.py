"""Shell commands (checks, ``reload_cmd``): run with a timeout, output captured, process
group killed.

Commands run through ``/bin/sh -c`` (confd compatible), each in a session of its own.
Every running command is known to :func:`kill_running`, so a stopping daemon does not
wait for a hung one. Reloads without a shell are :mod:`confpy.reload`.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

_SRC_PLACEHOLDER = re.compile(r"\{\{\s*\.?src\s*\}\}")

#: Most bytes of a command's output kept (half from its start, half from its end).
OUTPUT_LIMIT = 64 * 1024
#: After a command exits, how long its output pipe is still read (a background child
#: it left behind may hold the pipe open for ever; it is not waited for).
_DRAIN_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a check or reload did. ``ok`` is the verdict; ``detail`` says why not."""

    ok: bool
    what: str
    output: str
    seconds: float
    returncode: int | None = None
    timed_out: bool = False
    detail: str = ""
    absent: bool = False  # a reload found no running daemon (detail says where it looked)

    def summary(self) -> str:
        if self.ok:  # the detail says what the daemon answered (0003 vs 0005) or who got the signal
            return f"{self.what}: ok in {self.seconds * 1000:.0f} ms" + (
                f" ({self.detail})" if self.detail else ""
            )
        tail = self.output.strip()
        return f"{self.what}: {self.detail}" + (f"\n{tail}" if tail else "")


def check_command(template: str, staged_path: str) -> str:
    """The check command with ``{{.src}}`` / ``{{ src }}`` replaced by the staged path."""
    return _SRC_PLACEHOLDER.sub(lambda _m: shlex.quote(staged_path), template)


# --------------------------------------------------------------------------- shell


class _Capture:
    """Keeps the first and the last ``limit // 2`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        tail = self.tail[-self.half :] if self.half else b""
        omitted = self.total - len(self.head) - len(tail)
        middle = f"\n[... {omitted} bytes of output omitted ...]\n".encode() if omitted else b""
        return bytes(self.head + middle + tail).decode(errors="replace")


#: Process groups of the commands running now (their leaders' pids), for kill_running.
_RUNNING: set[int] = set()
_RUNNING_LOCK = threading.Lock()
_stopping = threading.Event()


def kill_running() -> int:
    """The daemon is stopping: SIGKILL the process group of every running command and
    start no new one. Returns how many were killed."""
    with _RUNNING_LOCK:
        _stopping.set()
        pids = list(_RUNNING)
    for pid in pids:
        _kill_group(pid)
    return len(pids)


def allow_commands() -> None:
    """Commands may run again (a new daemon in the same process: the tests)."""
    _stopping.clear()


def run_shell(command: str, timeout: float, *, env: Mapping[str, str] | None = None) -> CommandResult:
    """Run ``command`` with ``/bin/sh -c``; on timeout kill its whole process group.

    stdout and stderr are captured together, at most :data:`OUTPUT_LIMIT` bytes of
    them. The command runs in a session of its own; if it outlives ``timeout`` (or
    the caller is interrupted) its process group gets SIGKILL. Children it left in
    the background after exiting normally are not waited for and not killed.
    """
    start = time.monotonic()
    with _RUNNING_LOCK:
        if _stopping.is_set():
            return CommandResult(False, command, "", 0.0, detail="not started: confpy is stopping")
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
            )
        except OSError as exc:
            return CommandResult(False, command, "", 0.0, detail=f"could not start: {exc}")
        _RUNNING.add(proc.pid)
    capture = _Capture()
    try:
        _pump(proc, capture, start + timeout)
        timed_out = proc.returncode is None
        if timed_out:
            _kill_group(proc.pid)
            proc.wait()
            _pump(proc, capture, time.monotonic())
    except BaseException:
        if proc.returncode is None:
            _kill_group(proc.pid)
            proc.wait()
        raise
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc.pid)
        assert proc.stdout is not None
        proc.stdout.close()
    seconds = time.monotonic() - start
    if _stopping.is_set() and proc.returncode == -signal.SIGKILL:
        return CommandResult(False, command, capture.text(), seconds, detail="killed: confpy is stopping")
    if timed_out:
        return CommandResult(
            False,
            command,
            capture.text(),
            seconds,
            timed_out=True,
            detail=f"timed out after {timeout:g} s (process group killed)",
        )
    rc = proc.returncode
    return CommandResult(
        rc == 0,
        command,
        capture.text(),
        seconds,
        returncode=rc,
        detail="" if rc == 0 else _exit_detail(rc),
    )


def _pump(proc: subprocess.Popen[bytes], capture: _Capture, deadline: float) -> None:
    """Read ``proc``'s output until it exits and its pipe is drained, or ``deadline``.

    Once ``proc`` has exited, reading goes on until end of file but at most
    :data:`_DRAIN_SECONDS` longer. ``proc.returncode`` is None after a timeout.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    pidfd: int | None = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(proc.pid)
    eof = False
    drain_until: float | None = None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            if pidfd is not None:
                sel.register(pidfd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if drain_until is None and proc.poll() is not None:
                    drain_until = now + _DRAIN_SECONDS
                if drain_until is not None and eof:
                    return
                until = deadline if drain_until is None else drain_until
                if now >= until:
                    return
                wait = until - now
                if pidfd is None:
                    wait = min(wait, 0.05)  # no exit notification: poll
                for key, _events in sel.select(wait):
                    if key.fd == fd:
                        try:
                            data = os.read(fd, 65536)
                        except BlockingIOError:
                            continue
                        if data:
                            capture.add(data)
                        else:
                            eof = True
                            sel.unregister(fd)
                    else:
                        sel.unregister(key.fd)  # exited: proc.poll() reaps it
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _exit_detail(rc: int) -> str:
    if rc < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-rc).name}"
    return f"exit status {rc}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
