"""Telling a daemon to re-read its files, and knowing whether it did.

Three ways (:class:`~confpy.resource.ReloadSpec`): a shell command; BIRD's
``configure`` on its control socket (:mod:`confpy.birdctl`), whose reply code says
whether BIRD took the file; a signal to processes found by exact name or by pid file,
which gets no answer and is reported as unconfirmed. A daemon that is not running has
nothing to reload (``CommandResult.absent``): it reads the new files when it starts.

:func:`reader_gid` finds the group of the daemon that will read a unit's files, so a
file holding a secret can be readable by it and by nobody else.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import struct
import time
from typing import TYPE_CHECKING

from confpy import birdctl
from confpy.commands import CommandResult, run_shell
from confpy.resource import ReloadSpec, parse_signal

if TYPE_CHECKING:
    import psutil

#: The kernel truncates process names (``comm``) to this many characters.
_COMM_LEN = 15


class _NotRunning(Exception):
    """The daemon to signal is not running; the message says how that was seen."""


def run_reload(spec: ReloadSpec) -> CommandResult:
    """Run one reload; the result is ok only if the daemon took it (or, for a signal,
    was sent it), and ``absent`` when no daemon runs to take it."""
    if spec.command:
        return _shell_reload(spec)
    looked: list[str] = []
    for path in spec.birdc:
        result = birdc_configure(path, spec.timeout)
        if not result.absent:
            return result
        looked.append(result.detail)
    if spec.signal:
        result = signal_process(spec)
        if looked and result.absent:
            return _absent(spec, "; ".join([*looked, result.detail]), result.seconds)
        return result
    return _absent(spec, "; ".join(looked), 0.0)


def _absent(spec: ReloadSpec, detail: str, seconds: float) -> CommandResult:
    return CommandResult(False, spec.describe(), "", seconds, detail=detail, absent=True)


def _shell_reload(spec: ReloadSpec) -> CommandResult:
    assert spec.command is not None
    result = run_shell(spec.command, spec.timeout)
    if not (result.ok and spec.ok_pattern):
        return result
    try:
        matched = re.search(spec.ok_pattern, result.output, re.M) is not None
    except re.error as exc:
        matched, why = False, f"bad reload_ok pattern {spec.ok_pattern!r}: {exc}"
    else:
        why = f"output does not match reload_ok {spec.ok_pattern!r}"
    if matched:
        return result
    return CommandResult(False, result.what, result.output, result.seconds, result.returncode, detail=why)


# --------------------------------------------------------------------------- BIRD's socket


def birdc_configure(socket_path: str, timeout: float) -> CommandResult:
    """Ask BIRD to re-read its configuration over its control socket (as ``birdc
    configure`` does) and judge BIRD's reply: ok only on 0003, 0004 or 0005."""
    start = time.monotonic()
    received = bytearray()

    def result(ok: bool, detail: str, timed_out: bool = False, absent: bool = False) -> CommandResult:
        output = received.decode(errors="replace")
        seconds = time.monotonic() - start
        what = f"birdc configure via {socket_path}"
        return CommandResult(ok, what, output, seconds, timed_out=timed_out, detail=detail, absent=absent)

    try:
        reply = birdctl.command(socket_path, "configure", timeout, received)
    except birdctl.BirdNotRunning as exc:
        return result(False, f"{exc}: BIRD is not running there", absent=True)
    except TimeoutError:
        return result(False, f"no complete reply from BIRD on {socket_path} within {timeout:g} s", True)
    except birdctl.BirdError as exc:
        return result(False, str(exc))
    except OSError as exc:
        return result(False, f"BIRD control socket {socket_path}: {exc}")
    if reply.code in birdctl.CONFIGURE_OK:
        return result(True, f"BIRD: {reply.code} {reply.message}")
    return result(False, f"BIRD refused the configuration: {reply.code} {reply.message}")


# --------------------------------------------------------------------------- signals


def signal_process(spec: ReloadSpec) -> CommandResult:
    """Send ``spec.signal`` to every process named exactly ``spec.process``, or to the
    pid in ``spec.pidfile``. No shell, and no answer: ok means sent, not taken."""
    import psutil  # only reloads by signal need it: not imported at start-up

    start = time.monotonic()
    what = spec.describe_signal()

    def fail(detail: str, output: str = "", absent: bool = False) -> CommandResult:
        return CommandResult(False, what, output, time.monotonic() - start, detail=detail, absent=absent)

    try:
        sig = parse_signal(spec.signal or "")
    except ValueError as exc:
        return fail(f"reload_signal: {exc}" if spec.signal else "no reload signal given")
    try:
        targets = _targets(spec)
    except _NotRunning as exc:
        return fail(str(exc), absent=True)
    except ValueError as exc:
        return fail(str(exc))
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
    detail = "; ".join(sent) + "; unconfirmed: a signal gets no answer"
    return CommandResult(True, what, output, time.monotonic() - start, detail=detail)


def _targets(spec: ReloadSpec) -> list[psutil.Process]:
    """The processes to signal. Raises _NotRunning, or ValueError for a spec or pid file
    that names no process at all."""
    if spec.pidfile:
        return [_process_from_pidfile(spec.pidfile, spec.process)]
    if spec.process:
        found = _processes_named(spec.process)
        if not found:
            raise _NotRunning(f"no process named {spec.process!r} is running")
        return found
    raise ValueError("a reload signal needs a process name or a pid file")


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


def _process_from_pidfile(path: str, name: str | None) -> psutil.Process:
    """The live process whose pid ``path`` holds. Raises _NotRunning (no file, a stale
    pid) or ValueError (a file that holds no pid)."""
    import psutil  # only reloads by signal need it: not imported at start-up

    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        raise _NotRunning(f"pid file {path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot read pid file {path}: {exc}") from None
    first = raw.decode("ascii", errors="replace").strip().split("\n", 1)[0].strip()
    if not re.fullmatch(r"[0-9]{1,10}", first):
        raise ValueError(f"pid file {path} does not hold a pid: {first[:40]!r}")
    pid = int(first)
    if pid <= 1 or pid == os.getpid():
        raise ValueError(f"pid file {path} names pid {pid}, which is not a daemon to signal")
    try:
        proc = psutil.Process(pid)
        info = proc.as_dict(["name", "exe", "cmdline", "status"])
    except psutil.NoSuchProcess:
        raise _NotRunning(f"pid {pid} from {path} is not running (stale pid file)") from None
    if info["status"] == psutil.STATUS_ZOMBIE:
        raise _NotRunning(f"pid {pid} from {path} has exited (stale pid file)")
    if name and not _name_matches(name, info["name"], info["exe"], info["cmdline"]):
        raise _NotRunning(f"pid {pid} from {path} is {info['name']!r}, not {name!r} (stale pid file)")
    return proc


# --------------------------------------------------------------------------- who reads the files


def reader_gid(spec: ReloadSpec) -> int | None:
    """The group the daemon behind ``spec`` runs as (its effective gid now), or None when
    no such daemon runs or it cannot be told (a shell command)."""
    import psutil

    pids = (_socket_peer(p) for p in spec.birdc)
    for pid in itertools.chain(pids, [_first_pid(spec)] if spec.signal else []):
        if pid is None:
            continue
        try:
            return int(psutil.Process(pid).gids().effective)
        except psutil.Error:
            continue
    return None


def _socket_peer(path: str) -> int | None:
    """The pid of the process listening on a unix socket (SO_PEERCRED), or None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, _uid, _gid = struct.unpack("3i", creds)
    return pid or None


def _first_pid(spec: ReloadSpec) -> int | None:
    try:
        return _targets(spec)[0].pid
    except (_NotRunning, ValueError):
        return None
