"""Check and reload commands: run with a timeout, output captured, process group killed.

Commands given as strings run through ``/bin/sh -c`` (confd compatible). Reloads can
also be done without a shell (see :class:`~confpy.resource.ReloadSpec`): a signal sent
with psutil to processes found by exact name or to the pid in a pid file, or BIRD's
``configure`` spoken on its control socket (:mod:`confpy.birdctl`), so that a
configuration BIRD refuses is a failure and not a logged success.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confpy import birdctl
from confpy.resource import ReloadSpec, parse_signal

if TYPE_CHECKING:
    import psutil


_SRC_PLACEHOLDER = re.compile(r"\{\{\s*\.?src\s*\}\}")

#: Most bytes of a command's output kept (half from its start, half from its end).
OUTPUT_LIMIT = 64 * 1024
#: After a command exits, how long its output pipe is still read (a background child
#: it left behind may hold the pipe open for ever; it is not waited for).
_DRAIN_SECONDS = 0.5
#: The kernel truncates process names (``comm``) to this many characters.
_COMM_LEN = 15


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


def run_shell(command: str, timeout: float, *, env: Mapping[str, str] | None = None) -> CommandResult:
    """Run ``command`` with ``/bin/sh -c``; on timeout kill its whole process group.

    stdout and stderr are captured together, at most :data:`OUTPUT_LIMIT` bytes of
    them. The command runs in a session of its own; if it outlives ``timeout`` (or
    the caller is interrupted) its process group gets SIGKILL. Children it left in
    the background after exiting normally are not waited for and not killed.
    """
    start = time.monotonic()
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
        assert proc.stdout is not None
        proc.stdout.close()
    seconds = time.monotonic() - start
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


# --------------------------------------------------------------------------- reload


def run_reload(spec: ReloadSpec) -> CommandResult:
    """Run one reload; the result is ok only if the daemon took it."""
    if spec.command:
        result = run_shell(spec.command, spec.timeout)
        if result.ok and spec.ok_pattern:
            try:
                matched = re.search(spec.ok_pattern, result.output, re.M) is not None
            except re.error as exc:
                matched, why = False, f"bad reload_ok pattern {spec.ok_pattern!r}: {exc}"
            else:
                why = f"output does not match reload_ok {spec.ok_pattern!r}"
            if not matched:
                return CommandResult(
                    False,
                    result.what,
                    result.output,
                    result.seconds,
                    result.returncode,
                    detail=why,
                )
        return result
    if spec.birdc:
        return birdc_configure(spec.birdc, spec.timeout)
    return signal_process(spec)


def signal_process(spec: ReloadSpec) -> CommandResult:
    """Send ``spec.signal`` to every process named exactly ``spec.process``, or to the
    pid in ``spec.pidfile``. No shell. Not ok if no such process runs."""
    import psutil  # only reloads by signal need it: not imported at start-up

    start = time.monotonic()
    what = spec.describe()

    def fail(detail: str, output: str = "") -> CommandResult:
        return CommandResult(False, what, output, time.monotonic() - start, detail=detail)

    try:
        sig = parse_signal(spec.signal or "")
    except ValueError as exc:
        return fail(f"reload_signal: {exc}" if spec.signal else "no reload signal given")
    if spec.pidfile:
        found = _process_from_pidfile(spec.pidfile, spec.process)
        if isinstance(found, str):
            return fail(found)
        targets = [found]
    elif spec.process:
        targets = _processes_named(spec.process)
        if not targets:
            return fail(f"no process named {spec.process!r} is running")
    else:
        return fail("a reload signal needs a process name or a pid file")
    sent: list[str] = []
    errors: list[str] = []
    for proc in targets:
        try:
            proc.send_signal(sig)
            sent.append(f"sent {sig.name} to pid {proc.pid}")
        except psutil.NoSuchProcess:
            errors.append(f"pid {proc.pid} exited before {sig.name} could be sent")
        except (psutil.AccessDenied, OSError) as exc:
            errors.append(f"cannot signal pid {proc.pid}: {exc}")
    output = "\n".join(sent + errors) + "\n"
    if errors:
        return fail("; ".join(errors), output)
    return CommandResult(True, what, output, time.monotonic() - start, detail="; ".join(sent))


def _processes_named(name: str) -> list[psutil.Process]:
    """Live processes (not zombies, not this one) whose name is exactly ``name``."""
    import psutil  # only reloads by signal need it: not imported at start-up

    found = []
    for proc in psutil.process_iter(["name", "exe", "cmdline", "status"]):
        info = proc.info
        if proc.pid == os.getpid() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if _name_matches(name, info["name"], info["exe"], info["cmdline"]):
            found.append(proc)
    return found


def _name_matches(wanted: str, name: str | None, exe: str | None, cmdline: list[str] | None) -> bool:
    """Is a process with this name, executable and command line named exactly ``wanted``?

    A name of 15 characters may be one the kernel cut short: then the basename of the
    executable or of argv[0] that starts with it is the full name (psutil only tries
    argv[0], which a process may rewrite).
    """
    if name and len(name) == _COMM_LEN:
        full = {os.path.basename(p) for p in (exe, *(cmdline or [])[:1]) if p}
        full = {f for f in full if f.startswith(name)}
        if full:
            return wanted in full
    return name == wanted


def _process_from_pidfile(path: str, name: str | None) -> psutil.Process | str:
    """The live process whose pid ``path`` holds, or a message saying why there is none."""
    import psutil  # only reloads by signal need it: not imported at start-up

    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        return f"pid file {path} does not exist"
    except OSError as exc:
        return f"cannot read pid file {path}: {exc}"
    first = raw.decode("ascii", errors="replace").strip().split("\n", 1)[0].strip()
    if not re.fullmatch(r"[0-9]{1,10}", first):
        return f"pid file {path} does not hold a pid: {first[:40]!r}"
    pid = int(first)
    if pid <= 1 or pid == os.getpid():
        return f"pid file {path} names pid {pid}, which is not a daemon to signal"
    try:
        proc = psutil.Process(pid)
        info = proc.as_dict(["name", "exe", "cmdline", "status"])
    except psutil.NoSuchProcess:
        return f"pid {pid} from {path} is not running (stale pid file)"
    if info["status"] == psutil.STATUS_ZOMBIE:
        return f"pid {pid} from {path} has exited (stale pid file)"
    if name and not _name_matches(name, info["name"], info["exe"], info["cmdline"]):
        return f"pid {pid} from {path} is {info['name']!r}, not {name!r} (stale pid file?)"
    return proc


def birdc_configure(socket_path: str, timeout: float) -> CommandResult:
    """Ask BIRD to re-read its configuration over its control socket (as ``birdc
    configure`` does) and judge BIRD's reply: ok only on 0003, 0004 or 0005."""
    start = time.monotonic()
    received = bytearray()

    def result(ok: bool, detail: str, timed_out: bool = False) -> CommandResult:
        output = received.decode(errors="replace")
        seconds = time.monotonic() - start
        what = f"birdc configure via {socket_path}"
        return CommandResult(ok, what, output, seconds, timed_out=timed_out, detail=detail)

    try:
        reply = birdctl.command(socket_path, "configure", timeout, received)
    except birdctl.BirdNotRunning as exc:
        return result(False, f"{exc} (is BIRD running?)")
    except TimeoutError:
        return result(False, f"no complete reply from BIRD on {socket_path} within {timeout:g} s", True)
    except birdctl.BirdError as exc:
        return result(False, str(exc))
    except OSError as exc:
        return result(False, f"BIRD control socket {socket_path}: {exc}")
    if reply.code in birdctl.CONFIGURE_OK:
        return result(True, f"BIRD: {reply.code} {reply.message}")
    return result(False, f"BIRD refused the configuration: {reply.code} {reply.message}")
