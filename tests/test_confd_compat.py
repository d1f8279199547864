"""confd's own integration scenarios, ported: the same resources and data, byte-identical output.

``tests/confd_compat`` is confd's ``integration/confdir`` (conf.d TOML and templates,
the templates rewritten in Jinja2 with confd's function names), the data confd's
``integration/file/test.sh`` feeds its file backend (``data.yaml``), and the files
confd's ``integration/expect/check.sh`` diffs against (``expect/``). ``nested`` has
no expected file upstream; ``expect/nested.conf`` is what confd's Go template makes of
that data (text/template keeps every line end and indent around its actions).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from confpy.cli import main

COMPAT = Path(__file__).parent / "confd_compat"
DATA = COMPAT / "data.yaml"

# resource (conf.d/<name>.toml) -> the expected file confd's check.sh compares it with
SCENARIOS = {
    "basic": "basic.conf",
    "exists": "exists-test.conf",
    "iteration": "iteration.conf",
    "nested": "nested.conf",
    "manykeys": "basic.conf",  # check.sh: diff /tmp/confd-manykeys-test.conf expect/basic.conf
}

_DEST = re.compile(r'^dest = "/tmp/(?P<file>[^"]+)"$', re.MULTILINE)


def port_confdir(tmp_path: Path, names: list[str]) -> tuple[Path, dict[str, Path]]:
    """Copy the confdir with only ``names`` in conf.d, each dest moved under tmp_path/out."""
    confdir = tmp_path / "confdir"
    out = tmp_path / "out"
    out.mkdir()
    shutil.copytree(COMPAT / "templates", confdir / "templates")
    (confdir / "conf.d").mkdir()
    dests: dict[str, Path] = {}
    for name in names:
        text = (COMPAT / "conf.d" / f"{name}.toml").read_text()
        match = _DEST.search(text)
        assert match is not None, f"{name}.toml: no dest under /tmp"
        dests[name] = out / match["file"]
        text = _DEST.sub(f'dest = "{dests[name]}"', text)
        (confdir / "conf.d" / f"{name}.toml").write_text(text)
    return confdir, dests


def empty_config(tmp_path: Path) -> Path:
    """An empty settings file, so no /etc/confpy/confpy.toml on the machine is read."""
    path = tmp_path / "confpy.toml"
    path.touch()
    return path


def onetime(confdir: Path, tmp_path: Path) -> int:
    """``confpy -onetime`` in this process, against the file store."""
    config = empty_config(tmp_path)
    return main(["-onetime", "-confdir", str(confdir), "-file", str(DATA), "-config-file", str(config)])


def assert_matches_confd(name: str, dest: Path) -> None:
    expected = (COMPAT / "expect" / SCENARIOS[name]).read_bytes()
    assert dest.read_bytes() == expected, f"{name}: output differs from confd's expect/{SCENARIOS[name]}"
    assert dest.stat().st_mode & 0o777 == 0o644  # mode = "0644" in the resource


@pytest.fixture(autouse=True)
def confd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # confd's test scripts export HOSTNAME=localhost; basic.conf prints it with getenv.
    monkeypatch.setenv("HOSTNAME", "localhost")
    for var in [v for v in os.environ if v.startswith("CONFPY_")]:
        monkeypatch.delenv(var)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_byte_identical(name: str, tmp_path: Path) -> None:
    confdir, dests = port_confdir(tmp_path, [name])
    code = onetime(confdir, tmp_path)
    assert code == 0
    assert_matches_confd(name, dests[name])


def test_all_scenarios_in_one_run_with_confds_command_line(tmp_path: Path) -> None:
    """The whole confdir at once, with the flags of confd's integration/file/test.sh
    (less --watch), as a separate process."""
    confdir, dests = port_confdir(tmp_path, list(SCENARIOS))
    cmd = [
        sys.executable, "-m", "confpy",
        "--onetime", "--log-level", "debug", "--confdir", str(confdir),
        "--backend", "file", "--file", str(DATA), "--config-file", str(empty_config(tmp_path)),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFPY_")}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    for name, dest in dests.items():
        assert_matches_confd(name, dest)

    # A second run finds every file in sync and leaves it alone.
    before = {name: dest.stat().st_mtime_ns for name, dest in dests.items()}
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert again.returncode == 0, again.stderr
    assert {name: dest.stat().st_mtime_ns for name, dest in dests.items()} == before


def test_missing_hostname_is_empty_as_in_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """confd's getenv of an unset variable is "" (Go's os.Getenv), not an error."""
    monkeypatch.delenv("HOSTNAME", raising=False)
    confdir, dests = port_confdir(tmp_path, ["basic"])
    code = onetime(confdir, tmp_path)
    assert code == 0
    expected = (COMPAT / "expect" / "basic.conf").read_bytes().replace(b"hostname: localhost", b"hostname: ")
    assert dests["basic"].read_bytes() == expected
