"""Template resources (``conf.d/**/*.toml``) and the units they form.

The TOML format is confd's (a ``[template]`` table) with confpy's additions. Every
error names the file and the field; an unknown field is an error (confd ignores
misspellings silently).
"""

from __future__ import annotations

import difflib
import grp
import pwd
import re
import signal
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from confpy.duration import parse_duration
from confpy.errors import ConfigError
from confpy.keys import covered_by_any, join, substitute_node

DEFAULT_CHECK_TIMEOUT = 60.0
DEFAULT_RELOAD_TIMEOUT = 60.0

_FIELDS = frozenset(
    {
        # confd's
        "src", "dest", "keys", "prefix", "mode", "uid", "gid", "check_cmd", "reload_cmd",
        # confpy's
        "owner", "group", "unit", "check_timeout", "reload_timeout", "reload_signal",
        "reload_process", "reload_pidfile", "reload_birdc", "reload_ok", "reload_required",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReloadSpec:
    """How to tell a daemon to re-read its files.

    - ``command``: a shell command (confd's ``reload_cmd``), alone;
      with ``ok_pattern``, success also needs a line of its output to match
      (``birdc configure`` exits 0 even when BIRD rejects the file).
    - ``birdc``: BIRD's control socket (the first of these paths with a BIRD behind
      it); sends ``configure`` and judges BIRD's reply code: a confirmed reload.
    - ``signal`` with ``process`` (exact process name) or ``pidfile``: no shell, no
      answer (an unconfirmed reload). With ``birdc`` too, used only when no BIRD
      listens on any of the sockets.

    A daemon that is not running (no process, no socket, a refused connection) has
    nothing to reload: it reads the new files when it starts. That is success unless
    ``required``.
    """

    command: str | None = None
    signal: str | None = None
    process: str | None = None
    pidfile: str | None = None
    birdc: tuple[str, ...] = ()
    ok_pattern: str | None = None
    timeout: float = DEFAULT_RELOAD_TIMEOUT
    required: bool = False

    def describe(self) -> str:
        if self.command:
            return self.command
        ways = [f"birdc configure via {' or '.join(self.birdc)}"] if self.birdc else []
        if self.signal:
            ways.append(self.describe_signal())
        return ", else ".join(ways)

    def describe_signal(self) -> str:
        target = f"process {self.process!r}" if self.process else f"pid in {self.pidfile}"
        try:
            name = parse_signal(self.signal or "").name
        except ValueError:
            name = f"signal {self.signal!r}"
        return f"{name} to {target}"


def parse_signal(value: str) -> signal.Signals:
    """``"HUP"``, ``"SIGHUP"``, ``"hup"`` or ``"1"`` → ``Signals.SIGHUP``; ValueError if none."""
    text = value.strip().upper()
    try:
        if text.isdigit():
            return signal.Signals(int(text))
        return signal.Signals[text if text.startswith("SIG") else "SIG" + text]
    except (KeyError, ValueError):
        raise ValueError(f"{value!r} is not a signal such as 'HUP' or '1'") from None


@dataclass(frozen=True)
class TemplateResource:
    """One file confpy keeps in step: where its text comes from and where it goes."""

    name: str  # the TOML file's path under conf.d, without ".toml"
    path: Path  # the TOML file
    src: str  # template, relative to the templates directory
    dest: Path
    prefix: str  # cut off store keys before the template sees them
    keys: tuple[str, ...]  # full store prefixes this resource reads
    mode: int | None = None  # None: keep the destination's mode (0644 for a new file)
    uid: int | None = None
    gid: int | None = None
    check_cmd: str | None = None
    check_timeout: float = DEFAULT_CHECK_TIMEOUT
    reload: ReloadSpec | None = None
    unit: str = ""  # resources with the same unit are applied together

    def reads(self, key: str) -> bool:
        """True when ``key`` is one of this resource's keys or lies below one."""
        return covered_by_any(self.keys, key)


@dataclass
class Unit:
    """Resources checked and replaced together, then reloaded once."""

    name: str
    resources: list[TemplateResource] = field(default_factory=list)

    def reloads(self) -> list[ReloadSpec]:
        """The distinct reloads of the unit, in resource order: each runs once per change."""
        seen: list[ReloadSpec] = []
        for r in self.resources:
            if r.reload is not None and r.reload not in seen:
                seen.append(r.reload)
        return seen


def group_units(resources: Iterable[TemplateResource]) -> list[Unit]:
    units: dict[str, Unit] = {}
    for r in resources:
        units.setdefault(r.unit, Unit(r.unit)).resources.append(r)
    return list(units.values())


def load_resources(
    confdir: Path,
    node_name: str,
    global_prefix: str = "",
    template_exists: Callable[[str], object] | None = None,
    dest_root: Path | None = None,
) -> list[TemplateResource]:
    """Every ``conf.d/**/*.toml`` under ``confdir``, sorted by path.

    ``template_exists(src)`` is called for each resource and raises
    :class:`ConfigError` when the template is missing or does not compile.
    """
    conf_d = confdir / "conf.d"
    if not conf_d.is_dir():
        raise ConfigError(f"{conf_d}: no such directory (confdir is {confdir})")
    resources = []
    for path in sorted(conf_d.rglob("*.toml")):
        resource = load_resource(path, conf_d, node_name, global_prefix)
        if dest_root is not None:
            resource = replace(resource, dest=dest_root / resource.dest.relative_to("/"))
        if template_exists is not None:
            try:
                template_exists(resource.src)
            except ConfigError as exc:
                raise ConfigError(f"{path}: src: {exc}") from None
        resources.append(resource)
    if not resources:
        raise ConfigError(f"{conf_d}: no template resources (*.toml)")
    dests: dict[Path, Path] = {}
    for r in resources:
        if r.dest in dests:
            raise ConfigError(f"{r.path}: dest {r.dest} is also the dest of {dests[r.dest]}")
        dests[r.dest] = r.path
    return resources


def load_resource(path: Path, conf_d: Path, node_name: str, global_prefix: str = "") -> TemplateResource:
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except UnicodeDecodeError as exc:  # tomllib decodes the bytes before it parses them
        raise ConfigError(
            f"{path}: not UTF-8 text (TOML is): byte {exc.start} is {exc.object[exc.start]:#04x}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except ValueError as exc:  # an integer longer than int() takes (4300 digits), ...
        raise ConfigError(f"{path}: cannot read its TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    extra = set(doc) - {"template"}
    if extra:
        raise ConfigError(f"{path}: unknown table or key {sorted(extra)[0]!r} (expected only [template])")
    table = doc.get("template")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: missing [template] table")
    return _ResourceParser(path, table).build(conf_d, node_name, global_prefix)


class _ResourceParser:
    """Reads one [template] table; every error names the file and the field."""

    def __init__(self, path: Path, table: dict[str, Any]) -> None:
        self.path = path
        self.t = table
        for name in table:
            if name not in _FIELDS:
                close = difflib.get_close_matches(name, sorted(_FIELDS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(name, f"unknown field{hint}")

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: [template] {name}: {message}")

    def string(self, name: str, required: bool = False) -> str | None:
        value = self.t.get(name)
        if value is None:
            if required:
                raise self.error(name, "is required")
            return None
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, not {value!r}")
        if required and not value.strip():
            raise self.error(name, "must not be empty")
        return value

    def seconds(self, name: str, default: float) -> float:
        if name not in self.t:
            return default
        try:
            value = parse_duration(self.t[name])
        except ValueError as exc:
            raise self.error(name, str(exc)) from None
        if value <= 0:
            raise self.error(name, "must be more than 0")
        return value

    def mode(self) -> int | None:
        value = self.t.get("mode")
        if value is None:
            return None
        # "0644", "644" and 644 all mean rw-r--r--; confd reads "644" as decimal (a bug).
        text = str(value).removeprefix("0o")
        if isinstance(value, bool) or not re.fullmatch(r"[0-7]{1,4}", text):
            raise self.error("mode", f'{value!r} is not an octal file mode such as "0644"')
        return int(text, 8)

    def ident(self, id_name: str, name_field: str, lookup: Callable[[str], int]) -> int | None:
        number, name = self.t.get(id_name), self.t.get(name_field)
        if number is not None and name is not None:
            raise self.error(name_field, f"give {id_name} or {name_field}, not both")
        if number is not None:
            # Linux ids are 32 bits and 4294967295 means "no change": os.chown refuses more.
            if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2**32 - 1:
                raise self.error(id_name, f"{number!r} is not a numeric id")
            return number
        if name is not None:
            try:
                return lookup(str(name))
            except KeyError:
                raise self.error(name_field, f"no such {name_field} {name!r} on this host") from None
        return None

    def strings(self, name: str) -> tuple[str, ...]:
        """A string or a list of strings."""
        value = self.t.get(name)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise self.error(name, f"must be a path or a list of paths, not {value!r}")
        return tuple(items)

    def boolean(self, name: str) -> bool:
        value = self.t.get(name, False)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, not {value!r}")
        return value

    def reload(self) -> ReloadSpec | None:
        command = self.string("reload_cmd")
        sig = self.string("reload_signal")
        process = self.string("reload_process")
        pidfile = self.string("reload_pidfile")
        birdc = self.strings("reload_birdc")
        ok = self.string("reload_ok")
        timeout = self.seconds("reload_timeout", DEFAULT_RELOAD_TIMEOUT)
        required = self.boolean("reload_required")
        ways = [n for n, v in (("reload_cmd", command), ("reload_signal", sig), ("reload_birdc", birdc)) if v]
        if command and len(ways) > 1:
            raise self.error(ways[1], f"give one way to reload, not {' and '.join(ways)}")
        if (process or pidfile) and not sig:
            raise self.error("reload_signal", "is required with reload_process/reload_pidfile")
        if sig:
            try:
                parse_signal(sig)
            except ValueError as exc:
                raise self.error("reload_signal", str(exc)) from None
            if bool(process) == bool(pidfile):
                raise self.error("reload_signal", "needs exactly one of reload_process or reload_pidfile")
        if ok is not None:
            if not command:
                raise self.error("reload_ok", "only applies to reload_cmd")
            try:
                re.compile(ok)
            except re.error as exc:
                raise self.error("reload_ok", f"bad regular expression: {exc}") from None
        if not ways:
            if required:
                raise self.error("reload_required", "there is no reload to require")
            return None
        return ReloadSpec(command, sig, process, pidfile, birdc, ok, timeout, required)

    def build(self, conf_d: Path, node_name: str, global_prefix: str) -> TemplateResource:
        src = self.string("src", required=True)
        dest = self.string("dest", required=True)
        assert src is not None and dest is not None
        if not dest.startswith("/"):
            raise self.error("dest", f"{dest!r} must be an absolute path")
        raw_keys = self.t.get("keys", [])
        if not isinstance(raw_keys, list) or not all(isinstance(k, str) for k in raw_keys):
            raise self.error("keys", "must be a list of strings")
        prefix = join(global_prefix, substitute_node(self.string("prefix") or "", node_name))
        keys = tuple(join(prefix, substitute_node(k, node_name)) for k in raw_keys) or (prefix,)
        name = self.path.relative_to(conf_d).with_suffix("").as_posix()
        unit = self.string("unit") or name
        check_cmd = self.string("check_cmd")
        return TemplateResource(
            name=name,
            path=self.path,
            src=src,
            dest=Path(dest),
            prefix=prefix,
            keys=keys,
            mode=self.mode(),
            uid=self.ident("uid", "owner", lambda n: pwd.getpwnam(n).pw_uid),
            gid=self.ident("gid", "group", lambda n: grp.getgrnam(n).gr_gid),
            check_cmd=check_cmd or None,
            check_timeout=self.seconds("check_timeout", DEFAULT_CHECK_TIMEOUT),
            reload=self.reload(),
            unit=unit,
        )
