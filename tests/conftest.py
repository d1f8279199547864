"""Shared fixtures. etcd fixtures live in tests/support/etcd_fixtures.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["tests.support.etcd_fixtures"]

MakeConfdir = Callable[..., Path]


@pytest.fixture
def calico_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The BIRD templates' environment cleared: Calico's BIRD build (no BIRD_FLAVOR) and
    no CALICO_ROUTER_ID, unless a test sets them."""
    for name in ("BIRD_FLAVOR", "CALICO_ROUTER_ID"):
        monkeypatch.delenv(name, raising=False)


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
