"""Writing files: compare, stage, check, replace atomically, reload once per unit."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from confpy.cli import main
from tests.conftest import MakeConfdir


def run(confdir: Path, data: Path, *extra: str) -> int:
    return main(["-onetime", f"-confdir={confdir}", "-file", str(data), *extra])


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text("app:\n  host: h1\n  port: '80'\n")
    return path


def out(confdir: Path, name: str) -> Path:
    return confdir.parent / "out" / name


def test_writes_the_file_runs_check_and_reload_then_is_in_sync(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path
) -> None:
    log = tmp_path / "reloads"
    confdir = make_confdir(
        {
            "app": f'src = "app.j2"\ndest = "{{out}}/app.conf"\nprefix = "/app"\nmode = "0640"\ncheck_cmd = "grep -q host= {{{{.src}}}}"\nreload_cmd = "echo r >> {log}"\n'
        },
        {"app.j2": "host={{ getv('/host') }}\n"},
    )
    assert run(confdir, data) == 0
    dest = out(confdir, "app.conf")
    assert dest.read_text() == "host=h1\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert log.read_text() == "r\n"
    assert run(confdir, data) == 0
    assert log.read_text() == "r\n", "an unchanged file must not be reloaded"
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".confpy")], (
        "no stage or marker left behind"
    )


def test_without_mode_an_existing_files_mode_is_kept(make_confdir: MakeConfdir, data: Path) -> None:
    confdir = make_confdir(
        {"app": 'src = "app.j2"\ndest = "{out}/app.conf"\nprefix = "/app"\n'},
        {"app.j2": "{{ getv('/host') }}\n"},
    )
    dest = out(confdir, "app.conf")
    dest.write_text("old\n")
    dest.chmod(0o600)
    assert run(confdir, data) == 0
    assert dest.read_text() == "h1\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_a_failed_check_leaves_the_destination_and_runs_no_reload(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path
) -> None:
    log = tmp_path / "reloads"
    confdir = make_confdir(
        {
            "bad": f'src = "app.j2"\ndest = "{{out}}/bad.conf"\nprefix = "/app"\ncheck_cmd = "echo nope; false"\nreload_cmd = "echo r >> {log}"\n',
            "good": 'src = "app.j2"\ndest = "{out}/good.conf"\nprefix = "/app"\n',
        },
        {"app.j2": "{{ getv('/host') }}\n"},
    )
    bad = out(confdir, "bad.conf")
    bad.write_text("last good\n")
    assert run(confdir, data) == 1
    assert bad.read_text() == "last good\n"
    assert not log.exists()
    assert out(confdir, "good.conf").read_text() == "h1\n", "other resources are still applied"


def test_a_hanging_check_is_killed_at_its_timeout(make_confdir: MakeConfdir, data: Path) -> None:
    confdir = make_confdir(
        {
            "app": 'src = "app.j2"\ndest = "{out}/app.conf"\nprefix = "/app"\ncheck_cmd = "sleep 30"\ncheck_timeout = "300ms"\n'
        },
        {"app.j2": "x\n"},
    )
    assert run(confdir, data) == 1
    assert not out(confdir, "app.conf").exists()


def test_a_failing_reload_is_exit_1_and_is_retried_by_the_next_run(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "reload-works"
    log = tmp_path / "reloads"
    confdir = make_confdir(
        {
            "app": f'src = "app.j2"\ndest = "{{out}}/app.conf"\nprefix = "/app"\nreload_cmd = "test -e {flag} && echo r >> {log}"\n'
        },
        {"app.j2": "{{ getv('/host') }}\n"},
    )
    assert run(confdir, data) == 1
    assert out(confdir, "app.conf").read_text() == "h1\n"
    flag.touch()
    assert run(confdir, data) == 0, "the file is in sync, but the reload it owes is still run"
    assert log.read_text() == "r\n"


def test_missing_destination_directory_fails_that_resource_only(
    make_confdir: MakeConfdir, data: Path
) -> None:
    confdir = make_confdir(
        {
            "a": 'src = "app.j2"\ndest = "{out}/missing/a.conf"\nprefix = "/app"\n',
            "b": 'src = "app.j2"\ndest = "{out}/b.conf"\nprefix = "/app"\n',
        },
        {"app.j2": "{{ getv('/host') }}\n"},
    )
    assert run(confdir, data) == 1
    assert out(confdir, "b.conf").exists()


def test_unwritable_destination_directory_is_reported(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path
) -> None:
    if os.geteuid() == 0:
        # root ignores directory permissions: use a read-only bind of a file system we cannot write: /proc.
        dest = "/proc/confpy-test.conf"
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        dest = f"{ro}/x.conf"
    confdir = make_confdir({"a": f'src = "app.j2"\ndest = "{dest}"\nprefix = "/app"\n'}, {"app.j2": "x\n"})
    assert run(confdir, data) == 1


UNIT = {
    "main": 'src = "main.j2"\ndest = "{out}/main.cfg"\nprefix = "/app"\nunit = "svc"\ncheck_cmd = "grep -q include {{.src}} && test -s $(dirname {{.src}})/inc.cfg && ! grep -q BAD $(dirname {{.src}})/inc.cfg"\nreload_cmd = "echo r >> {out}/../reloads"\n',
    "inc": 'src = "inc.j2"\ndest = "{out}/inc.cfg"\nprefix = "/app"\nunit = "svc"\nreload_cmd = "echo r >> {out}/../reloads"\n',
}
UNIT_TEMPLATES = {
    "main.j2": "include inc.cfg\nmain {{ getv('/host') }}\n",
    "inc.j2": "inc {{ getv('/port') }}\n",
}


def test_unit_first_start_checks_the_main_file_with_its_include_staged_beside_it(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path
) -> None:
    confdir = make_confdir(UNIT, UNIT_TEMPLATES)
    assert run(confdir, data) == 0, "the include is not on disk yet, but it is in the stage"
    assert out(confdir, "inc.cfg").read_text() == "inc 80\n"
    assert (tmp_path / "reloads").read_text() == "r\n", "two files, one reload"


def test_unit_change_in_the_include_only_still_checks_the_main_file_and_reloads_once(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path
) -> None:
    confdir = make_confdir(UNIT, UNIT_TEMPLATES)
    assert run(confdir, data) == 0
    data.write_text("app:\n  host: h1\n  port: BAD\n")
    assert run(confdir, data) == 1, "the main file's check sees the bad include"
    assert out(confdir, "inc.cfg").read_text() == "inc 80\n"
    data.write_text("app:\n  host: h2\n  port: '81'\n")
    assert run(confdir, data) == 0
    assert out(confdir, "main.cfg").read_text() == "include inc.cfg\nmain h2\n"
    assert out(confdir, "inc.cfg").read_text() == "inc 81\n"
    assert (tmp_path / "reloads").read_text() == "r\nr\n"


def test_unit_render_failure_changes_none_of_its_files(make_confdir: MakeConfdir, data: Path) -> None:
    confdir = make_confdir(UNIT, UNIT_TEMPLATES)
    assert run(confdir, data) == 0
    data.write_text("app:\n  host: h2\n")  # /port is gone: inc.j2 cannot render
    assert run(confdir, data) == 1
    assert out(confdir, "main.cfg").read_text() == "include inc.cfg\nmain h1\n"


def test_an_interrupted_unit_apply_is_finished_and_reloaded_by_the_next_run(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path
) -> None:
    confdir = make_confdir(UNIT, UNIT_TEMPLATES)
    assert run(confdir, data) == 0
    # What a kill -9 between the two renames leaves: the marker, a stale stage, the include replaced.
    outdir = out(confdir, "x").parent
    (outdir / ".confpy-pending-svc").write_text(f"{outdir}/inc.cfg\n")
    stale = outdir / ".confpy-stage-999999-abc"
    stale.mkdir()
    (stale / "main.cfg").write_text("half\n")
    data.write_text("app:\n  host: h1\n  port: '81'\n")
    out(confdir, "inc.cfg").write_text("inc 81\n")
    assert run(confdir, data) == 0
    assert (tmp_path / "reloads").read_text() == "r\nr\n", "the owed reload ran"
    assert not (outdir / ".confpy-pending-svc").exists()
    assert not stale.exists()


def test_noop_reports_a_diff_and_the_check_and_changes_nothing(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    confdir = make_confdir(UNIT, UNIT_TEMPLATES)
    out(confdir, "main.cfg").write_text("old\n")
    assert main(["-noop", f"-confdir={confdir}", "-file", str(data)]) == 0
    report = capsys.readouterr().out
    assert "-old\n+include inc.cfg\n+main h1\n" in report
    assert "check grep -q include" in report and ": ok in" in report
    assert "would reload once: echo r" in report
    assert out(confdir, "main.cfg").read_text() == "old\n"
    assert not out(confdir, "inc.cfg").exists()
    assert not (tmp_path / "reloads").exists()


def test_stdout_review_prints_each_file_with_a_header_and_writes_nothing(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    confdir = make_confdir(UNIT, UNIT_TEMPLATES)
    assert main(["--stdout", f"-confdir={confdir}", "-file", str(data), "--resource", "inc"]) == 0
    text = capsys.readouterr().out
    assert f"# ==> {out(confdir, 'inc.cfg')} (inc; not on disk yet) <==\ninc 80\n" in text
    assert "main h1" in text, "the rest of the unit is shown with it"
    assert not out(confdir, "inc.cfg").exists()


def test_sync_only_writes_without_check_or_reload(
    make_confdir: MakeConfdir, data: Path, tmp_path: Path
) -> None:
    confdir = make_confdir(UNIT, UNIT_TEMPLATES)
    data.write_text("app:\n  host: h1\n  port: BAD\n")
    assert run(confdir, data, "-sync-only") == 0
    assert out(confdir, "inc.cfg").read_text() == "inc BAD\n"
    assert not (tmp_path / "reloads").exists()


def test_keep_stage_file_keeps_the_staged_set_after_a_failed_check(
    make_confdir: MakeConfdir, data: Path
) -> None:
    confdir = make_confdir(UNIT, UNIT_TEMPLATES)
    data.write_text("app:\n  host: h1\n  port: BAD\n")
    assert run(confdir, data, "-keep-stage-file") == 1
    (stage,) = [p for p in out(confdir, "x").parent.iterdir() if p.name.startswith(".confpy-stage-")]
    assert (stage / "inc.cfg").read_text() == "inc BAD\n"


def test_an_unexpected_error_in_one_unit_fails_that_unit_only(
    make_confdir: MakeConfdir, data: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import confpy.apply

    confdir = make_confdir(
        {
            "a": 'src = "app.j2"\ndest = "{out}/a.conf"\nprefix = "/app"\n',
            "b": 'src = "app.j2"\ndest = "{out}/b.conf"\nprefix = "/app"\n',
        },
        {"app.j2": "{{ getv('/host') }}\n"},
    )
    real = confpy.apply.replace

    def buggy(staged: Path, target: confpy.apply.Target) -> None:
        if target.dest.name == "a.conf":
            raise RuntimeError("a bug of ours")
        real(staged, target)

    monkeypatch.setattr(confpy.apply, "replace", buggy)
    assert run(confdir, data) == 1, "a failed unit, not a traceback"
    assert out(confdir, "b.conf").read_text() == "h1\n"
    assert not out(confdir, "a.conf").exists()
    assert "unit a: unexpected error" in caplog.text and "a bug of ours" in caplog.text


def test_a_stale_stage_is_removed_at_start_even_when_every_unit_is_in_sync(
    make_confdir: MakeConfdir, data: Path
) -> None:
    """A confpy killed while staging leaves its stage; the next run finds the files in
    sync (or cannot render them) and writes nothing: the stage must go all the same
    (found by the model-checked daemon, tests/test_model_daemon.py)."""
    confdir = make_confdir(UNIT, UNIT_TEMPLATES)
    assert run(confdir, data) == 0
    outdir = out(confdir, "x").parent
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = outdir / f".confpy-stage-{dead.stdout.strip()}-abc"
    stale.mkdir()
    (stale / "main.cfg").write_text("half\n")
    assert main(["-noop", f"-confdir={confdir}", f"-file={data}", "-config-file=/dev/null"]) == 0
    assert stale.exists(), "-noop removes nothing"
    assert run(confdir, data) == 0
    assert not stale.exists()
