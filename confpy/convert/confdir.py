"""A confd confdir to a confpy one: conf.d TOMLs kept (``src`` renamed), Go templates
converted to Jinja, confd.toml kept as confpy.toml.

Nothing is written here: :func:`convert_confdir` returns the files and every problem
of every file; the command decides what to do with them.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confpy.convert.emit import convert_template
from confpy.convert.errors import Position, Problem

#: The fields of confd's [template] table (confd ignores any other; confpy refuses it).
CONFD_FIELDS = ("src", "dest", "keys", "prefix", "mode", "uid", "gid", "check_cmd", "reload_cmd")
_GO_SUFFIXES = (".tmpl", ".template", ".tpl", ".gotmpl", ".gtpl")
_SRC_LINE = re.compile(r'^(\s*src\s*=\s*)("(?:[^"\\]|\\.)*"|\'[^\']*\')(.*)$', re.MULTILINE)
_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
_CMD_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_SRC_PLACEHOLDER = re.compile(r"\{\{\s*\.?src\s*\}\}")


@dataclass(frozen=True)
class OutputFile:
    path: str  # relative to the new confdir
    text: str
    note: str  # one line for the summary


@dataclass
class Conversion:
    files: list[OutputFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def jinja_name(src: str) -> str:
    """``bird.cfg.template`` -> ``bird.cfg.j2``; ``basic.conf.tmpl`` -> ``basic.conf.j2``."""
    for suffix in _GO_SUFFIXES:
        if src.endswith(suffix):
            return src[: -len(suffix)] + ".j2"
    return src + ".j2"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[\n" + "".join(f"    {_toml_value(v)},\n" for v in value) + "]"
    return _toml_string(str(value))


def write_toml_table(table: dict[str, Any]) -> str:
    """A [template] table (the fields confd has), one per line."""
    lines = ["[template]"] + [f"{k} = {_toml_value(table[k])}" for k in CONFD_FIELDS if k in table]
    return "\n".join(lines) + "\n"


def _table_of(text: str) -> object:
    """The [template] table of TOML ``text``; None if it does not parse."""
    try:
        return tomllib.loads(text).get("template")
    except ValueError:  # TOMLDecodeError
        return None


class _Converter:
    def __init__(self, src: Path) -> None:
        self.src = src
        self.out = Conversion()
        self.names: dict[str, str] = {}  # template src -> converted name

    def problem(self, file: str, message: str, line: int = 1, col: int = 1) -> None:
        self.out.problems.append(Problem(Position(file, line, col), message))

    def warn(self, file: str, message: str) -> None:
        self.out.warnings.append(Problem(Position(file, 1, 1), message))

    def run(self) -> Conversion:
        conf_d, templates = self.src / "conf.d", self.src / "templates"
        if not conf_d.is_dir():
            self.problem(str(conf_d), f"no such directory (is {self.src} a confd confdir?)")
            return self.out
        tomls = sorted(conf_d.rglob("*.toml"))
        if not tomls:
            self.problem(str(conf_d), "no template resources (*.toml)")
        for path in tomls:
            self.resource(path, conf_d, templates)
        self.unreferenced(templates)
        config = self.src / "confd.toml"
        if config.is_file():
            self.out.files.append(
                OutputFile("confpy.toml", config.read_text(), "confd.toml, kept as confpy.toml")
            )
        return self.out

    def read(self, path: Path) -> str | None:
        """The text of ``path``, or None with a problem saying why it cannot be read."""
        try:
            return path.read_text()
        except UnicodeDecodeError as exc:
            self.problem(str(path), f"not UTF-8 text: byte {exc.start} is {exc.object[exc.start]:#04x}")
        except OSError as exc:
            self.problem(str(path), f"cannot read: {exc.strerror}")
        return None

    def resource(self, path: Path, conf_d: Path, templates: Path) -> None:
        name = str(path)
        text = self.read(path)
        if text is None:
            return
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = _TOML_AT.search(str(exc))
            line, col = (int(m[1]), int(m[2])) if m else (1, 1)
            self.problem(name, f"TOML syntax error: {_TOML_AT.sub('', str(exc)).strip()}", line, col)
            return
        except ValueError as exc:  # an integer longer than int() takes (4300 digits), ...
            self.problem(name, f"cannot read its TOML: {exc}")
            return
        table = doc.get("template")
        if not isinstance(table, dict):
            self.problem(name, "no [template] table")
            return
        src = table.get("src")
        if not isinstance(src, str) or not src:
            self.problem(name, "[template] src: missing (confd refuses it too)")
            return
        try:
            found = (templates / src).is_file()
        except OSError as exc:  # ENAMETOOLONG, ...: is_file() is False only for a missing file
            self.problem(name, f"[template] src: template {src[:80]!r}: {exc.strerror}")
            return
        if not found:
            self.problem(name, f"[template] src: template {src} not found in {templates}")
            return
        new = self.template(templates, src)
        rel = path.relative_to(conf_d).as_posix()
        dropped = [k for k in table if k not in CONFD_FIELDS]
        for key in dropped:
            close = difflib.get_close_matches(key, CONFD_FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.warn(name, f"[template] {key}: not a confd field, confd ignored it{hint}: dropped")
        self.check_fields(name, table)
        lines = list(_SRC_LINE.finditer(text))
        out = None
        if not dropped and len(lines) == 1:
            # Only the src value changes: comments, order and layout stay as written; unless
            # the line found is not the src key (a "src = ..." line inside a multi-line string).
            edited = text[: lines[0].start(2)] + _toml_string(new) + text[lines[0].end(2) :]
            out = edited if _table_of(edited) == {**table, "src": new} else None
        if out is None:
            out = write_toml_table({**table, "src": new})
        self.out.files.append(OutputFile(f"conf.d/{rel}", out, f"src {src} -> {new}"))

    def check_fields(self, name: str, table: dict[str, Any]) -> None:
        mode = table.get("mode")
        # A few decimal digits without a leading 0 (a file mode; int() refuses 4300 digits):
        if isinstance(mode, str) and mode.isascii() and mode.isdigit() and not mode.startswith("0"):
            if len(mode) > 12:
                pass  # confpy refuses it when it loads the resource
            elif not set(mode) <= set("01234567"):  # "9": not octal at all
                self.warn(
                    name,
                    f'[template] mode "{mode}": confd reads it as decimal ({int(mode):#o}), confpy refuses '
                    f'it (not octal); write "0{int(mode):o}" to keep confd\'s mode',
                )
            elif mode != str(int(mode, 8)):
                self.warn(
                    name,
                    f'[template] mode "{mode}": confd reads it as decimal ({int(mode):#o}), confpy as octal '
                    f'(0{mode}); write "0{mode}" to say so',
                )
        for key in ("check_cmd", "reload_cmd"):
            cmd = table.get(key)
            if isinstance(cmd, str) and any(
                not _SRC_PLACEHOLDER.fullmatch(t) for t in _CMD_TEMPLATE.findall(cmd)
            ):
                self.warn(
                    name,
                    f"[template] {key}: confpy replaces only {{{{.src}}}} in it, not other Go actions",
                )

    def template(self, templates: Path, src: str) -> str:
        if src in self.names:
            return self.names[src]
        new = jinja_name(src)
        taken = set(self.names.values())
        n = 2
        while new in taken:
            new, n = jinja_name(src).removesuffix(".j2") + f".{n}.j2", n + 1
        self.names[src] = new
        self.convert(templates / src, src, new)
        return new

    def convert(self, path: Path, src: str, new: str) -> None:
        text = self.read(path)
        if text is None:
            return
        result = convert_template(text, str(path))
        self.out.problems.extend(result.problems)
        if not result.problems:
            self.out.files.append(OutputFile(f"templates/{new}", result.source, f"converted from {src}"))

    def unreferenced(self, templates: Path) -> None:
        """Templates no conf.d resource names keep their names: a resource rendered at run
        time may name them (Calico 2017's bird.toml.template writes conf.d/bird.toml)."""
        if not templates.is_dir():
            return
        for path in sorted(p for p in templates.rglob("*") if p.is_file()):
            rel = path.relative_to(templates).as_posix()
            if rel in self.names:
                continue
            text = path.read_text(errors="replace")
            if "{{" not in text:
                self.out.files.append(OutputFile(f"templates/{rel}", text, "no Go action: copied as it is"))
                continue
            result = convert_template(text, str(path))
            if result.problems:
                self.warn(str(path), "named by no resource and not a template confpy can convert: left out")
                continue
            self.out.files.append(
                OutputFile(
                    f"templates/{rel}",
                    result.source,
                    "converted; kept its name (no conf.d resource names it)",
                )
            )


def convert_confdir(src: Path) -> Conversion:
    """Convert the confd confdir ``src`` (conf.d/ and templates/) in memory."""
    return _Converter(src).run()
