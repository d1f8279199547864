"""What a lab made, recorded in a state file, and how to undo it: also from a watchdog.

Standard library only: the watchdog runs this file as a script
(``python tests/support/bgp_lab/cleanup.py watchdog STATE TOKEN OWNER_PID OWNER_START``), detached
from the test run, and tears the lab down as soon as the owner process (pytest, the
demo) is gone, so that a SIGKILLed run cannot leak namespaces or daemons.

The state file lists every namespace the lab created and every process it started,
each with its start time (so a recycled pid is never touched) and a string its command
line must contain. Teardown stops exactly those processes (SIGTERM, then SIGKILL), then
whatever still runs inside the lab's own namespaces, then deletes those namespaces.
Nothing else is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

IP = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin") or "ip"


def proc_start(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie ``pid``, else None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = data[data.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_alive(pid: int, start: int | None) -> bool:
    now = proc_start(pid)
    return now is not None and (start is None or now == start)


def stop_process(pid: int, start: int | None, marker: str = "", term_wait: float = 5.0) -> str:
    """SIGTERM, then SIGKILL, one process, only if it is still the one recorded."""
    if not is_alive(pid, start):
        return "gone"
    if marker and marker not in proc_cmdline(pid):
        return "foreign"
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 3.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return "gone"
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            if not is_alive(pid, start):
                return "stopped" if sig == signal.SIGTERM else "killed"
            time.sleep(0.02)
    return "stuck"


def netns_list() -> list[str]:
    r = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, timeout=15, check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


class State:
    """The lab's record of what it made; written atomically after every addition."""

    def __init__(self, path: Path, token: str, prefix: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {"token": token, "prefix": prefix, "netns": [], "procs": {}}
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    def add_netns(self, name: str) -> None:
        self.data["netns"].append(name)
        self.save()

    def drop_netns(self, name: str) -> None:
        self.data["netns"] = [n for n in self.data["netns"] if n != name]
        self.save()

    def add_proc(self, label: str, pid: int, marker: str) -> None:
        self.data["procs"][label] = {"pid": pid, "start": proc_start(pid), "marker": marker}
        self.save()

    def drop_proc(self, label: str) -> None:
        self.data["procs"].pop(label, None)
        self.save()


def teardown(data: dict[str, Any], log: Any = None) -> list[str]:
    """Undo everything ``data`` (a state file's content) records. Returns problems."""
    problems: list[str] = []

    def say(msg: str) -> None:
        if log is not None:
            log(msg)

    # Daemons first (BIRD, confpy, etcd, probes), then anything left in our namespaces.
    for label, p in list(data.get("procs", {}).items()):
        res = stop_process(p["pid"], p["start"], p.get("marker", ""))
        if res == "stuck":
            problems.append(f"{label} (pid {p['pid']}) survived SIGKILL")
        elif res not in ("gone", "foreign"):
            say(f"stopped {label} (pid {p['pid']}): {res}")
    prefix = data.get("prefix", "")
    existing = set(netns_list())
    for ns in reversed(data.get("netns", [])):
        if not prefix or not ns.startswith(prefix) or ns not in existing:
            continue  # never a namespace that is not ours
        r = subprocess.run([IP, "netns", "pids", ns], capture_output=True, text=True, timeout=15, check=False)
        for pid in (int(x) for x in r.stdout.split() if x.isdigit()):
            say(f"stopping leftover pid {pid} in {ns}: {proc_cmdline(pid)[:80]}")
            if stop_process(pid, proc_start(pid)) == "stuck":
                problems.append(f"pid {pid} in {ns} survived SIGKILL")
        r = subprocess.run([IP, "netns", "del", ns], capture_output=True, text=True, timeout=15, check=False)
        if r.returncode != 0:
            problems.append(f"cannot delete netns {ns}: {r.stderr.strip()}")
    return problems


def teardown_file(path: Path, token: str | None = None, log: Any = None) -> list[str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if token is not None and data.get("token") != token:
        return []
    problems = teardown(data, log)
    if not problems:
        with contextlib.suppress(OSError):
            path.unlink()
    return problems


def start_watchdog(state: Path, token: str, ttl: float = 1800.0) -> tuple[int, int | None]:
    """Detached process that tears the lab down when this process exits (or after ``ttl``)."""
    owner = os.getpid()
    args = [sys.executable, os.path.abspath(__file__), "watchdog", str(state), token, str(owner)]
    args += [str(proc_start(owner)), str(ttl)]
    with open(state.parent / "watchdog.log", "ab") as err:
        p = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    return p.pid, proc_start(p.pid)


def watchdog(state: Path, token: str, owner: int, owner_start: int | None, ttl: float) -> int:
    # Our own signals must not stop us half way: the owner's process group gets SIGINT
    # on ^C, and we are in a session of our own anyway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    deadline = time.monotonic() + ttl
    while True:
        time.sleep(0.5)
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            return 0  # the lab tore itself down
        if data.get("token") != token:
            return 0
        if not is_alive(owner, owner_start):
            why = f"owner pid {owner} exited"
            break
        if time.monotonic() > deadline:
            why = f"ttl of {ttl:g} s expired"
            break

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} lab watchdog: {msg}", file=sys.stderr, flush=True)

    log(f"{why}; tearing the lab down")
    problems = teardown_file(state, token, log)
    for p in problems:
        log(f"problem: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "watchdog":
        _, _, st, tok, own, own_start, life = sys.argv
        sys.exit(
            watchdog(Path(st), tok, int(own), None if own_start == "None" else int(own_start), float(life))
        )
    print("usage: cleanup.py watchdog STATE TOKEN OWNER_PID OWNER_START TTL", file=sys.stderr)
    sys.exit(2)
