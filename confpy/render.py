"""The Jinja2 environment: strict undefined, confd's lookups bound to a key view.

Rendering is pure: a compiled template plus a :class:`KeyView` give text. A missing
key does not stop the render at the first miss: every miss is collected with its
template line and reported together, then the render fails. confd's other functions
and the validating filters are in :mod:`confpy.funcs`; globals of a domain (the Calico
BGP context of the BIRD templates) come from the :data:`TemplatePlugin` functions the
renderer is given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from types import BuiltinFunctionType, FrameType, FunctionType, MethodType, TracebackType
from typing import Any, NoReturn

import jinja2
from jinja2.runtime import Context
from jinja2.utils import internalcode

from confpy.errors import ConfigError, DataError, RenderError
from confpy.funcs import FILTERS, FUNCTIONS
from confpy.keyview import KeyView, KVPair, MissingKeyError, StoreValue

#: Extra template globals for one render, from the resource's keys and the node name.
TemplatePlugin = Callable[[KeyView, str], Mapping[str, Any]]


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
    """Compiles each template once and renders it against key views.

    ``plugins`` add globals to every render (each is called with the view and the node
    name); the renderer itself knows no domain.
    """

    def __init__(self, templates_dir: Path, plugins: Sequence[TemplatePlugin] = ()) -> None:
        self.templates_dir = templates_dir
        self.plugins = tuple(plugins)
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
        self.env.globals.update(FUNCTIONS)
        self.env.filters.update(FILTERS)
        # Go's semantics for templates converted from confd's (confpy convert); loaded
        # by the first converted template that uses them, not by every start.
        self.env.globals["go"] = _LazyGo()
        self.env.filters["go"] = _go_print

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
        for plugin in self.plugins:
            context.update(plugin(view, node_name))
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


class _LazyGo:
    """The ``go`` global: confpy.goruntime's runtime, imported on first use."""

    def __getattr__(self, name: str) -> Any:
        from confpy.goruntime import GO

        return getattr(GO, name)


def _go_print(value: object) -> str:
    from confpy.gofmt import print_value

    return print_value(value)


def _describe(exc: Exception) -> str:
    if isinstance(exc, DataError | jinja2.UndefinedError):
        return str(exc)
    go = sys.modules.get("confpy.goruntime")  # a Go error can only come from a loaded runtime
    if go is not None and isinstance(exc, go.GoTemplateError):
        return f"as confd would: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _report(src: str, scope: _Scope, problem: str | None) -> str:
    lines = [f"cannot render {src}"]
    if problem:
        lines[0] += f": {problem}"
    if scope.missing:
        lines.append(f"missing ({len(scope.missing)}):")
        lines.extend(f"  {m}" for m in scope.missing)
    return "\n".join(lines)
