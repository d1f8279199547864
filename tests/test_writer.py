"""confpy.writer on its own: compare with the disk, stage privately, replace atomically."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from confpy.resource import TemplateResource
from confpy.writer import (
    STAGE_PREFIX,
    Stage,
    WriteError,
    read_target,
    remove_stale_stages,
    replace,
    write_new_file,
)


def resource(dest: Path, mode: int | None = None, name: str = "app") -> TemplateResource:
    return TemplateResource(name, dest.with_suffix(".toml"), "app.j2", dest, "/app", ("/app",), mode=mode)


def test_a_planted_symlink_in_the_stage_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_new_file(tmp_path / "link", b"evil", 0o644, None, None)
    assert victim.read_text() == "keep\n"


def test_modes_a_new_file_an_existing_file_a_secret_and_a_resource_mode(tmp_path: Path) -> None:
    dest = tmp_path / "app.conf"
    assert read_target(resource(dest), b"x").mode == 0o644
    secret = read_target(resource(dest), b"x", secret=True, secret_gid=105)
    assert (secret.mode, secret.gid) == (0o640, 105), "the reading daemon's group may read it, nobody else"
    dest.write_text("old")
    dest.chmod(0o640)
    target = read_target(resource(dest), b"x")
    assert (target.mode, target.current, target.changed) == (0o640, b"old", True)
    assert read_target(resource(dest, mode=0o600), b"old").meta_changes() == ["mode 0640 -> 0600"]
    assert not read_target(resource(dest), b"old").changed


def test_a_stage_holds_the_unit_at_its_relative_places_privately_beside_the_destinations(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    main = read_target(resource(tmp_path / "main.cfg", name="main"), b"include sub/inc.cfg\n")
    inc = read_target(resource(tmp_path / "sub" / "inc.cfg", name="inc"), b"inc\n")
    stage = Stage([main, inc])
    try:
        assert stage.dir.parent == tmp_path and stage.dir.name.startswith(f"{STAGE_PREFIX}{os.getpid()}-")
        assert stat.S_IMODE(stage.dir.stat().st_mode) == 0o700
        assert stage.paths[inc.dest] == stage.dir / "sub" / "inc.cfg"
        assert stage.paths[inc.dest].read_bytes() == b"inc\n"
        replace(stage.paths[main.dest], main)
        assert main.dest.read_bytes() == b"include sub/inc.cfg\n"
        assert not inc.dest.exists(), "only what was replaced is in place"
    finally:
        stage.remove()
    assert not stage.dir.exists()


def test_stale_stages_of_dead_processes_are_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = tmp_path / f"{STAGE_PREFIX}{dead.stdout.strip()}-abc"
    alive = tmp_path / f"{STAGE_PREFIX}{os.getppid()}-abc"
    for d in (gone, alive):
        d.mkdir()
        (d / "f").write_text("x")
    remove_stale_stages(tmp_path)
    assert not gone.exists()
    assert alive.exists()


def _leftovers(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir() if p.name.startswith(".confpy"))


def test_a_stage_that_does_not_fit_leaves_nothing_behind(small_tmpfs: Path) -> None:
    target = read_target(resource(small_tmpfs / "big.conf"), b"x" * 100_000)
    with pytest.raises(WriteError, match=r"cannot stage .*big\.conf.*No space left on device"):
        Stage([target])
    assert _leftovers(small_tmpfs) == []
    assert shutil.disk_usage(small_tmpfs).used == 0, "the partial file is gone too"


def test_stale_stages_of_this_process_are_removed_in_use_and_kept_ones_stay(tmp_path: Path) -> None:
    leftover = tmp_path / f"{STAGE_PREFIX}{os.getpid()}-leftover"
    leftover.mkdir()
    in_use = Stage([read_target(resource(tmp_path / "a.conf"), b"a")])
    kept = Stage([read_target(resource(tmp_path / "b.conf", name="b"), b"b")])
    kept.keep()
    remove_stale_stages(tmp_path)
    assert not leftover.exists()
    assert in_use.dir.exists() and kept.dir.exists()
    in_use.remove()
    kept.remove()
