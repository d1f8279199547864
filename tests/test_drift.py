"""Drift detection and the operator's view of a change: --detailed-exitcode, --resource
by a destination's base name, the per-file summary (and debug diff) of an apply."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from confpy.cli import main
from tests.conftest import MakeConfdir


@pytest.fixture
def setup(make_confdir: MakeConfdir, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    confdir = make_confdir(
        {
            "app": 'src = "app.j2"\ndest = "{out}/app.conf"\nprefix = "/app"\n',
            "other": 'src = "other.j2"\ndest = "{out}/sub/other.conf"\nprefix = "/app"\n',
        },
        {
            "app.j2": "a={{ getv('/a') }}\nb={{ getv('/b') }}\ns={{ getv('/secret') }}\n",
            "other.j2": "other\n",
        },
    )
    (tmp_path / "out" / "sub").mkdir()
    data = tmp_path / "data.yaml"
    data.write_text("app: {a: '1', b: '2', secret: hunter2}\n")
    config = tmp_path / "confpy.toml"
    config.touch()
    return (
        confdir,
        tmp_path / "out",
        ["-confdir", str(confdir), "-file", str(data), "-config-file", str(config)],
    )


def test_noop_and_stdout_say_4_when_a_file_would_change_and_0_in_sync(
    setup: tuple[Path, Path, list[str]],
) -> None:
    _, _, flags = setup
    assert main(["-noop", "--detailed-exitcode", *flags]) == 4
    assert main(["--stdout", "--detailed-exitcode", *flags]) == 4
    assert main(["-noop", *flags]) == 0  # without the flag: as before
    assert main(["-onetime", *flags]) == 0
    assert main(["-noop", "--detailed-exitcode", *flags]) == 0
    assert main(["--stdout", "--detailed-exitcode", *flags]) == 0


def test_detailed_exitcode_only_with_noop_or_stdout(setup: tuple[Path, Path, list[str]]) -> None:
    _, _, flags = setup
    assert main(["-onetime", "--detailed-exitcode", *flags]) == 2


def test_a_failure_is_still_1_with_detailed_exitcode(setup: tuple[Path, Path, list[str]]) -> None:
    confdir, _, flags = setup
    (confdir / "templates" / "other.j2").write_text("{{ getv('/missing') }}\n")
    assert main(["-noop", "--detailed-exitcode", *flags]) == 1


def test_resource_by_the_base_name_of_its_destination(
    setup: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, flags = setup
    assert main(["--stdout", "--resource", "other.conf", *flags]) == 0
    shown = capsys.readouterr().out
    assert f"# ==> {out}/sub/other.conf (other; not on disk yet) <==" in shown and "app.conf" not in shown
    assert main(["--stdout", "--resource", "nope.conf", *flags]) == 2
    assert (
        "no resource named 'nope.conf' (known: app, app.conf, other, other.conf)" in capsys.readouterr().err
    )


def test_an_apply_logs_lines_added_and_removed_and_the_diff_at_debug(
    setup: tuple[Path, Path, list[str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, out, flags = setup
    (out / "app.conf").write_text("a=0\nb=2\n")
    caplog.set_level(logging.DEBUG, logger="confpy")
    assert main(["-onetime", "--sensitive-key", "/app/secret", *flags]) == 0
    assert f"wrote {out}/app.conf (unit app): +2 -1 lines" in caplog.text
    assert f"wrote {out}/sub/other.conf (unit other): +1 -0 lines" in caplog.text
    diff = next(
        r.getMessage() for r in caplog.records if r.getMessage().startswith(f"diff of {out}/app.conf")
    )
    assert "-a=0\n+a=1\n b=2\n+s=<redacted>\n" in diff and "hunter2" not in caplog.text
