"""``confpy convert`` on a whole confdir: TOMLs kept, templates converted, every
problem listed, and the converted confdir rendering what confd renders.

``tests/convert_fixtures/confd`` is a confd confdir written for these tests: Go
templates that give, from ``tests/confd_compat/data.yaml``, the files confd's
integration test expects (``tests/confd_compat/expect``, which the hand-ported Jinja
templates of test_confd_compat are checked against too).
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

FIXTURE = Path(__file__).parent / "convert_fixtures" / "confd"
COMPAT = Path(__file__).parent / "confd_compat"
EXPECTED = {  # dest file -> confd's expected file
    "confd-basic-test.conf": "basic.conf",
    "confd-exists-test.conf": "exists-test.conf",
    "confd-iteration-test.conf": "iteration.conf",
    "confd-nested-test.conf": "nested.conf",
    "confd-manykeys-test.conf": "basic.conf",
}


@pytest.fixture(autouse=True)
def confd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "localhost")  # as confd's integration scripts export it
    for var in [v for v in os.environ if v.startswith("CONFPY_")]:
        monkeypatch.delenv(var)


def convert(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confpy", "convert", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compare_dir(tmp_path: Path) -> Path:
    """confd's expected files under the names of the resources' destinations."""
    out = tmp_path / "confd-wrote"
    out.mkdir()
    for dest, expected in EXPECTED.items():
        shutil.copy(COMPAT / "expect" / expected, out / dest)
    return out


def test_converted_confdir_renders_byte_for_byte_what_confd_renders(tmp_path: Path) -> None:
    dest = tmp_path / "confpy"
    run = convert(
        str(FIXTURE), str(dest), "--check", str(COMPAT / "data.yaml"), "--compare", str(compare_dir(tmp_path))
    )
    assert run.returncode == 0, run.stdout + run.stderr
    checked = [line for line in run.stdout.splitlines() if line.startswith("ok ")]
    assert len(checked) == 5 and all("same as" in line for line in checked)
    # the TOML is kept as written (comment, layout), only src changes
    toml = (dest / "conf.d" / "basic.toml").read_text()
    assert toml == (FIXTURE / "conf.d" / "basic.toml").read_text().replace(
        '"basic.conf.tmpl"', '"basic.conf.j2"'
    )
    assert sorted(p.name for p in (dest / "templates").iterdir()) == [
        "basic.conf.j2", "exists-test.conf.j2", "iteration.conf.j2", "nested.conf.j2",
    ]  # fmt: skip


def test_converted_confdir_runs_with_onetime(tmp_path: Path) -> None:
    dest = tmp_path / "confpy"
    assert convert(str(FIXTURE), str(dest)).returncode == 0
    out = tmp_path / "out"
    for toml in (dest / "conf.d").glob("*.toml"):
        toml.write_text(toml.read_text().replace('dest = "/tmp/', f'dest = "{out}/'))
    out.mkdir()
    config = tmp_path / "confpy.toml"
    config.touch()
    code = main(
        ["-onetime", "-confdir", str(dest), "-file", str(COMPAT / "data.yaml"), "-config-file", str(config)]
    )
    assert code == 0
    for name, expected in EXPECTED.items():
        assert (out / name).read_bytes() == (COMPAT / "expect" / expected).read_bytes(), name


def test_check_reports_a_file_that_differs_and_exits_1(tmp_path: Path) -> None:
    wrote = compare_dir(tmp_path)
    (wrote / "confd-exists-test.conf").write_text("value: something else\n")
    run = convert(
        str(FIXTURE), str(tmp_path / "confpy"), "--check", str(COMPAT / "data.yaml"), "--compare", str(wrote)
    )
    assert run.returncode == 1
    assert "FAILED  exists -> /tmp/confd-exists-test.conf: differs" in run.stdout
    assert "line 1: 'value: something else\\n' expected, 'value: foobar\\n' rendered" in run.stdout


def test_stdout_shows_the_converted_files_and_writes_nothing(tmp_path: Path) -> None:
    run = convert("--stdout", str(FIXTURE))
    assert run.returncode == 0, run.stderr
    assert "# ==> templates/iteration.conf.j2 (converted from iteration.conf.tmpl) <==" in run.stdout
    assert '{% for kv in gets("/upstream/*") %}  server {{ kv.Value }};' in run.stdout
    assert "# ==> conf.d/basic.toml (src basic.conf.tmpl -> basic.conf.j2) <==" in run.stdout


def write_confdir(root: Path, tomls: dict[str, str], templates: dict[str, str]) -> Path:
    for name, text in tomls.items():
        (root / "conf.d").mkdir(parents=True, exist_ok=True)
        (root / "conf.d" / name).write_text(text)
    for name, text in templates.items():
        (root / "templates").mkdir(parents=True, exist_ok=True)
        (root / "templates" / name).write_text(text)
    return root


def test_every_problem_of_every_file_is_listed_and_nothing_written(tmp_path: Path) -> None:
    src = write_confdir(
        tmp_path / "confd",
        {
            "a.toml": '[template]\nsrc = "a.tmpl"\ndest = "/tmp/a"\n',
            "b.toml": '[template]\nsrc = "b.tmpl"\ndest = "/tmp/b"\n',
            "c.toml": '[template]\nsrc = "c.tmpl"\ndest = \n',
            "d.toml": '[template]\nsrc = "missing.tmpl"\ndest = "/tmp/d"\n',
        },
        {"a.tmpl": "ok\n{{if}}\n", "b.tmpl": '{{lookupSRV "x" "tcp" "y"}}\n{{template "t"}}\n'},
    )
    dest = tmp_path / "confpy"
    run = convert(str(src), str(dest))
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "warning" not in line]
    assert errors == [
        f"confpy convert: {src}/templates/a.tmpl:2:5: missing value for if",
        f"confpy convert: {src}/templates/b.tmpl:1:3: lookupSRV (DNS SRV records) has no confpy counterpart",
        f"confpy convert: {src}/templates/b.tmpl:2:1: template 't' is not defined in this file (confd fails here)",
        f"confpy convert: {src}/conf.d/c.toml:3:8: TOML syntax error: Invalid value",
        f"confpy convert: {src}/conf.d/d.toml:1:1: [template] src: template missing.tmpl not found in {src}/templates",
        "confpy convert: 5 problem(s) in 4 file(s): nothing written",
    ]
    assert not dest.exists()


def test_confd_leniencies_become_warnings(tmp_path: Path) -> None:
    src = write_confdir(
        tmp_path / "confd",
        {
            "a.toml": '[template]\nsrc = "a.tmpl"\ndest = "/tmp/a"\nmode = "644"\nchek_cmd = "true"\nreload_cmd = "x {{.dest}}"\n'
        },
        {"a.tmpl": "{{getv `/a`}}\n", "generated.cfg.template": "{{getv `/b`}}\n", "notes.txt": "plain\n"},
    )
    (src / "confd.toml").write_text('backend = "etcdv3"\nsrv_domain = "example.com"\n')
    dest = tmp_path / "confpy"
    run = convert(str(src), str(dest))
    assert run.returncode == 0, run.stderr
    assert (dest / "confpy.toml").read_text() == (
        src / "confd.toml"
    ).read_text()  # confpy warns of srv_domain
    assert "chek_cmd: not a confd field, confd ignored it (did you mean 'check_cmd'?): dropped" in run.stderr
    assert 'mode "644": confd reads it as decimal (0o1204), confpy as octal (0644)' in run.stderr
    assert "reload_cmd: confpy replaces only {{.src}} in it" in run.stderr
    assert "chek_cmd" not in (dest / "conf.d" / "a.toml").read_text()
    # named by no resource: converted under its own name (a resource rendered at run time may name it)
    assert (dest / "templates" / "generated.cfg.template").read_text().endswith('{{ getv("/b") }}\n')
    assert (dest / "templates" / "notes.txt").read_text() == "plain\n"


def test_a_dest_that_is_not_empty_needs_force(tmp_path: Path) -> None:
    dest = tmp_path / "confpy"
    dest.mkdir()
    (dest / "keep").touch()
    assert convert(str(FIXTURE), str(dest)).returncode == 2
    assert convert(str(FIXTURE), str(dest), "--force").returncode == 0
    assert (dest / "keep").exists() and (dest / "templates" / "basic.conf.j2").exists()


def test_the_worked_example_of_the_migration_page(tmp_path: Path) -> None:
    """examples/confd (docs/migrating-from-confd.md): define/template with dot, a variable
    re-assigned in a loop, range with else, printf %.0f of a JSON number, getv's default.
    The expected text is Go's, worked out by hand from its trim markers."""
    dest = tmp_path / "confpy"
    example = Path(__file__).parents[1] / "examples" / "confd"
    assert convert(str(example), str(dest)).returncode == 0
    toml = dest / "conf.d" / "haproxy.toml"
    toml.write_text(toml.read_text().replace("/etc/haproxy/", f"{tmp_path}/"))
    (tmp_path / "confpy.toml").touch()
    args = ["-onetime", "-sync-only", "-confdir", str(dest), "-file", str(example / "data.yaml")]
    assert main([*args, "-config-file", str(tmp_path / "confpy.toml")]) == 0
    assert (tmp_path / "haproxy.cfg").read_text() == (
        "# Generated by confd\ndefaults\n    timeout connect 2s\n\n\n"
        "backend blog\n    server blog1 10.0.1.11:80 check\n    # blog: the last port has 2 digits\n\n"
        "backend shop\n    server shop1 10.0.0.11:8080 check\n    server shop2 10.0.0.12:8080 backup check\n"
        "    # shop: the last port has 4 digits\n"
    )


@pytest.mark.parametrize(
    ("toml", "template", "message"),
    [
        # Found by the convert_confdir fuzz harness's seeded mutator (the 4300-digit integer: by
        # reading) (tests/fuzz/corpus/convert_confdir/regress-*): each went through as a traceback.
        (
            b'[template]\nsrc = "t.tmpl"\ndest = "/caf\xe9"\n',
            b"x\n",
            r"fuzz.toml:1:1: not UTF-8 text: byte 38 is 0xe9",
        ),
        (
            b'[template]\nsrc = "t.tmpl"\ndest = "/x"\n',
            b"caf\xe9 {{.}}\n",
            r"t.tmpl:1:1: not UTF-8 text: byte 3 is 0xe9",
        ),
        (
            b'[template]\nsrc = "' + b"a" * 300 + b'"\ndest = "/x"\n',
            b"",
            r"fuzz.toml:1:1: \[template\] src: template 'a{80}': File name too long",
        ),
        (
            b'[template]\nsrc = "t.tmpl"\ndest = "/x"\nuid = ' + b"1" * 5000 + b"\n",
            b"",
            r"fuzz.toml:1:1: cannot read its TOML: Exceeds the limit \(4300 digits\)",
        ),
    ],
)
def test_files_that_cannot_be_read_are_problems(
    tmp_path: Path, toml: bytes, template: bytes, message: str
) -> None:
    from confpy.convert.confdir import convert_confdir

    (tmp_path / "conf.d").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "conf.d" / "fuzz.toml").write_bytes(toml)
    (tmp_path / "templates" / "t.tmpl").write_bytes(template)
    problems = [str(p) for p in convert_confdir(tmp_path).problems]
    assert len(problems) == 1 and re.search(message, problems[0]), problems


def test_a_decimal_mode_that_is_not_octal_is_a_warning(tmp_path: Path) -> None:
    # Found by reading, confirmed with the convert_confdir harness (tests/fuzz/corpus/convert_confdir/
    # regress-mode-9): int("9", 8) raised a ValueError out of convert_confdir.
    from confpy.convert.confdir import convert_confdir

    (tmp_path / "conf.d").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "conf.d" / "a.toml").write_text('[template]\nsrc = "a.tmpl"\ndest = "/x"\nmode = "9"\n')
    (tmp_path / "templates" / "a.tmpl").write_text("x\n")
    conv = convert_confdir(tmp_path)
    assert not conv.problems
    assert [p.message for p in conv.warnings] == [
        '[template] mode "9": confd reads it as decimal (0o11), confpy refuses it (not octal); '
        'write "011" to keep confd\'s mode'
    ]


@pytest.mark.parametrize("inner", ['src = "\\q"', 'src = "a.tmpl"'])
def test_a_src_line_inside_a_multiline_string_is_not_the_src(tmp_path: Path, inner: str) -> None:
    # Found by reading, confirmed with the convert_confdir harness (tests/fuzz/corpus/convert_confdir/
    # regress-src-in-string-*): the one "src = ..." line was inside check_cmd's string, so the
    # converter raised a TOMLDecodeError, or rewrote check_cmd and left src naming the Go template.
    import tomllib

    from confpy.convert.confdir import convert_confdir

    (tmp_path / "conf.d").mkdir()
    (tmp_path / "templates").mkdir()
    toml = f"[template]\ncheck_cmd = '''\n{inner}\n'''\n\"src\" = 'a.tmpl'\ndest = \"/x\"\n"
    (tmp_path / "conf.d" / "a.toml").write_text(toml)
    (tmp_path / "templates" / "a.tmpl").write_text("x\n")
    conv = convert_confdir(tmp_path)
    assert not conv.problems
    (out,) = [f for f in conv.files if f.path == "conf.d/a.toml"]
    assert tomllib.loads(out.text)["template"] == {"check_cmd": inner + "\n", "src": "a.j2", "dest": "/x"}
