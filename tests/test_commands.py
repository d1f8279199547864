"""confpy.commands with real processes: shell commands, their timeouts, output capture and
process groups."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from confpy.commands import OUTPUT_LIMIT, check_command, run_shell
from tests.support.processes import gone, wait_until

# --------------------------------------------------------------------------- run_shell


def test_run_shell_success_captures_output() -> None:
    r = run_shell("echo hello; echo err >&2", 10)
    assert r.ok and r.returncode == 0 and not r.timed_out
    assert r.output == "hello\nerr\n"
    assert r.what == "echo hello; echo err >&2"
    assert "ok in" in r.summary()


def test_run_shell_failure_exit_code() -> None:
    r = run_shell("echo 'bird.cfg:3:1 syntax error'; exit 3", 10)
    assert not r.ok and r.returncode == 3 and not r.timed_out
    assert r.detail == "exit status 3"
    assert "syntax error" in r.output
    assert "exit status 3" in r.summary() and "syntax error" in r.summary()


def test_run_shell_killed_by_signal_is_named() -> None:
    r = run_shell("kill -TERM $$", 10)
    assert not r.ok and r.returncode == -signal.SIGTERM
    assert r.detail == "killed by SIGTERM"


def test_run_shell_timeout_kills_process_group(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    start = time.monotonic()
    r = run_shell(f"sleep 60 & echo $! > {child_pid_file}; echo started; sleep 60", 0.5)
    elapsed = time.monotonic() - start
    assert r.timed_out and not r.ok and r.returncode is None
    assert "timed out after 0.5 s" in r.detail
    assert r.output == "started\n"
    assert elapsed < 3
    child = int(child_pid_file.read_text())
    assert wait_until(lambda: gone(child), 5), f"background child {child} survived the timeout"


def test_run_shell_does_not_wait_for_background_child_holding_the_pipe(tmp_path: Path) -> None:
    # A reload command that starts a daemon keeping stdout open must not hang until the
    # timeout, nor get that daemon killed.
    start = time.monotonic()
    r = run_shell("sleep 30 & echo $!; echo done", 20)
    try:
        assert r.ok and not r.timed_out
        assert time.monotonic() - start < 3
        lines = r.output.split()
        assert lines[-1] == "done"
        assert not gone(int(lines[0]))
    finally:
        os.kill(int(r.output.split()[0]), signal.SIGKILL)


def test_run_shell_output_is_capped() -> None:
    r = run_shell("head -c 5000000 /dev/zero | tr '\\0' x; echo; echo LAST", 20)
    assert r.ok
    assert len(r.output) < OUTPUT_LIMIT + 200
    assert r.output.startswith("xxxx")
    assert r.output.endswith("LAST\n")
    assert "bytes of output omitted" in r.output


def test_run_shell_without_pidfd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Kernels or Pythons without pidfd_open: the exit is polled instead.
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    r = run_shell("echo hi; exit 4", 10)
    assert (r.ok, r.returncode, r.output) == (False, 4, "hi\n")
    child_pid_file = tmp_path / "child.pid"
    r = run_shell(f"sleep 60 & echo $! > {child_pid_file}; sleep 60", 0.3)
    assert r.timed_out
    child = int(child_pid_file.read_text())
    assert wait_until(lambda: gone(child), 5)


def test_run_shell_env() -> None:
    r = run_shell("echo $CONFPY_X", 10, env={"CONFPY_X": "42", "PATH": os.environ.get("PATH", "")})
    assert r.output == "42\n"


def test_check_command_substitutes_quoted_path(tmp_path: Path) -> None:
    staged = tmp_path / "we ird 'q\" $HOME `x`.cfg"
    staged.write_text("content\n")
    for template in ("test -f {{.src}} && cat {{ src }}", "cat {{src}}", "cat {{ .src }}"):
        cmd = check_command(template, str(staged))
        assert "src" not in cmd.replace(str(tmp_path), "")
        r = run_shell(cmd, 10)
        assert r.ok, r.summary()
        assert r.output == "content\n"
