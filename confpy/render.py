"""The Jinja2 environment: confd's template functions, strict undefined, validating filters.

Rendering is pure: a compiled template plus a :class:`KeyView` give text. A missing
key does not stop the render at the first miss: every miss is collected with its
template line and reported together, then the render fails.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import ipaddress
import json
import os
import posixpath
import socket
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from types import BuiltinFunctionType, FrameType, FunctionType, MethodType, TracebackType
from typing import Any, NoReturn

import jinja2
from jinja2.runtime import Context
from jinja2.utils import internalcode

from confpy import validate
from confpy.errors import ConfigError, DataError, RenderError
from confpy.keyview import KeyView, KVPair, MissingKeyError, StoreValue


class _Scope:
    """Per-render bookkeeping: the misses seen so far, in order, without repeats."""

    __slots__ = ("missing",)

    def __init__(self) -> None:
        self.missing: dict[str, None] = {}

    def miss(self, what: str) -> None:
        self.missing.setdefault(f"{what} ({_template_location(sys._getframe(1))})", None)


_scope: ContextVar[_Scope | None] = ContextVar("confpy_render_scope", default=None)


def _template_location(frame: FrameType | None) -> str:
    """``template:line`` of the innermost template frame on the stack."""
    while frame is not None:
        tmpl = frame.f_globals.get("__jinja_template__")
        if tmpl is not None:
            return f"{tmpl.name}:{tmpl.get_corresponding_lineno(frame.f_lineno)}"
        frame = frame.f_back
    return "?"


def _traceback_location(tb: TracebackType | None, env: jinja2.Environment) -> str | None:
    """``template:line`` of the innermost template frame of a traceback.

    Jinja rewrites tracebacks so template frames carry the template's file name and
    line; the template's own name is recovered from the loader's search path.
    """
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in ("template", "top-level template code") or code.co_name.startswith("block "):
            found = f"{_template_name(code.co_filename, env)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _template_name(filename: str, env: jinja2.Environment) -> str:
    loader = env.loader
    if isinstance(loader, jinja2.FileSystemLoader):
        for root in loader.searchpath:
            if filename.startswith(str(root).rstrip("/") + "/"):
                return filename[len(str(root).rstrip("/")) + 1 :]
    return filename


def _record(what: str) -> None:
    scope = _scope.get()
    if scope is not None:
        scope.miss(what)


class RecordingUndefined(jinja2.Undefined):
    """Strict, but collecting: using an undefined value records it and yields nothing,
    so one render reports every missing value; the render fails at the end."""

    __slots__ = ("_reported",)

    def __init__(self, *args: Any, reported: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reported = reported

    def _note(self) -> None:
        if not self._reported:
            self._reported = True
            _record(self._undefined_message)

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._note()
        super()._fail_with_undefined_error(*args, **kwargs)

    def __str__(self) -> str:
        self._note()
        return ""

    def __iter__(self) -> Iterator[Any]:
        self._note()
        return iter(())

    def __bool__(self) -> bool:
        self._note()
        return False

    def __len__(self) -> int:
        self._note()
        return 0

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, _name: Any) -> RecordingUndefined:  # type: ignore[override]
        return self


def _missing(full_key: str) -> RecordingUndefined:
    _record(f"key {full_key}")
    return RecordingUndefined(name=full_key, reported=True)


def _fail(value: object, message: str) -> NoReturn:
    """Raise a DataError naming the store key behind ``value`` when there is one."""
    if isinstance(value, StoreValue):
        raise DataError(value.key, message)
    raise ValueError(message)


def _validating(check: Callable[[object], object]) -> Callable[[object], object]:
    def apply(value: object) -> object:
        if isinstance(value, jinja2.Undefined):
            return value
        try:
            return check(value)
        except ValueError as exc:
            _fail(value, str(exc))

    apply.__name__ = getattr(check, "__name__", "check")
    return apply


# --- confd's functions that do not need the store ------------------------------------


def _parse_json(value: object) -> Any:
    """Parse once per store value: an unchanged key keeps its parsed object across renders
    (so templates must treat what ``json()`` returns as read-only)."""
    if isinstance(value, jinja2.Undefined):
        return value
    if isinstance(value, StoreValue):
        try:
            return value.parsed
        except AttributeError:
            pass
    try:
        parsed = json.loads(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        _fail(value, f"invalid JSON: {exc}")
    if isinstance(value, StoreValue):
        value.parsed = parsed
    return parsed


def _json_object(value: object) -> Any:
    parsed = _parse_json(value)
    if not isinstance(parsed, dict | jinja2.Undefined):
        _fail(value, "JSON value is not an object")
    return parsed


def _json_array(value: object) -> Any:
    parsed = _parse_json(value)
    if not isinstance(parsed, list | jinja2.Undefined):
        _fail(value, "JSON value is not an array")
    return parsed


def _go_base(path: str) -> str:
    if path == "":
        return "."
    path = path.rstrip("/")
    return "/" if path == "" else path.rsplit("/", 1)[-1]


def _go_dir(path: str) -> str:
    head = path[: path.rfind("/") + 1]
    return posixpath.normpath(head) if head else "."


def _split(value: str, sep: str) -> list[str]:
    return list(value) if sep == "" else str(value).split(sep)


def _getenv(name: str, default: str = "") -> str:
    return os.environ.get(name) or default


def _atoi(value: str) -> int:
    text = str(value)
    if not (text.lstrip("+-").isdigit() and text.isascii()):
        _fail(value, f"{text!r} is not an integer")
    return int(text)


def hash_to_ipv4(name: str) -> str:
    """confd's ``hashToIPv4``: the first four bytes of SHA-256(name) as a dotted quad."""
    return str(ipaddress.IPv4Address(hashlib.sha256(name.encode("utf-8")).digest()[:4]))


def _lookup_ip(name: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(str(name), None)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def _parse_bool(value: str) -> bool:
    text = str(value)
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    _fail(value, f"{text!r} is not a boolean")


PURE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json_object,
    "jsonArray": _json_array,
    "base": _go_base,
    "dir": _go_dir,
    "split": _split,
    "join": lambda items, sep: sep.join(str(i) for i in items),
    "getenv": _getenv,
    "contains": lambda s, sub: sub in s,
    "replace": lambda s, old, new, n=-1: str(s).replace(old, new, n),
    "trimSuffix": lambda s, suffix: str(s).removesuffix(suffix),
    "hasSuffix": lambda s, suffix: str(s).endswith(suffix),
    "hasPrefix": lambda s, prefix: str(s).startswith(prefix),
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "atoi": _atoi,
    "parseBool": _parse_bool,
    "seq": lambda first, last: list(range(int(first), int(last) + 1)),
    "datetime": _dt.datetime.now,
    "fileExists": lambda path: os.path.exists(path),
    "base64Encode": lambda s: base64.b64encode(str(s).encode()).decode(),
    "base64Decode": lambda s: base64.b64decode(str(s)).decode(),
    "lookupIP": _lookup_ip,
    "hashToIPv4": hash_to_ipv4,
    "reverse": lambda items: list(reversed(items)),
    "sortByLength": lambda items: sorted(items, key=len),
    "sortKVByLength": lambda pairs: sorted(pairs, key=lambda p: len(p.key)),
}

FILTERS: dict[str, Callable[[object], object]] = {
    "ipv4": _validating(validate.ipv4),
    "ipv6": _validating(validate.ipv6),
    "ip": _validating(validate.ip),
    "cidr": _validating(validate.cidr),
    "asn": _validating(validate.asn),
}


class _StoreFunctions:
    """confd's lookups bound to one key view; a miss is recorded, not raised."""

    __slots__ = ("view",)

    def __init__(self, view: KeyView) -> None:
        self.view = view

    def getv(self, key: str, default: str | None = None) -> StoreValue | str | RecordingUndefined:
        try:
            return self.view.getv(key)
        except MissingKeyError as miss:
            return default if default is not None else _missing(miss.full_key)

    def get(self, key: str) -> KVPair | RecordingUndefined:
        try:
            return self.view.get(key)
        except MissingKeyError as miss:
            return _missing(miss.full_key)

    def as_globals(self) -> dict[str, Any]:
        v = self.view
        return {
            "getv": self.getv,
            "get": self.get,
            "getvs": v.getvs,
            "gets": v.gets,
            "exists": v.exists,
            "ls": v.ls,
            "lsdir": v.lsdir,
        }


_PLAIN_CALLABLES = (FunctionType, MethodType, BuiltinFunctionType)
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Context(Context):
    """Jinja's context, with a shorter way to call a plain function.

    A template loop over 10,000 keys makes two calls per key (``json()``, ``base()``);
    Jinja's general ``call`` probes each callable for ``pass_context`` and its
    ``__call__`` through failing ``hasattr``s, a quarter of such a render. A function or
    method cannot have a ``__call__`` that passes a context, so one probe says it all.
    """

    @internalcode
    def call(__self, __obj: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if type(__obj) not in _PLAIN_CALLABLES or getattr(__obj, "jinja_pass_arg", None) is not None:
            return super().call(__obj, *args, **kwargs)
        if kwargs:
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
        try:
            return __obj(*args, **kwargs)
        except StopIteration:  # as Jinja does
            return __self.environment.undefined(
                "value was undefined because a callable raised a StopIteration exception"
            )


class _Environment(jinja2.Environment):
    context_class = _Context

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``d.ip`` on a parsed JSON object: the same answer as Jinja's (an attribute of
        ``dict`` first, else the item), without raising AttributeError on every lookup."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


class Renderer:
    """Compiles each template once and renders it against key views."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self.env = _Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            undefined=RecordingUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
            cache_size=-1,
            autoescape=False,
            extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"],
        )
        self.env.globals.update(PURE_FUNCTIONS)
        self.env.filters.update(FILTERS)

    def compile(self, src: str) -> jinja2.Template:
        """Load and compile ``src`` (cached); a syntax error names file and line."""
        try:
            return self.env.get_template(src)
        except jinja2.TemplateNotFound:
            raise ConfigError(f"template {src} not found in {self.templates_dir}") from None
        except jinja2.TemplateSyntaxError as exc:
            where = f"{exc.filename or src}:{exc.lineno}"
            raise ConfigError(f"{where}: template syntax error: {exc.message}") from None

    def render(self, src: str, view: KeyView, node_name: str) -> str:
        """Render ``src`` against ``view``; raises :class:`RenderError` naming template and line."""
        template = self.compile(src)
        scope = _Scope()
        token = _scope.set(scope)
        context = _StoreFunctions(view).as_globals()
        context["node_name"] = node_name
        context["calico"] = _calico_builder(view, node_name)
        try:
            text = template.render(context)
        except Exception as exc:  # a template bug or bad data: report where, keep the misses
            where = _traceback_location(exc.__traceback__, self.env) or src
            problem = f"{where}: {_describe(exc)}"
            raise RenderError(_report(src, scope, problem)) from exc
        finally:
            _scope.reset(token)
        if scope.missing:
            raise RenderError(_report(src, scope, None))
        return text


def _describe(exc: Exception) -> str:
    if isinstance(exc, DataError | jinja2.UndefinedError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _report(src: str, scope: _Scope, problem: str | None) -> str:
    lines = [f"cannot render {src}"]
    if problem:
        lines[0] += f": {problem}"
    if scope.missing:
        lines.append(f"missing ({len(scope.missing)}):")
        lines.extend(f"  {m}" for m in scope.missing)
    return "\n".join(lines)


def _calico_builder(view: KeyView, node_name: str) -> Callable[[int], object]:
    """``calico(family)``: the typed Calico BGP context (built once per family and render)."""
    built: dict[int, object] = {}

    def calico(family: int = 4) -> object:
        if family not in built:
            from confpy.calico import build_context  # only the BIRD templates need it

            built[family] = build_context(view, node_name, family)
        return built[family]

    return calico
