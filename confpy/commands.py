"""Check and reload commands: run with a timeout, output captured, process group killed.

Commands given as strings run through ``/bin/sh -c`` (confd compatible). Reloads can
also be done without a shell (see :class:`ReloadSpec`).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

_SRC_PLACEHOLDER = re.compile(r"\{\{\s*\.?src\s*\}\}")


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
        if self.ok:
            return f"{self.what}: ok in {self.seconds * 1000:.0f} ms"
        tail = self.output.strip()
        return f"{self.what}: {self.detail}" + (f"\n{tail}" if tail else "")


def check_command(template: str, staged_path: str) -> str:
    """The check command with ``{{.src}}`` / ``{{ src }}`` replaced by the staged path."""
    return _SRC_PLACEHOLDER.sub(lambda _m: shlex.quote(staged_path), template)


def run_shell(command: str, timeout: float, *, env: Mapping[str, str] | None = None) -> CommandResult:
    """Run ``command`` with ``/bin/sh -c``; on timeout kill its whole process group."""
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
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, _ = proc.communicate()
        return CommandResult(
            False,
            command,
            out.decode(errors="replace"),
            time.monotonic() - start,
            timed_out=True,
            detail=f"timed out after {timeout:g} s (process group killed)",
        )
    rc = proc.returncode
    return CommandResult(
        rc == 0,
        command,
        out.decode(errors="replace"),
        time.monotonic() - start,
        returncode=rc,
        detail="" if rc == 0 else f"exit status {rc}",
    )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass(frozen=True, slots=True)
class ReloadSpec:
    """How to tell a daemon to re-read its files. At most one way is set.

    - ``command``: a shell command (confd's ``reload_cmd``);
      with ``ok_pattern``, success also needs a line of its output to match
      (``birdc configure`` exits 0 even when BIRD rejects the file).
    - ``signal`` with ``process`` (exact process name) or ``pidfile``: no shell.
    - ``birdc``: the path of BIRD's control socket; sends ``configure`` and reads
      BIRD's reply code.
    """

    command: str | None = None
    signal: str | None = None
    process: str | None = None
    pidfile: str | None = None
    birdc: str | None = None
    ok_pattern: str | None = None
    timeout: float = 60.0

    def describe(self) -> str:
        if self.command:
            return self.command
        if self.birdc:
            return f"birdc configure via {self.birdc}"
        target = f"process {self.process!r}" if self.process else f"pid in {self.pidfile}"
        return f"SIG{self.signal} to {target}"


def run_reload(spec: ReloadSpec) -> CommandResult:
    """Run one reload; the result is ok only if the daemon took it."""
    if spec.command:
        result = run_shell(spec.command, spec.timeout)
        if result.ok and spec.ok_pattern and not re.search(spec.ok_pattern, result.output, re.M):
            return CommandResult(
                False, result.what, result.output, result.seconds, result.returncode,
                detail=f"output does not match reload_ok {spec.ok_pattern!r}",
            )
        return result
    if spec.birdc:
        return birdc_configure(spec.birdc, spec.timeout)
    return signal_process(spec)
