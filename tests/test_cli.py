"""The command line: confd's flag spellings, precedence, exit codes."""

import subprocess
import sys
from pathlib import Path

import pytest

from confpy.cli import main, parse_flags
from confpy.errors import ConfigError
from confpy.settings import build_settings
from tests.conftest import MakeConfdir


def test_go_style_flags_are_accepted_in_every_spelling() -> None:
    flags = parse_flags(
        ["-confdir=/etc/calico/confd", "-interval=5", "-watch", "--log-level=debug", "-node=http://etcd1:4001",
         "-node", "etcd2:4001", "--prefix", "/p", "-onetime=false", "-noop=true"]
    )  # fmt: skip
    assert flags == {
        "confdir": "/etc/calico/confd",
        "interval": "5",
        "watch": True,
        "log_level": "debug",
        "nodes": ["http://etcd1:4001", "etcd2:4001"],
        "prefix": "/p",
        "onetime": False,
        "noop": True,
    }


def test_flags_override_environment_which_overrides_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "confd.toml"
    conf.write_text(
        'backend = "etcdv3"\nnodes = ["127.0.0.1:2379"]\nprefix = "/file"\ninterval = 30\nlog-level = "warn"\nclient_cakeys = "/ca.pem"\n'
    )
    s = build_settings(
        {"config_file": str(conf), "prefix": "/flag"},
        {"CONFPY_INTERVAL": "7", "NODENAME": "n1"},
    )
    assert (s.prefix, s.interval, s.log_level, s.node_name) == ("/flag", 7.0, "warn", "n1")
    assert s.store_kind == "etcd"
    assert s.endpoints() == ["http://127.0.0.1:2379"]
    assert s.client_ca_keys == "/ca.pem"


def test_durations_in_flags() -> None:
    s = build_settings({"files": ["x"], "wait_min": "0", "wait_max": "250ms"}, {"NODENAME": "n"})
    assert (s.wait_min, s.wait_max) == (0.0, 0.25)


def test_help_explains_modes_and_exit_codes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "confpy", "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    for words in ("-onetime", "-watch", "-noop", "--stdout", "exit status", "store unreachable"):
        assert words in out.stdout


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "confpy", "-version"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and out.stdout.startswith("confpy ")


@pytest.fixture
def confdir(make_confdir: MakeConfdir) -> Path:
    return make_confdir(
        {"a": 'src = "a.j2"\ndest = "{out}/a.conf"\nprefix = "/app"\n'}, {"a.j2": "{{ getv('/x') }}\n"}
    )


def test_unknown_flag_is_a_usage_error(confdir: Path) -> None:
    with pytest.raises(SystemExit) as err:
        main(["-onetime", "-confdri", str(confdir)])
    assert err.value.code == 2


def test_bad_resource_toml_is_exit_2(confdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (confdir / "conf.d" / "a.toml").write_text("[template]\nsrc = \n")
    data = tmp_path / "d.yaml"
    data.write_text("app: {x: 1}\n")
    assert main(["-onetime", f"-confdir={confdir}", f"-file={data}"]) == 2
    assert "a.toml: TOML syntax error: Invalid value (at line 2, column 7)" in caplog.text


def test_missing_template_is_exit_2(
    confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (confdir / "templates" / "a.j2").unlink()
    data = tmp_path / "d.yaml"
    data.write_text("app: {x: 1}\n")
    assert main(["-onetime", f"-confdir={confdir}", f"-file={data}"]) == 2


def test_unreadable_data_file_is_exit_3_and_names_the_line(
    confdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "d.yaml"
    data.write_text("app:\n  x: [1\n")
    assert main(["-onetime", f"-confdir={confdir}", f"-file={data}"]) == 3
    assert "d.yaml:3:1: invalid YAML" in caplog.text


def test_missing_key_is_exit_1_and_names_key_and_line(
    confdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "d.yaml"
    data.write_text("app: {y: 1}\n")
    assert main(["-onetime", f"-confdir={confdir}", f"-file={data}"]) == 1
    assert "key /app/x (a.j2:1)" in caplog.text


def test_no_store_given_is_a_usage_error(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-onetime", f"-confdir={confdir}"]) == 2
    assert "use -node URL for etcd or -file PATH" in capsys.readouterr().err


def test_env_backend(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_X", "from-env")
    assert main(["-onetime", f"-confdir={confdir}", "-backend", "env"]) == 0
    assert (confdir.parent / "out" / "a.conf").read_text() == "from-env\n"


def test_empty_tls_flags_mean_unset_as_calicos_scripts_pass_them() -> None:
    s = build_settings(
        {"nodes": ["127.0.0.1:2379"], "client_cert": "", "client_key": "", "client_ca_keys": ""},
        {"NODENAME": "n"},
    )
    assert (s.client_cert, s.client_key, s.client_ca_keys) == (None, None, None)


def test_a_switch_takes_the_words_its_environment_variable_takes() -> None:
    assert parse_flags(["-watch=yes", "-noop=off", "-onetime"]) == {
        "watch": True,
        "noop": False,
        "onetime": True,
    }
    assert build_settings({"files": ["x"]}, {"CONFPY_WATCH": "yes", "NODENAME": "n"}).watch is True
    with pytest.raises(SystemExit) as exit_:
        parse_flags(["-watch=maybe"])
    assert exit_.value.code == 2


CONFD_TOML = """\
backend = "etcdv3"
confdir = "/etc/confd"
log-level = "debug"
interval = 600
noop = false
prefix = "/production"
scheme = "https"
srv_domain = "etcd.example.com"
srv_record = "_etcd-client._tcp.example.com"
nodes = ["10.0.0.1:2379"]
client_cakeys = "/ca.pem"
client_cert = "/cert.pem"
client_key = "/key.pem"
client_insecure = false
basic_auth = true
auth_type = "app-id"
auth_token = "t"
username = "u"
password = "p"
table = "confd"
separator = "/"
app_id = "a"
user_id = "u"
role_id = "r"
secret_id = "s"
path = "/v1"
filter = "*.yml"
watch = true
sync-only = false
keep-stage-file = false
"""


def test_confd_toml_as_confd_documents_it_is_accepted(tmp_path: Path) -> None:
    conf = tmp_path / "confd.toml"
    conf.write_text(CONFD_TOML)
    s = build_settings({"config_file": str(conf)}, {"NODENAME": "n1"})
    assert (s.backend, s.prefix, s.scheme, s.client_key, s.username, s.watch) == (
        "etcdv3",
        "/production",
        "https",
        "/key.pem",
        "u",
        True,
    )
    ignored = [w.split(": ")[1] for w in s.warnings]
    assert ignored == ["srv_domain", "srv_record", "client_insecure", "basic_auth", "auth_type", "auth_token",
                       "table", "separator", "app_id", "user_id", "role_id", "secret_id", "path", "filter"]  # fmt: skip
    assert "list the etcd members in nodes): ignored" in s.warnings[0]


def test_a_misspelt_setting_is_still_refused_with_a_suggestion(tmp_path: Path) -> None:
    conf = tmp_path / "confpy.toml"
    conf.write_text('srv_domian = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'srv_domian' \\(did you mean 'srv_domain'\\?\\)"):
        build_settings({"config_file": str(conf), "files": ["x"]}, {"NODENAME": "n"})
    conf.write_text('log_levle = "debug"\n')
    with pytest.raises(ConfigError, match="did you mean 'log_level'"):
        build_settings({"config_file": str(conf), "files": ["x"]}, {"NODENAME": "n"})


def test_onetime_with_watch_says_onetime_wins(
    confdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "data.yaml").write_text("app:\n  x: '1'\n")
    (tmp_path / "empty.toml").touch()
    code = main(["-onetime", "-watch", "-confdir", str(confdir), "-file", str(tmp_path / "data.yaml"),
                 "-config-file", str(tmp_path / "empty.toml")])  # fmt: skip
    assert code == 0
    assert "-onetime and -watch both given: -onetime wins, as in confd (apply once and exit)" in caplog.text


def test_a_config_file_that_is_not_utf8_is_exit_2(
    confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found by the settings_toml fuzz harness's seeded mutator (tests/fuzz/corpus/settings_toml/regress-not-utf8).
    config = tmp_path / "confpy.toml"
    config.write_bytes(b'prefix = "/caf\xe9"\n')
    data = tmp_path / "d.yaml"
    data.write_text("app: {x: 1}\n")
    assert main(["-onetime", f"-confdir={confdir}", f"-file={data}", f"-config-file={config}"]) == 2
    assert "confpy.toml: not UTF-8 text (TOML is): byte 14 is 0xe9" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The settings_toml fuzz harness (tests/fuzz/corpus/settings_toml/regress-*): the OverflowError
        # found by its seeded mutator; the 4300-digit ValueError and nan/inf suspected from reading.
        ("connect_timeout = " + "1" * 5000, r"cannot read its TOML: Exceeds the limit \(4300 digits\)"),
        ("connect_timeout = " + "1" * 400, r"connect-timeout: 1111.* is not a finite duration"),
        ("wait_min = nan", r"wait-min: nan is not a finite duration"),
        ('wait_max = "inf"', r"wait-max: 'inf' is not a finite duration"),
        ('interval = "1e999"', r"interval: '1e999' is not a finite duration"),
    ],
)
def test_config_file_values_that_are_not_durations_are_errors(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "confpy.toml"
    config.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        build_settings({"config_file": str(config)}, {"NODENAME": "n1"})


def test_a_config_file_that_cannot_be_read_is_a_configuration_error(tmp_path: Path) -> None:
    # Noticed while writing the settings_toml harness (which only writes files): a directory
    # given as -config-file was an IsADirectoryError traceback.
    with pytest.raises(ConfigError, match=f"{tmp_path}: cannot read: Is a directory"):
        build_settings({"config_file": str(tmp_path)}, {"NODENAME": "n1"})
