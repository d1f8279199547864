"""One typed Settings; precedence: flags > environment (CONFPY_*) > config file > defaults.

confd reads its config file *over* its flags; confpy does it the other way round, as
operators expect.
"""

from __future__ import annotations

import difflib
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from confpy.duration import parse_duration
from confpy.errors import ConfigError

DEFAULT_CONFIG_FILE = "/etc/confpy/confpy.toml"
DEFAULT_CONFDIR = "/etc/confd"
DEFAULT_POLL_INTERVAL = 600.0  # confd's default when neither -watch nor -interval is given
BACKENDS = {
    "file": "file",
    "etcd": "etcd",
    "etcdv3": "etcd",
    "etcdv2": "etcdv2",
    "calico": "calico",
    "env": "env",
}
ETCD_KINDS = ("etcd", "etcdv2", "calico")  # the stores that talk to etcd (-node)


@dataclass
class Settings:
    confdir: Path = Path(DEFAULT_CONFDIR)
    config_file: Path | None = None
    backend: str = ""  # "" = etcd when nodes are given, else the file store
    nodes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    scheme: str = "http"
    prefix: str = ""
    dest_root: Path | None = None
    node_name: str = ""
    onetime: bool = False
    watch: bool = False
    interval: float | None = None
    noop: bool = False
    sync_only: bool = False
    keep_stage_file: bool = False
    stdout: bool = False
    detailed_exitcode: bool = False
    resources: list[str] = field(default_factory=list)
    log_level: str = "info"
    log_format: str = "text"
    metrics_addr: str = ""
    watch_config: bool = False
    sensitive_keys: list[str] = field(default_factory=list)
    show_secrets: bool = False
    client_cert: str | None = None
    client_key: str | None = None
    client_ca_keys: str | None = None
    username: str | None = None
    password: str | None = None
    wait_min: float = 0.1
    wait_max: float = 1.0
    connect_timeout: float = 5.0
    #: What the settings' sources said that confpy ignores (logged at start, not settable).
    warnings: list[str] = field(default_factory=list, compare=False)

    @property
    def store_kind(self) -> str:
        if self.backend:
            return BACKENDS[self.backend]
        return "etcd" if self.nodes else "file"

    def endpoints(self) -> list[str]:
        return [n if "://" in n else f"{self.scheme}://{n}" for n in self.nodes]


_FIELD_TYPES = {f.name: f.type for f in fields(Settings) if f.name != "warnings"}
#: Settings of the store connection: a running daemon keeps them until restarted.
STORE_FIELDS = ("backend", "nodes", "files", "scheme", "client_cert", "client_key", "client_ca_keys",
                "username", "password", "connect_timeout")  # fmt: skip
# confd.toml spellings -> Settings fields
_ALIASES = {
    "node": "nodes",
    "file": "files",
    "client_cakeys": "client_ca_keys",
    "resource": "resources",
    "sensitive_key": "sensitive_keys",
}


#: confd.toml settings confpy does not implement, and what to do instead.
CONFD_ONLY = {
    "auth_token": "token authentication is for Vault and Consul, which confpy has no client for",
    "auth_type": "Vault authentication: confpy has no Vault client",
    "app_id": "Vault authentication: confpy has no Vault client",
    "user_id": "Vault authentication: confpy has no Vault client",
    "role_id": "Vault authentication: confpy has no Vault client",
    "secret_id": "Vault authentication: confpy has no Vault client",
    "path": "Vault's mount path: confpy has no Vault client",
    "basic_auth": "username and password turn on etcd authentication by themselves",
    "client_insecure": "confpy always verifies etcd's certificate (give client_cakeys)",
    "srv_domain": "DNS SRV discovery is not implemented: list the etcd members in nodes",
    "srv_record": "DNS SRV discovery is not implemented: list the etcd members in nodes",
    "table": "DynamoDB: confpy has no DynamoDB client",
    "separator": "Redis: confpy has no Redis client",
    "filter": "give a directory or several files in file",
    "calicoconfig": "Calico's datastore file: give nodes, and backend calico for Calico 3 resources",
}


def parse_bool(value: object) -> bool:
    """A boolean setting, as a flag (``-watch=false``), a variable or the config file gives it."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "t", "true", "yes", "on"):
        return True
    if text in ("0", "f", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean")


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = str(_FIELD_TYPES[name])
    try:
        if kind == "bool":
            return parse_bool(value)
        if kind.startswith("list"):
            items = value if isinstance(value, list) else str(value).split(",")
            return [str(i).strip() for i in items if str(i).strip()]
        if kind == "Path":
            return Path(str(value))
        if kind == "Path | None":
            return Path(str(value)) if value else None
        if name in ("interval", "wait_min", "wait_max", "connect_timeout"):
            return parse_duration(value)
        if kind == "str | None" and value in (None, ""):
            return None  # unset: Calico's scripts pass -client-key= when there is none
        return str(value)
    except ValueError as exc:
        raise ConfigError(f"{source}: {name.replace('_', '-')}: {exc}") from None


def normalise_name(name: str) -> str:
    key = name.strip().replace("-", "_").lower()
    return _ALIASES.get(key, key)


def read_config_file(path: Path, explicit: bool) -> dict[str, Any]:
    """Settings from a confd.toml-style file; a missing default file is skipped."""
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: config file not found") from None
        return {}
    except OSError as exc:  # a directory, no permission
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:  # tomllib decodes the bytes before it parses them
        raise ConfigError(
            f"{path}: not UTF-8 text (TOML is): byte {exc.start} is {exc.object[exc.start]:#04x}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except ValueError as exc:  # an integer longer than int() takes (4300 digits), ...
        raise ConfigError(f"{path}: cannot read its TOML: {exc}") from None
    out: dict[str, Any] = {}
    warnings: list[str] = []
    for raw, value in doc.items():
        name = normalise_name(raw)
        if name in CONFD_ONLY:
            warnings.append(
                f"{path}: {raw}: a confd setting confpy does not implement ({CONFD_ONLY[name]}): ignored"
            )
            continue
        if name not in _FIELD_TYPES or name == "config_file":
            known = sorted(set(_FIELD_TYPES) | set(CONFD_ONLY) | set(_ALIASES) - {"config_file"})
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown setting {raw!r}{hint}")
        out[name] = _coerce(name, value, str(path))
    if warnings:
        out["warnings"] = warnings
    return out


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELD_TYPES:
        var = "CONFPY_" + name.upper()
        if var in environ:
            out[name] = _coerce(name, environ[var], var)
    return out


def build_settings(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Merge the layers. ``flags`` holds only what was given on the command line."""
    environ = os.environ if environ is None else environ
    env_layer = from_environment(environ)
    config_path = flags.get("config_file") or env_layer.get("config_file")
    explicit = config_path is not None
    file_layer = read_config_file(Path(config_path or DEFAULT_CONFIG_FILE), explicit)
    merged: dict[str, Any] = {**file_layer, **env_layer}
    warnings = merged.pop("warnings", [])
    for name, value in flags.items():
        merged[name] = _coerce(name, value, "-" + name.replace("_", "-"))
    settings = Settings(**merged, warnings=list(warnings))
    if not settings.node_name:
        settings.node_name = environ.get("NODENAME") or socket.gethostname()
    validate(settings)
    return settings


def validate(s: Settings) -> None:
    if s.backend and s.backend not in BACKENDS:
        raise ConfigError(f"-backend: unknown backend {s.backend!r} (choose from {', '.join(BACKENDS)})")
    if s.store_kind == "file" and not s.files:
        raise ConfigError("no store given: use -node URL for etcd or -file PATH for data files")
    if s.store_kind in ETCD_KINDS and not s.nodes:
        s.nodes = ["http://127.0.0.1:2379"]
    if s.interval is not None and s.interval <= 0:
        raise ConfigError("-interval: must be more than 0")
    if s.wait_max < s.wait_min:
        raise ConfigError(f"-wait-max ({s.wait_max:g}s) is shorter than -wait-min ({s.wait_min:g}s)")
    if s.log_level.lower() not in ("debug", "info", "warning", "warn", "error", "panic", "fatal"):
        raise ConfigError(f"-log-level: unknown level {s.log_level!r}")
    if s.log_format not in ("text", "json"):
        raise ConfigError(f"-log-format: {s.log_format!r} is not text or json")
    if s.metrics_addr and not s.metrics_addr.rpartition(":")[2].isdigit():
        raise ConfigError(f"-metrics-addr: {s.metrics_addr!r} is not HOST:PORT")
    if "/" in s.node_name or not s.node_name:
        raise ConfigError(f"node name {s.node_name!r} is not usable in a key")
    if s.detailed_exitcode and not (s.noop or s.stdout):
        raise ConfigError(
            "--detailed-exitcode: only with -noop or --stdout (exit 4 when a file would change)"
        )
    if s.onetime and s.watch:
        s.warnings.append("-onetime and -watch both given: -onetime wins, as in confd (apply once and exit)")
