"""Getting BIRD 2 beside BIRD 1.6: scripts/bird2-unpack, and the reason BIRD 2 tests skip.

Debian's bird2 conflicts with bird, so it is unpacked, not installed. Where that cannot
be done the suite still runs: the script says why and exits 0, and every BIRD 2 test
skips naming what is missing. These tests use stand-ins (no package is fetched).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import bird_daemon
from tests.support.birdset import BIRD2

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bird2-unpack"


def fake_bird(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho 'BIRD version {version}'\n")
    path.chmod(0o755)
    return path


def unpack(tmp_path: Path, root: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "BIRD2_ROOT": str(root), "HOME": str(tmp_path)}
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_without_apt_the_script_says_why_and_does_not_fail(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # the tools the script needs, without apt-get and dpkg-deb
    bin_dir.mkdir()
    for tool in ("id", "grep"):
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
    root = tmp_path / "bird2"
    done = unpack(tmp_path, root, str(bin_dir))
    assert done.returncode == 0, done.stderr
    assert "no apt-get/dpkg-deb here: BIRD 2 tests will skip" in done.stderr
    assert not root.exists()


def test_nothing_to_do_when_bird2_is_there(tmp_path: Path) -> None:
    root = tmp_path / "bird2"
    fake_bird(root / "usr" / "sbin" / "bird", "2.0.12")
    done = unpack(tmp_path, root, os.environ["PATH"])
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.fixture
def fresh_lookup(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """bird2_missing() is cached: cleared before and after, so other tests see the real answer."""
    bird_daemon.bird2_missing.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    bird_daemon.bird2_missing.cache_clear()


def test_a_missing_bird2_is_a_skip_reason_naming_the_way_to_get_it(
    fresh_lookup: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fresh_lookup.setenv("BIRD_LAB_BIRD2", str(tmp_path / "nowhere" / "bird"))
    why = BIRD2.missing()
    assert why is not None
    assert str(tmp_path / "nowhere" / "bird") in why and "scripts/bird2-unpack" in why
    assert bird_daemon.bird2_binary() is None


def test_bird_1_6_under_the_bird2_name_is_refused(fresh_lookup: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fresh_lookup.setenv("BIRD_LAB_BIRD2", str(fake_bird(tmp_path / "bird", "1.6.8")))
    assert "is not a working BIRD 2" in str(BIRD2.missing())


def test_bird2_found_gives_its_birdc_beside_it(fresh_lookup: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fresh_lookup.setenv("BIRD_LAB_BIRD2", str(fake_bird(tmp_path / "sbin" / "bird", "2.0.12")))
    assert BIRD2.missing() is None
    assert bird_daemon.bird2_binary("birdc") == str(tmp_path / "sbin" / "birdc")
