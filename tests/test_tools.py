"""The operator's subcommands: lint, explain, completion, man (and subcommands left the
confd-compatible flags alone)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from confpy.cli import main
from confpy.settings import build_settings
from tests.conftest import MakeConfdir


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confpy", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_lint_lists_every_problem_of_every_file(make_confdir: MakeConfdir) -> None:
    confdir = make_confdir(
        {
            "good": 'src = "good.j2"\ndest = "/tmp/good"\n',
            "typo": 'src = "good.j2"\ndest = "/tmp/typo"\nchek_cmd = "true"\n',
            "badtoml": "src = \n",
            "missing": 'src = "missing.j2"\ndest = "/tmp/missing"\n',
            "jinja": 'src = "broken.j2"\ndest = "/tmp/broken"\n',
            "go": 'src = "app.conf.tmpl"\ndest = "/tmp/app.conf"\n',
            "gocompiles": 'src = "end.tmpl"\ndest = "/tmp/good"\n',
        },
        {
            "good.j2": "{{ getv('/x') }}\n",
            "broken.j2": "{% if x %}\n",
            "app.conf.tmpl": 'port = {{getv "/port"}}\n{{range gets "/u/*"}}{{.Value}}{{end}}\n',
            "end.tmpl": "a\n  {{ end }}\n",
        },
    )
    out = run("lint", "-confdir", str(confdir))
    assert out.returncode == 2
    c, t = confdir / "conf.d", confdir / "templates"
    assert out.stderr.splitlines() == [
        f"confpy lint: {c}/badtoml.toml: TOML syntax error: Invalid value (at line 2, column 7)",
        f"confpy lint: {c}/typo.toml: [template] chek_cmd: unknown field (did you mean 'check_cmd'?)",
        f"confpy lint: {c}/good.toml: dest /tmp/good is also the dest of {c}/gocompiles.toml",
        f"confpy lint: {t}/app.conf.tmpl:1: template syntax error: expected token 'end of print statement', got 'string' (src of {c}/go.toml)",
        f'  {t}/app.conf.tmpl:2:1: {{{{range gets "/u/*"}}}}: this looks like a confd Go template: see confpy convert',
        f"confpy lint: {t}/broken.j2:1: template syntax error: Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'. (src of {c}/jinja.toml)",
        f"confpy lint: {t}/end.tmpl:2:3: {{{{ end }}}}: this looks like a confd Go template: see confpy convert",
        f"confpy lint: template missing.j2 not found in {t} (src of {c}/missing.toml)",
        f"confpy lint: 7 problem(s) in {confdir}",
    ]


def test_lint_of_a_good_confdir_needs_no_store(make_confdir: MakeConfdir) -> None:
    confdir = make_confdir(
        {"a": 'src = "a.j2"\ndest = "/tmp/a"\nprefix = "//NODENAME"\n'}, {"a.j2": "{{ getv('/x') }}\n"}
    )
    out = run("lint", "--confdir", str(confdir))
    assert (out.returncode, out.stdout) == (0, f"{confdir}: 1 resource(s), 1 template(s): ok\n")


@pytest.fixture
def explained(make_confdir: MakeConfdir, tmp_path: Path) -> list[str]:
    confdir = make_confdir(
        {
            "main": 'src = "main.j2"\ndest = "{out}/main.conf"\nprefix = "/app"\nunit = "app"\n',
            "inc": 'src = "inc.j2"\ndest = "{out}/inc.conf"\nprefix = "/app"\nkeys = ["/inc"]\nunit = "app"\n',
            "other": 'src = "other.j2"\ndest = "{out}/other.conf"\nprefix = "/other"\n',
        },
        {
            "main.j2": "{{ getv('/inc/a') }} {{ getv('/b', 'none') }}\n",
            "inc.j2": "static\n",
            "other.j2": "x\n",
        },
    )
    data = tmp_path / "data.yaml"
    data.write_text("app: {inc: {a: '1'}}\nother: {}\n")
    config = tmp_path / "confpy.toml"
    config.touch()
    return ["-confdir", str(confdir), "-file", str(data), "-config-file", str(config)]


def test_explain_names_readers_units_prefixes_and_what_would_change(
    explained: list[str], tmp_path: Path
) -> None:
    out = run("explain", "/app/inc/a", *explained)
    assert out.returncode == 0, out.stderr
    o = tmp_path / "out"
    assert out.stdout.splitlines() == [
        "/app/inc/a: '1' in the store",
        "  inc (unit app, applied with main) reads it as /inc/a (prefix /app)",
        f"    {o}/inc.conf would not change if the key were removed: the template does not use it now",
        "  main (unit app, applied with inc) reads it as /inc/a (prefix /app)",
        "    would fail to render if the key were removed: cannot render main.j2",
    ]
    absent = run("explain", *explained, "/app/b")
    assert absent.stdout.splitlines()[0] == "/app/b: absent in the store"
    assert f"{o}/main.conf would change if the key changed: its text depends on it" in absent.stdout


def test_explain_of_a_key_no_resource_reads(explained: list[str]) -> None:
    out = run("explain", "/elsewhere/x", *explained)
    assert out.returncode == 1
    assert out.stdout.splitlines()[:2] == ["/elsewhere/x: no resource reads it", "  inc reads /app/inc"]


def test_bash_completion_names_flags_and_subcommands() -> None:
    out = run("completion", "bash")
    assert out.returncode == 0
    assert "complete -F _confpy confpy" in out.stdout
    assert "convert lint man" in out.stdout.replace("completion ", "").replace("explain ", "")
    words = set(out.stdout.replace('"', " ").split())
    assert {"-confdir", "--confdir", "--detailed-exitcode", "--check", "-check", "--compare"} <= words
    script = subprocess.run(
        ["bash", "-n"], input=out.stdout, text=True, capture_output=True, timeout=30, check=False
    )
    assert script.returncode == 0, script.stderr


def test_man_page_is_made_from_help() -> None:
    out = run("man")
    assert out.returncode == 0
    page = out.stdout
    assert page.startswith(".TH CONFPY 1")
    for words in ("\\fB--detailed-exitcode\\fR", ".SS confpy convert SRC_CONFDIR DEST_CONFDIR", ".SS confpy lint",
                  "4  with --detailed-exitcode", "\\fB--compare\\fR DIR"):  # fmt: skip
        assert words in page


def test_confd_flags_still_parse_after_the_subcommands(tmp_path: Path) -> None:
    """A confdir named like a subcommand is still a flag value, and an empty -client-key= is unset."""
    s = build_settings({"confdir": "convert", "files": ["x"], "client_key": ""}, {"NODENAME": "n"})
    assert (str(s.confdir), s.client_key) == ("convert", None)
    assert main(["-confdir", "lint", "-onetime", "-file", str(tmp_path / "none.yaml")]) == 2
