"""The generic resource set of the model-checked daemon (tests/test_model_daemon.py) and
its reference renderer.

Three resources in two units, on overlapping and sibling prefixes:

- ``main`` (unit ``main``): every key under ``/a``, three levels deep, with a check;
- ``main_x`` (unit ``main``): prefix ``/a``, keys ``/x``: ``/a/x`` and its children;
- ``sib`` (unit ``sib``): ``/a-b`` and ``/av6``, siblings of ``/a`` that a plain string
  match would mix up with it.

Every template ends with a trailer, ``# sum <hashToIPv4(body)> <len(body)>`` and
``# end``, so that a reader can tell a complete file from a torn or partial one
(:func:`complete`).

:func:`expected` is the oracle: plain Python that computes, from a key dict, the text
each template renders, without confpy's code (no key view, no glob, no Jinja). A
resource whose output would hold a string that is not UTF-8 (etcd's bytes decoded with
``surrogateescape``, as the store decodes them) fails to render: ``None``.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

TRAILER = """{% endset %}
{{ body }}# sum {{ hashToIPv4(body) }} {{ body|length }}
# end
"""

MAIN_J2 = (
    """{% set body %}
# main
a={{ getv('/a', '-') }}
{% for p in gets('/a/*') %}
1 {{ p.key }}={{ p.value }}
{% endfor %}
{% for p in gets('/a/*/*') %}
2 {{ p.key }}={{ p.value }}
{% endfor %}
{% for p in gets('/a/*/*/*') %}
3 {{ p.key }}={{ p.value }}
{% endfor %}
"""
    + TRAILER
)

MAIN_X_J2 = (
    """{% set body %}
# main_x
x={{ getv('/x', '-') }}
{% for name in ls('/x') %}
child {{ name }} {{ getv('/x/' ~ name, '(dir)') }}
{% endfor %}
"""
    + TRAILER
)

SIB_J2 = (
    """{% set body %}
# sib
self={{ getv('/a-b', '-') }} {{ getv('/av6', '-') }}
{% for p in gets('/a-b/*') %}
b {{ p.key }}={{ p.value }}
{% endfor %}
{% for v in getvs('/av6/*') %}
v {{ v }}
{% endfor %}
"""
    + TRAILER
)


@dataclass(frozen=True)
class Resource:
    name: str
    unit: str
    toml: str  # the [template] body; {out} is the output directory, {reloads} the reload log dir
    src: str
    template: str

    @property
    def dest(self) -> str:
        return f"{self.name}.conf"


RESOURCES = (
    Resource(
        "main", "main",
        'src = "main.j2"\ndest = "{out}/main.conf"\nkeys = ["/a"]\nunit = "main"\n'
        "check_cmd = \"tail -n 1 {{.src}} | grep -qx '# end'\"\n"
        'reload_cmd = "echo r >> {reloads}/reloads-main"\n',
        "main.j2", MAIN_J2,
    ),
    Resource(
        "main_x", "main",
        'src = "main_x.j2"\ndest = "{out}/main_x.conf"\nprefix = "/a"\nkeys = ["/x"]\nunit = "main"\n'
        'reload_cmd = "echo r >> {reloads}/reloads-main"\n',
        "main_x.j2", MAIN_X_J2,
    ),
    Resource(
        "sib", "sib",
        'src = "sib.j2"\ndest = "{out}/sib.conf"\nkeys = ["/a-b", "/av6"]\n'
        'reload_cmd = "echo r >> {reloads}/reloads-sib"\n',
        "sib.j2", SIB_J2,
    ),
)  # fmt: skip
UNITS = {"main": ("main", "main_x"), "sib": ("sib",)}
#: The prefixes the daemon watches (the resources' keys, collapsed): one etcd watcher each.
WATCHED = ("/a", "/a-b", "/av6")


def write_confdir(confdir: Path, out: Path, reloads: Path) -> None:
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    for r in RESOURCES:
        body = r.toml.replace("{out}", str(out)).replace("{reloads}", str(reloads))
        (confdir / "conf.d" / f"{r.name}.toml").write_text("[template]\n" + body)
        (confdir / "templates" / r.src).write_text(r.template)


def covers(prefix: str, key: str) -> bool:
    """``key`` is ``prefix`` or below it (the test's own copy of the rule)."""
    return key == prefix or key.startswith(prefix + "/")


def watcher_of(key: str) -> str | None:
    """The watched prefix (etcd watcher) a key belongs to; None: not watched."""
    for p in WATCHED:
        if covers(p, key):
            return p
    return None


def hash_to_ipv4(text: str) -> str:
    return str(ipaddress.IPv4Address(hashlib.sha256(text.encode()).digest()[:4]))


def _finish(body: str) -> str:
    return f"{body}# sum {hash_to_ipv4(body)} {len(body)}\n# end\n"


def _level(rest: str) -> int:
    return rest.count("/") + 1


def _main(keys: Mapping[str, str]) -> str:
    lines = ["# main\n", f"a={keys.get('/a', '-')}\n"]
    under = sorted(k for k in keys if k.startswith("/a/"))
    for level in (1, 2, 3):
        lines += [f"{level} {k}={keys[k]}\n" for k in under if _level(k[3:]) == level]
    return _finish("".join(lines))


def _main_x(keys: Mapping[str, str]) -> str:
    lines = ["# main_x\n", f"x={keys.get('/a/x', '-')}\n"]
    names = sorted({k[len("/a/x/") :].partition("/")[0] for k in keys if k.startswith("/a/x/")} - {""})
    lines += [f"child {n} {keys.get('/a/x/' + n, '(dir)')}\n" for n in names]
    return _finish("".join(lines))


def _sib(keys: Mapping[str, str]) -> str:
    lines = ["# sib\n", f"self={keys.get('/a-b', '-')} {keys.get('/av6', '-')}\n"]
    lines += [f"b {k}={keys[k]}\n" for k in sorted(keys) if k.startswith("/a-b/") and "/" not in k[5:]]
    lines += [
        f"v {v}\n" for v in sorted(v for k, v in keys.items() if k.startswith("/av6/") and "/" not in k[6:])
    ]
    return _finish("".join(lines))


REFERENCE: dict[str, Callable[[Mapping[str, str]], str]] = {"main": _main, "main_x": _main_x, "sib": _sib}


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def expected(name: str, keys: Mapping[str, str]) -> str | None:
    """What resource ``name`` renders from ``keys``; None: its render fails (a string
    that is not UTF-8 would reach the file)."""
    try:
        text = REFERENCE[name](keys)
    except UnicodeEncodeError:  # hash_to_ipv4 of a body that is not UTF-8
        return None
    return text if _utf8(text) else None


def expected_units(keys: Mapping[str, str]) -> dict[str, tuple[bytes, ...] | None]:
    """Unit -> its files' bytes in resource order; None when one of them fails (the whole
    unit then keeps its last good files)."""
    out: dict[str, tuple[bytes, ...] | None] = {}
    for unit, names in UNITS.items():
        texts = [expected(n, keys) for n in names]
        out[unit] = (
            None if any(t is None for t in texts) else tuple(t.encode() for t in texts if t is not None)
        )
    return out


def complete(name: str, data: bytes) -> str | None:
    """Why ``data`` is not a complete render of resource ``name`` (None: it is one)."""
    text = data.decode("utf-8", "replace")
    if not text.startswith(f"# {name}\n"):
        return f"does not start with '# {name}'"
    if not text.endswith("\n# end\n"):
        return "does not end with '# end'"
    cut = text.rfind("# sum ", 0, len(text) - len("# end\n"))
    if cut < 0:
        return "no '# sum' line"
    body, trailer = text[:cut], text[cut:].split("\n", 1)[0].split()
    if len(trailer) != 4:
        return f"bad trailer {trailer!r}"
    if trailer[3] != str(len(body)) or trailer[2] != hash_to_ipv4(body):
        return f"body of {len(body)} characters does not match its trailer {trailer[2:]}"
    return None
