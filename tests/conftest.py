"""Shared fixtures. etcd fixtures live in tests/support/etcd_fixtures.py."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.support.etcd_fixtures"]

MakeConfdir = Callable[..., Path]


@pytest.fixture
def calico_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The BIRD templates' environment: Calico's BIRD build (said, not detected: this
    machine's BIRD is Debian's) and no CALICO_ROUTER_ID, unless a test sets them."""
    monkeypatch.setenv("BIRD_FLAVOR", "calico")
    monkeypatch.delenv("CALICO_ROUTER_ID", raising=False)


@pytest.fixture
def make_confdir(tmp_path: Path) -> MakeConfdir:
    """Write a confdir: ``resources`` maps a conf.d name to its [template] body (TOML,
    ``{out}`` replaced by the output directory), ``templates`` maps a name to its text."""

    def make(resources: dict[str, str], templates: dict[str, str]) -> Path:
        confdir = tmp_path / "confdir"
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        (confdir / "conf.d").mkdir(parents=True, exist_ok=True)
        (confdir / "templates").mkdir(exist_ok=True)
        for name, body in resources.items():
            path = confdir / "conf.d" / f"{name}.toml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("[template]\n" + body.replace("{out}", str(out)))
        for name, text in templates.items():
            (confdir / "templates" / name).write_text(text)
        return confdir

    return make


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted for the test (root only): a disk that fills up."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "tmpfs"
    where.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(where)], check=True, timeout=10
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=10)


@pytest.fixture(autouse=True)
def _drop_confpy_log_handlers() -> Iterator[None]:
    """main() run in-process installs a handler on the sys.stderr of its test, which
    pytest closes afterwards: remove it, so later log lines do not hit a closed file."""
    yield
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if getattr(handler, "confpy", False):
            root.removeHandler(handler)
