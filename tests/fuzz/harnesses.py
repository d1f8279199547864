"""The fuzz harnesses: one function per parser, ``bytes -> None``.

A harness returns when its input parsed, or when the parser raised the error its module
documents and that error names the place (the file, the key, the line). Anything else
escapes: another exception type, a :class:`ContractViolation` (the documented error
without its place, or a parse result that breaks an invariant). Time and memory are
bounded by the driver (:mod:`tests.fuzz.engine`), not here.

Inputs are bytes as atheris gives them. Harnesses of one value read them as the store
would (UTF-8, stray bytes kept as surrogates, as the etcd gateway reads keys and
values); harnesses of several values frame them with ``\\x00`` (each documents its
layout), so the seed corpora can be real files and values.
"""

from __future__ import annotations

import asyncio
import atexit
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confpy.errors import ConfigError, DataError, RenderError
from confpy.stores.base import StoreError

if TYPE_CHECKING:
    import jinja2

ROOT = Path(__file__).resolve().parents[2]
NODE = "node1"


class ContractViolation(AssertionError):
    """The parser failed in the documented way but broke its contract (no place named,
    an impossible result)."""


@dataclass(frozen=True)
class Harness:
    name: str
    run: Callable[[bytes], None]
    doc: str
    #: Modules atheris instruments for coverage (besides confpy).
    instrument: tuple[str, ...] = ()
    #: libFuzzer's -max_len for this harness (bytes).
    max_len: int = 8192


HARNESSES: dict[str, Harness] = {}


def harness(
    name: str, instrument: tuple[str, ...] = (), max_len: int = 8192
) -> Callable[[Callable[[bytes], None]], Callable[[bytes], None]]:
    def register(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
        HARNESSES[name] = Harness(name, fn, (fn.__doc__ or "").strip().splitlines()[0], instrument, max_len)
        return fn

    return register


# --- helpers ---------------------------------------------------------------------------


def text(data: bytes) -> str:
    """Bytes as confpy reads a store value: UTF-8, stray bytes kept (surrogateescape)."""
    return data.decode("utf-8", "surrogateescape")


def names(exc: BaseException, place: str) -> None:
    """The error's message names ``place``."""
    if place not in str(exc):
        raise ContractViolation(f"{type(exc).__name__} does not name {place!r}: {exc}") from exc


def names_key(exc: DataError, key: str) -> None:
    if exc.key != key or not str(exc).startswith("key "):
        raise ContractViolation(f"DataError names {exc.key!r}, not {key!r}: {exc}") from exc


def said(exc: BaseException) -> None:
    """The error says something."""
    if not str(exc).strip():
        raise ContractViolation(f"{type(exc).__name__} with an empty message") from exc


def frames(data: bytes, count: int | None = None) -> list[bytes]:
    """``data`` split on ``\\x00`` (at most ``count`` parts)."""
    return data.split(b"\x00", count - 1) if count else data.split(b"\x00")


class _Scratch:
    """One scratch directory per process (in /dev/shm where there is one)."""

    @cached_property
    def root(self) -> Path:
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        root = Path(tempfile.mkdtemp(prefix="confpy-fuzz-", dir=shm))
        atexit.register(shutil.rmtree, root, True)
        return root

    def file(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def fresh(self, rel: str) -> Path:
        path = self.root / rel
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


SCRATCH = _Scratch()


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` for the duration (the Calico contexts read it)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- resource TOML, confpy.toml, data files --------------------------------------------


@harness("resource_toml", ("tomllib",))
def resource_toml(data: bytes) -> None:
    """conf.d/*.toml through resource.load_resource: a resource or a ConfigError naming the file."""
    from confpy.resource import load_resource

    path = SCRATCH.file("confdir/conf.d/fuzz.toml", data)
    try:
        r = load_resource(path, path.parent, NODE)
    except ConfigError as exc:
        names(exc, str(path))
        return
    if not r.dest.is_absolute() or not r.keys or r.name != "fuzz":
        raise ContractViolation(f"impossible resource: {r}")
    if any(i is not None and not 0 <= i < 2**32 - 1 for i in (r.uid, r.gid)):
        raise ContractViolation(f"an id os.chown refuses: uid {r.uid}, gid {r.gid}")
    timeouts = [r.check_timeout] + ([r.reload.timeout] if r.reload else [])
    if not all(math.isfinite(t) and t > 0 for t in timeouts):
        raise ContractViolation(f"a timeout that is not a finite number of seconds: {timeouts}")


@harness("settings_toml", ("tomllib",))
def settings_toml(data: bytes) -> None:
    """confpy.toml through settings.read_config_file and build_settings: settings or a ConfigError."""
    from confpy.settings import build_settings, read_config_file

    path = SCRATCH.file("confpy.toml", data)
    try:
        read_config_file(path, explicit=True)
    except ConfigError as exc:
        names(exc, str(path))
        return
    try:
        settings = build_settings({"config_file": str(path)}, {"NODENAME": NODE})
    except ConfigError as exc:
        said(exc)
        return
    durations = [settings.wait_min, settings.wait_max, settings.connect_timeout, settings.interval or 1.0]
    if not all(math.isfinite(d) and d >= 0 for d in durations):
        raise ContractViolation(f"a duration that is not a finite number of seconds: {durations}")


def _data_file(data: bytes, suffix: str) -> None:
    from confpy.stores.file import FileStore

    path = SCRATCH.file(f"data{suffix}", data)
    try:
        snap = FileStore([path]).read(["/"])
    except StoreError as exc:
        names(exc, str(path))
        return
    bad = next(
        ((k, v) for k, v in snap.values.items() if not (isinstance(k, str) and isinstance(v, str))), None
    )
    if bad or not all(k.startswith("/") for k in snap.values):
        raise ContractViolation(f"a key or value that is not a string path: {bad}")


@harness("datafile_yaml", ("yaml",), max_len=65536)
def datafile_yaml(data: bytes) -> None:
    """A YAML data file through the file store: keys, or a StoreError naming the file."""
    _data_file(data, ".yaml")


@harness("datafile_json", max_len=65536)
def datafile_json(data: bytes) -> None:
    """A JSON data file through the file store: keys, or a StoreError naming the file."""
    _data_file(data, ".json")


# --- Calico v1 values and the BIRD templates' contexts ---------------------------------

_VALUE_KINDS = ("peer", "pool", "block", "advertisements")


@harness("calico_values", ("ipaddress",))
def calico_values(data: bytes) -> None:
    """One v1 value through model.parse_peer/pool/block/advertisements; byte 0 picks the
    parser and family, for a block the first line is the key's last segment."""
    from confpy.calico import model
    from confpy.keyview import StoreValue

    if not data:
        return
    kind, family = _VALUE_KINDS[data[0] % 4], model.FAMILIES[6 if data[0] & 4 else 4]
    value = text(data[1:])
    base = f"/calico/ipam/v2/host/{NODE}/{family.block_dir}/block"
    if kind == "block":
        name, _, value = value.partition("\n")
        key = f"{base}/{name}"
    else:
        key = {
            "peer": f"{model.GLOBAL}/{family.peer_dir}/10.0.0.1",
            "pool": f"{family.pool_dir}/10.0.0.0-8",
            "advertisements": f"{model.GLOBAL}/prefix_advertisements/{family.advertisement_key}",
        }[kind]
    v = StoreValue(value, key)
    try:
        if kind == "peer":
            peer = model.parse_peer(v, family)
            _ = peer.protocol_id
        elif kind == "pool":
            pool = model.parse_pool(v, family)
            _ = (pool.kernel_action, pool.has_tunnel)
        elif kind == "block":
            model.parse_block(v, base, family)
        else:
            for ad in model.parse_advertisements(v, family):
                _ = [c.attribute for c in ad.communities]
    except DataError as exc:
        names_key(exc, key)


def _keys(data: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """Lines ``KEY VALUE`` (``~`` at the start of a key stands for /calico/bgp/v1) and
    ``$NAME VALUE`` (an environment variable); the keys and the environment."""
    keys: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in text(data).split("\n"):
        key, _, value = line.partition(" ")
        if key.startswith("$"):
            env[key[1:]] = value.replace("\x00", "")  # no environment holds a NUL
        elif key:
            keys["/calico/bgp/v1" + key[1:] if key.startswith("~") else key] = value
    return keys, env


class _Templates:
    """The BIRD 1.6 set (conf.d/, templates/) and the BIRD 2 set (bird2/) of the repository."""

    @cached_property
    def sets(self) -> list[tuple[Any, list[Any]]]:
        from confpy.engine import TEMPLATE_PLUGINS
        from confpy.render import Renderer
        from confpy.resource import load_resources

        out = []
        for confdir in (ROOT, ROOT / "bird2"):
            renderer = Renderer(confdir / "templates", TEMPLATE_PLUGINS)
            out.append((renderer, load_resources(confdir, NODE, "", renderer.compile)))
        return out


TEMPLATES = _Templates()


def _render_bird(values: dict[str, str], env: dict[str, str]) -> None:
    """Render every BIRD template from ``values``: text, or a RenderError for bad data or
    missing keys, never one caused by another exception."""
    import jinja2

    from confpy.keyview import KeyView

    settings = {
        "BIRD_FLAVOR": env.get("BIRD_FLAVOR") or "calico",
        "CALICO_ROUTER_ID": env.get("CALICO_ROUTER_ID", ""),
    }
    with environment(**settings):
        for renderer, resources in TEMPLATES.sets:
            for r in resources:
                view = KeyView(r.prefix, {k: v for k, v in values.items() if r.reads(k)})
                try:
                    renderer.render(r.src, view, NODE)
                except RenderError as exc:
                    cause = exc.__cause__
                    if cause is not None and not isinstance(cause, DataError | jinja2.UndefinedError):
                        raise ContractViolation(
                            f"{r.src}: {type(cause).__name__} from the data: {exc}"
                        ) from cause
                    names(exc, r.src)


def _read_context(values: dict[str, str], env: dict[str, str]) -> None:
    """Every public property of the contexts the templates use: a value or a DataError."""
    from confpy.calico.bird2 import build_bird2_context
    from confpy.calico.context import build_context
    from confpy.keyview import KeyView

    view = KeyView("", values)
    environ = {"BIRD_FLAVOR": "calico", **{k: v for k, v in env.items() if v or k != "BIRD_FLAVOR"}}
    bird2 = build_bird2_context(view, NODE, environ)
    contexts: list[Any] = [build_context(view, NODE, f, environ) for f in (4, 6)]
    contexts += [bird2, *bird2.families]
    for ctx in contexts:
        for name in _properties(type(ctx)):
            try:
                getattr(ctx, name)
            except DataError as exc:
                if not exc.key:
                    raise ContractViolation(f"{name}: a DataError naming no key: {exc}") from exc


def _properties(cls: type) -> list[str]:
    return sorted(
        n
        for n in dir(cls)
        if not n.startswith("_") and isinstance(getattr(cls, n, None), property | cached_property)
    )


@harness("calico_context", ("ipaddress",), max_len=16384)
def calico_context(data: bytes) -> None:
    """v1 keys (lines ``KEY VALUE``, ``~`` for /calico/bgp/v1, ``$VAR VALUE``) through
    build_context's properties and every BIRD template: text or DataError/RenderError."""
    values, env = _keys(data)
    _read_context(values, env)
    _render_bird(values, env)


# --- Calico v3 resources, the v1 view, selectors ---------------------------------------

_PLURALS = ("nodes", "bgppeers", "bgpconfigurations", "ippools")


def _resource_key(selector: int, name: str) -> str:
    from confpy.calico.v3 import resources

    if not name or "/" in name:
        name = "x"
    return f"{resources.PREFIX}/{_PLURALS[selector % 4]}/{name}"


@harness("calico_v3", ("ipaddress",))
def calico_v3(data: bytes) -> None:
    """One Calico 3 resource as JSON through v3.resources.parse: byte 0 picks the kind, the
    first line is the name, the rest the value. A resource or a DataError naming the key."""
    from confpy.calico.v3 import resources

    if not data:
        return
    name, _, value = text(data[1:]).partition("\n")
    key = _resource_key(data[0], name)
    try:
        resources.parse(key, value)
    except DataError as exc:
        names_key(exc, key)


@harness("calico_view", ("ipaddress",), max_len=16384)
def calico_view(data: bytes) -> None:
    """Changes through v3.view.V1View.apply, then the BIRD contexts over its v1 keys.

    Records split on ``\\x00``; each: a byte (``% 5``: nodes, bgppeers, bgpconfigurations,
    ippools, a block affinity of this node; ``& 0x80``: a delete; ``& 0x40``: apply the
    batch after this record), then ``name`` ``\\n`` ``value``. Each apply returns exactly
    the keys that changed, and the view kept change by change equals a view computed at
    once from the resources it holds (the last version of each that parsed)."""
    from confpy.calico.v3 import resources
    from confpy.calico.v3.view import V1View, affinity_prefix

    view = V1View(NODE)
    held: dict[str, str] = {}  # what the view should hold: the last good value of each key
    batch: list[tuple[str, str | None]] = []
    records = [r for r in frames(data) if r]
    for i, record in enumerate(records):
        name, _, value = text(record[1:]).partition("\n")
        kind = record[0] % 5
        if kind == 4:
            key = f"{affinity_prefix(NODE)}/ipv{6 if ':' in name else 4}/block/{name or 'x'}"
        else:
            key = _resource_key(kind, name)
        batch.append((key, None if record[0] & 0x80 else value))
        if record[0] & 0x80:
            held.pop(key, None)
        elif kind == 4 or _parses(resources, key, value):
            held[key] = value
        if record[0] & 0x40 or i == len(records) - 1:
            before = dict(view.values)
            changed, errors = view.apply(batch)
            batch = []
            for exc in errors:
                if not isinstance(exc, DataError) or not exc.key.startswith("/calico/resources/v3/"):
                    raise ContractViolation(f"apply reported {exc!r}")
            if any(not isinstance(v, str | None) for v in changed.values()):
                raise ContractViolation(f"a changed key that is not a string: {changed}")
            expected = {**before, **changed}
            if {k: v for k, v in expected.items() if v is not None} != view.values:
                raise ContractViolation(
                    f"apply returned {changed}, but the view moved from {before} to {view.values}"
                )
    fresh = V1View(NODE)
    fresh.apply(held.items())
    if fresh.values != view.values:
        diff = {k: (view.values.get(k), fresh.values.get(k)) for k in set(view.values) | set(fresh.values)
                if view.values.get(k) != fresh.values.get(k)}  # fmt: skip
        raise ContractViolation(f"the view kept change by change differs from one made at once: {diff}")
    _read_context(dict(view.values), {})


def _parses(resources: Any, key: str, value: str) -> bool:
    try:
        resources.parse(key, value)
    except DataError:
        return False
    return True


@harness("selector")
def selector(data: bytes) -> None:
    """A Calico selector through v3.selector.parse: a Selector or a SelectorError; a parsed
    one evaluates to a bool against labels made of its own words."""
    from confpy.calico.v3 import selector as sel

    source = text(data)
    try:
        parsed = sel.parse(source)
    except sel.SelectorError as exc:
        said(exc)
        return
    words = [t.value for t in sel.tokenize(source) if t.kind in ("label", "string")]
    labels = [
        {},
        {w: w for w in words},
        {w: "" for w in words},
        dict(zip(words, reversed(words), strict=True)),
    ]
    for lab in labels:
        if not isinstance(parsed.matches(lab), bool):
            raise ContractViolation(f"{source!r} does not evaluate to a bool")


# --- confpy convert --------------------------------------------------------------------


class _Jinja:
    @cached_property
    def env(self) -> jinja2.Environment:
        from confpy.render import Renderer

        return Renderer(SCRATCH.root).env


JINJA = _Jinja()


def _compiles(source: str, name: str) -> None:
    import jinja2

    try:
        JINJA.env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ContractViolation(f"{name}: the converted template does not compile: {exc}") from exc


@harness("go_template", ("jinja2",))
def go_template(data: bytes) -> None:
    """A Go text/template through convert.emit.convert_template (lexer, parser, emitter):
    Jinja that compiles, or problems each at file:line:col."""
    from confpy.convert.emit import convert_template

    name = "templates/fuzz.tmpl"
    source = data.decode("utf-8", "replace")  # confdir.py reads templates as text
    result = convert_template(source, name)
    if result.problems:
        for p in result.problems:
            if p.pos.file != name or p.pos.line < 1 or p.pos.col < 1 or not p.message:
                raise ContractViolation(f"a problem not at a place in {name}: {p}")
        return
    _compiles(result.source, name)


@harness("convert_confdir", ("tomllib", "jinja2"))
def convert_confdir(data: bytes) -> None:
    """A confd confdir (conf.d/fuzz.toml ``\\x00`` templates/fuzz.tmpl) through
    convert.confdir.convert_confdir: files (TOML that parses, Jinja that compiles), or
    problems each naming a file of the confdir."""
    import tomllib

    from confpy.convert.confdir import CONFD_FIELDS
    from confpy.convert.confdir import convert_confdir as convert

    toml, _, template = data.partition(b"\x00")
    src = SCRATCH.fresh("confd")
    toml_path = SCRATCH.file("confd/conf.d/fuzz.toml", toml)
    SCRATCH.file("confd/templates/fuzz.tmpl", template)
    conv = convert(src)
    for p in conv.problems + conv.warnings:
        if not p.pos.file.startswith(str(src)) or p.pos.line < 1 or p.pos.col < 1:
            raise ContractViolation(f"a problem not at a place in the confdir: {p}")
    if conv.problems:
        return
    templates = {f.path.removeprefix("templates/") for f in conv.files if f.path.startswith("templates/")}
    for f in conv.files:
        if f.path.endswith(".toml"):
            try:
                table = tomllib.loads(f.text)["template"]
            except tomllib.TOMLDecodeError as exc:
                raise ContractViolation(
                    f"{f.path}: the converted TOML does not parse: {exc}\n{f.text}"
                ) from exc
            if table.get("src") not in templates:
                raise ContractViolation(
                    f"{f.path}: src {table.get('src')!r} is none of the converted {templates}"
                )
            given = tomllib.loads(toml_path.read_text())["template"]  # as the converter reads it
            kept = {k: v for k, v in given.items() if k in CONFD_FIELDS and k != "src"}
            if {k: v for k, v in table.items() if k != "src"} != kept:
                raise ContractViolation(f"{f.path}: the fields changed: {kept} became {table}")
        elif f.path.endswith(".j2"):
            _compiles(f.text, f.path)


# --- BIRD's control socket -------------------------------------------------------------


class FakeSocket:
    """What BIRD sends, in chunks of ``size`` bytes, then the end of the stream."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data = data
        self._size = size

    def settimeout(self, _timeout: float) -> None:
        pass

    def recv(self, limit: int) -> bytes:
        chunk, self._data = self._data[: min(self._size, limit)], self._data[min(self._size, limit) :]
        return chunk


@harness("bird_reply")
def bird_reply(data: bytes) -> None:
    """BIRD's greeting and its reply to ``configure`` through birdctl.read_reply, as
    birdctl.command reads them; byte 0 sets the size of the chunks recv returns."""
    from confpy import birdctl

    if not data:
        return
    sock: Any = FakeSocket(data[1:], 1 + data[0] * 17 % 4096)
    buf = bytearray()
    deadline = time.monotonic() + 60
    for _ in range(2):  # greeting, then the reply
        try:
            reply = birdctl.read_reply(sock, buf, deadline)
        except birdctl.BirdError as exc:
            said(exc)
            return
        if reply is None:
            return
        if not (len(reply.code) == 4 and reply.code.isascii() and reply.code.isdigit()):
            raise ContractViolation(f"reply code {reply.code!r} is not four digits")
        if not reply.text.endswith("\n") or reply.message != reply.message.strip():
            raise ContractViolation(f"a reply that is not whole lines: {reply}")
        buf.clear()


# --- etcd: the v2 API's answers, the v3 JSON gateway's answers -------------------------


def _status(record: bytes) -> tuple[int, bytes]:
    """A record's HTTP status (its first three bytes, when they are digits; else 200)
    and the rest."""
    head = record[:3]
    if len(head) == 3 and head.isdigit():
        return int(head), record[3:]
    return 200, record


@dataclass
class _V2Answer:
    status: int
    index: str | None
    body: bytes


def _v2_answers(data: bytes) -> list[_V2Answer | None]:
    """Records split on ``\\x00``: a first line ``STATUS INDEX`` (``200 8``: the status
    and the X-Etcd-Index header, left out when there is no INDEX), then the body; an empty
    record is a long poll that nothing answered."""
    out: list[_V2Answer | None] = []
    for record in frames(data):
        if not record:
            out.append(None)
            continue
        status, rest = _status(record)
        head, _, body = rest.partition(b"\n")
        index = head.strip().decode("latin-1") or None
        out.append(_V2Answer(status, index, body))
    return out


class FakeV2Client:
    """http_client.HttpClient's interface over canned answers, as the real client hands them
    on: 5xx is an unreachable store, 401/403 a refusal, the end of the answers a lost store."""

    def __init__(self, answers: list[_V2Answer | None]) -> None:
        from confpy.stores.http_wire import Response

        self._answers = answers
        self._response = Response
        self.closed = asyncio.Event()
        self.connect_timeout = 1.0
        self.connected_to = "http://127.0.0.1:2379"
        self.endpoints: list[Any] = []
        self.down_since = None
        self.requests = 0

    async def request(
        self, method: str, path: str, timeout: float, *, long_poll: bool = False, **_: Any
    ) -> Any:
        from confpy.stores.base import Lost, Refused

        self.requests += 1
        if not self._answers or self.requests > 64:
            self.closed.set()
            raise Lost("the connection was closed")
        answer = self._answers.pop(0)
        if answer is None:  # only a long poll goes unanswered; any other request gets an answer
            if long_poll:
                return None
            answer = _V2Answer(200, None, b"")
        if answer.status >= 500:
            raise StoreError(f"no etcd endpoint answered: HTTP {answer.status}")
        if answer.status in (401, 403):
            raise Refused(f"etcd refused the request: {answer.body[:200]!r}")
        headers = {} if answer.index is None else {"x-etcd-index": answer.index}
        return self._response(answer.status, headers, answer.body, True)

    def mark_unreachable(self, why: object) -> None:
        pass

    async def close(self) -> None:
        self.closed.set()


class _NoWait:
    def __init__(self, *args: Any) -> None:
        pass

    def reset(self) -> None:
        pass

    async def sleep(self) -> None:
        await asyncio.sleep(0)


class _Loop:
    @cached_property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        atexit.register(loop.close)
        return loop


LOOP = _Loop()
V2_PREFIXES = ["/calico/bgp/v1/host", "/calico/bgp/v1/global", "/calico/v1/ipam"]


@harness("etcdv2_answers", ("json",))
def etcdv2_answers(data: bytes) -> None:
    """etcd v2 answers (see _v2_answers) through EtcdV2Store.snapshot, then its watch:
    a snapshot or a StoreError; the watch yields changes, and raises only StoreError."""
    from unittest import mock

    from confpy.stores import etcdv2
    from confpy.stores.base import Changes, Resync

    async def run() -> None:
        store = etcdv2.EtcdV2Store.__new__(etcdv2.EtcdV2Store)
        store._client = client = FakeV2Client(_v2_answers(data))  # type: ignore[assignment]
        try:
            snap = await store.snapshot(V2_PREFIXES)
            _strings(snap.values)
        except StoreError as exc:
            said(exc)
        client.closed.clear()
        client.requests = 0
        try:
            async for event in store.watch(V2_PREFIXES, 1):
                if isinstance(event, Changes):
                    for c in event.changes:
                        _strings({c.key: c.value or ""})
                elif isinstance(event, Resync):
                    _strings(event.snapshot.values)
                else:
                    raise ContractViolation(f"the watch yielded {event!r}")
        except StoreError as exc:  # the Store protocol: a watch raises StoreError when it gives up
            said(exc)

    with mock.patch.object(etcdv2, "Backoff", _NoWait):
        LOOP.loop.run_until_complete(run())


def _strings(values: dict[str, str]) -> None:
    bad = next(((k, v) for k, v in values.items() if not (isinstance(k, str) and isinstance(v, str))), None)
    if bad is not None:
        raise ContractViolation(f"a key or value that is not a string: {bad!r}")


class FakeGatewayLink:
    """etcd_gateway._Link's interface over canned answers; then a reset connection."""

    def __init__(self, answers: list[tuple[int, bytes]]) -> None:
        self._answers = answers

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Any:
        from confpy.stores.http_wire import Response

        if not self._answers:
            raise ConnectionResetError("connection reset by peer")
        status, answer = self._answers.pop(0)
        return Response(status, {}, answer, True)

    def close(self) -> None:
        pass


@harness("etcd_gateway", ("json", "base64"))
def etcd_gateway(data: bytes) -> None:
    """The etcd v3 JSON gateway's answers through GatewayReader.read. Byte 0: bit 0
    authenticates, bit 1 detects (the v2 fallback), bits 2-3 pick the prefixes; then
    records split on ``\\x00``, each a status (three digits) and a JSON body. A snapshot, a
    StoreError or UseStore."""
    from unittest import mock

    from confpy.stores import etcd_gateway as gw
    from confpy.stores.endpoints import Access

    if not data:
        return
    options = data[0]
    answers = [_status(r) for r in frames(data[1:])]
    prefixes = [["/calico/bgp/v1"], ["/calico/bgp/v1/host", "/calico/bgp/v1/global"], [], ["/"]][
        options >> 2 & 3
    ]
    reader = gw.GatewayReader(
        ["http://127.0.0.1:2379"],
        Access(username="root", password="pw") if options & 1 else None,
        detecting=bool(options & 2),
    )
    link = FakeGatewayLink(answers)
    try:
        with mock.patch.object(gw, "_Link", lambda *args: link):
            snap = reader.read(prefixes)
    except gw.UseStore as exc:
        said(exc)
        return
    except StoreError as exc:
        said(exc)
        return
    _strings(snap.values)
    if not isinstance(snap.revision, int):
        raise ContractViolation(f"revision {snap.revision!r} is not a number")
