from pathlib import Path

import pytest

from confpy.errors import ConfigError
from confpy.render import Renderer
from confpy.resource import group_units, load_resources


def write(confdir: Path, name: str, body: str) -> Path:
    path = confdir / "conf.d" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    (confdir / "templates").mkdir(exist_ok=True)
    (confdir / "templates" / "t.j2").write_text("x\n")
    return path


def load(confdir: Path, node: str = "node1", prefix: str = "") -> list:  # type: ignore[type-arg]
    renderer = Renderer(confdir / "templates")
    return load_resources(confdir, node, prefix, renderer.compile)


def test_confd_fields_and_nodename_substitution(tmp_path: Path) -> None:
    write(
        tmp_path,
        "bird_ipam",
        '[template]\nsrc = "t.j2"\ndest = "/etc/x.cfg"\nprefix = "/calico"\n'
        'keys = ["/v1/ipam/v4/pool", "/bgp/v1/host//NODENAME"]\nmode = "0644"\n'
        'check_cmd = "bird -p -c {{.src}}"\nreload_cmd = "true"\n',
    )
    (r,) = load(tmp_path, node="nodeA")
    assert r.name == "bird_ipam"
    assert r.prefix == "/calico"
    assert r.keys == ("/calico/v1/ipam/v4/pool", "/calico/bgp/v1/host/nodeA")
    assert r.mode == 0o644
    assert r.reload.command == "true"
    assert r.unit == "bird_ipam"


@pytest.mark.parametrize(
    ("mode", "expected"), [('"0644"', 0o644), ('"644"', 0o644), ('"0600"', 0o600), ("644", 0o644)]
)
def test_mode_is_octal_however_written(tmp_path: Path, mode: str, expected: int) -> None:
    write(tmp_path, "a", f'[template]\nsrc = "t.j2"\ndest = "/x"\nmode = {mode}\n')
    assert load(tmp_path)[0].mode == expected


def test_global_prefix_joins_resource_prefix(tmp_path: Path) -> None:
    write(tmp_path, "a", '[template]\nsrc = "t.j2"\ndest = "/x"\nprefix = "app"\nkeys = ["/db"]\n')
    (r,) = load(tmp_path, prefix="/prod")
    assert r.prefix == "/prod/app"
    assert r.keys == ("/prod/app/db",)


def test_resource_without_keys_reads_its_prefix(tmp_path: Path) -> None:
    write(tmp_path, "a", '[template]\nsrc = "t.j2"\ndest = "/x"\nprefix = "/app"\n')
    assert load(tmp_path)[0].keys == ("/app",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[template]\nsrc = "t.j2"\ndest = "/x"\nchek_cmd = "true"\n',
            r"chek_cmd: unknown field \(did you mean 'check_cmd'\?\)",
        ),
        ('[template]\ndest = "/x"\n', r"\[template\] src: is required"),
        ('[template]\nsrc = "t.j2"\ndest = "/x"\nmode = "0999"\n', r"mode: '0999' is not an octal file mode"),
        ('[template]\nsrc = "t.j2"\ndest = "/x"\nkeys = "/a"\n', r"keys: must be a list of strings"),
        ('[template]\nsrc = "t.j2"\ndest = "x"\n', r"dest: 'x' must be an absolute path"),
        ('[template]\nsrc = "t.j2"\ndest = "/x"\nowner = "no-such-user-here"\n', r"owner: no such owner"),
        (
            '[template]\nsrc = "t.j2"\ndest = "/x"\nreload_signal = "HUP"\n',
            r"needs exactly one of reload_process",
        ),
        (
            '[template]\nsrc = "t.j2"\ndest = "/x"\nreload_signal = "NOPE"\nreload_process = "b"\n',
            r"not a signal such as",
        ),
        (
            '[template]\nsrc = "t.j2"\ndest = "/x"\nreload_cmd = "a"\nreload_signal = "HUP"\n',
            r"give one way to reload",
        ),
        (
            '[template]\nsrc = "t.j2"\ndest = "/x"\ncheck_timeout = "soon"\n',
            r"check_timeout: 'soon' is not a duration",
        ),
        # Suspected from reading; the resource_toml harness checks it (regress-uid-2-32): os.fchown
        # refuses ids past 32 bits with an OverflowError, an "unexpected error" of the unit on every try.
        ('[template]\nsrc = "t.j2"\ndest = "/x"\nuid = 4294967296\n', r"uid: 4294967296 is not a numeric id"),
        ('[template]\nsrc = "t.j2"\ndest = "/x"\ngid = 4294967295\n', r"gid: 4294967295 is not a numeric id"),
        # Suspected from reading; the resource_toml harness checks it (its corpus keeps regress-inf):
        # nan and inf were timeouts.
        (
            '[template]\nsrc = "t.j2"\ndest = "/x"\ncheck_timeout = "inf"\n',
            r"check_timeout: 'inf' is not a finite",
        ),
        (
            '[template]\nsrc = "t.j2"\ndest = "/x"\nreload_cmd = "r"\nreload_timeout = nan\n',
            r"reload_timeout: nan is",
        ),
        ('[template]\nsrc = "t.j2"\ndest = "/x"\n[other]\n', r"unknown table or key 'other'"),
        ('[template]\nsrc = "t.j2"\ndest = "/x\n', r"TOML syntax error: .*line 3"),
        ('[template]\nsrc = "missing.j2"\ndest = "/x"\n', r"src: template missing.j2 not found"),
    ],
)
def test_configuration_errors_name_the_file_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, "res", body)
    with pytest.raises(ConfigError, match=message) as err:
        load(tmp_path)
    assert str(path) in str(err.value)


def test_two_resources_cannot_share_a_destination(tmp_path: Path) -> None:
    write(tmp_path, "a", '[template]\nsrc = "t.j2"\ndest = "/x"\n')
    write(tmp_path, "b", '[template]\nsrc = "t.j2"\ndest = "/x"\n')
    with pytest.raises(ConfigError, match="also the dest of"):
        load(tmp_path)


def test_units_group_resources_and_dedupe_reloads(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write(tmp_path, name, f'[template]\nsrc = "t.j2"\ndest = "/{name}"\nunit = "u"\nreload_cmd = "hup"\n')
    write(tmp_path, "c", '[template]\nsrc = "t.j2"\ndest = "/c"\n')
    units = group_units(load(tmp_path))
    assert [(u.name, len(u.resources)) for u in units] == [("u", 2), ("c", 1)]
    assert [r.command for r in units[0].reloads()] == ["hup"]


def test_resources_in_subdirectories_are_found(tmp_path: Path) -> None:
    write(tmp_path, "sub/a", '[template]\nsrc = "t.j2"\ndest = "/x"\n')
    assert load(tmp_path)[0].name == "sub/a"


def test_a_resource_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    # Found by the resource_toml fuzz harness's seeded mutator: tomllib decodes before it parses, and its
    # UnicodeDecodeError went through as a traceback (tests/fuzz/corpus/resource_toml/regress-not-utf8).
    path = write(tmp_path, "res", "")
    path.write_bytes(b'[template]\nsrc = "t.j2"\ndest = "/caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"res.toml: not UTF-8 text \(TOML is\): byte 36 is 0xe9"):
        load(tmp_path)


def test_an_integer_longer_than_python_reads_is_a_configuration_error(tmp_path: Path) -> None:
    # Suspected from reading, confirmed with the resource_toml harness: tomllib's int() refuses more
    # than 4300 digits with a plain ValueError,
    # which is no TOMLDecodeError (tests/fuzz/corpus/resource_toml/regress-bigint).
    write(tmp_path, "res", '[template]\nsrc = "t.j2"\ndest = "/x"\nuid = ' + "1" * 5000 + "\n")
    with pytest.raises(
        ConfigError, match=r"res.toml: cannot read its TOML: Exceeds the limit \(4300 digits\)"
    ):
        load(tmp_path)
