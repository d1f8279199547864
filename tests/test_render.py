from pathlib import Path

import pytest

from confpy.errors import ConfigError, RenderError
from confpy.keyview import KeyView
from confpy.render import Renderer


def render(tmp_path: Path, text: str, data: dict[str, str] | None = None, prefix: str = "") -> str:
    (tmp_path / "t.j2").write_text(text)
    return Renderer(tmp_path).render("t.j2", KeyView(prefix, data or {}), "node1")


def test_confd_path_functions_follow_go_semantics(tmp_path: Path) -> None:
    out = render(
        tmp_path,
        "{{ base('/a/b/') }} {{ base('') }} {{ base('/') }} {{ dir('/a/b') }} {{ dir('a') }} {{ dir('/a') }}",
    )
    assert out == "b . / /a . /"


def test_string_functions(tmp_path: Path) -> None:
    out = render(
        tmp_path,
        "{{ join(split('192.168.0.0-16', '-'), '/') }} {{ replace('a.b.c', '.', '_') }}"
        " {{ trimSuffix('x.conf', '.conf') }} {{ hasSuffix('a/32', '/32') }} {{ contains('abc', 'b') }}"
        " {{ toUpper('a') }}{{ toLower('B') }} {{ atoi('42') + 1 }} {{ seq(1, 3) }}"
        " {{ base64Decode(base64Encode('hi')) }} {{ parseBool('true') }}",
    )
    assert out == "192.168.0.0/16 a_b_c x True True Ab 43 [1, 2, 3] hi True"


def test_hash_to_ipv4_is_the_first_four_bytes_of_sha256(tmp_path: Path) -> None:
    # sha256("node1") starts with 0x5f 0x1d 0x77 0x0c ...
    import hashlib

    digest = hashlib.sha256(b"node1").digest()
    assert render(tmp_path, "{{ hashToIPv4('node1') }}") == ".".join(str(b) for b in digest[:4])


def test_getenv_with_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFPY_T", "set")
    monkeypatch.delenv("CONFPY_UNSET", raising=False)
    assert render(tmp_path, "{{ getenv('CONFPY_T') }} {{ getenv('CONFPY_UNSET', 'dflt') }}") == "set dflt"


def test_store_lookups_see_keys_without_the_prefix(tmp_path: Path) -> None:
    data = {"/p/x": "1", "/p/list/a": "A", "/p/list/b": "B"}
    out = render(
        tmp_path,
        "{{ getv('/x') }} {{ getv('/nope', 'd') }} {{ exists('/x') }} {{ ls('/list') }}"
        " {% for kv in gets('/list/*') %}{{ kv.Key }}={{ kv.value }};{% endfor %}",
        data,
        prefix="/p",
    )
    assert out == "1 d True ['a', 'b'] /list/a=A;/list/b=B;"


def test_every_missing_key_is_listed_with_template_and_line(tmp_path: Path) -> None:
    text = "a={{ getv('/a') }}\nb={{ getv('/b') }}\n{{ undefined_name }}\nc={{ get('/c').value }}\n"
    with pytest.raises(RenderError) as err:
        render(tmp_path, text, prefix="/p")
    message = str(err.value)
    assert "missing (4)" in message
    assert "key /p/a (t.j2:1)" in message
    assert "key /p/b (t.j2:2)" in message
    assert "'undefined_name' is undefined (t.j2:3)" in message
    assert "key /p/c (t.j2:4)" in message


def test_missing_attribute_of_json_fails_the_render(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"has no attribute 'port' \(t.j2:1\)"):
        render(tmp_path, "{{ json(getv('/x')).port }}", {"/x": '{"ip": "1.2.3.4"}'})


def test_invalid_json_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"t.j2:2: key /p/x: invalid JSON"):
        render(tmp_path, "ok\n{{ json(getv('/x')) }}", {"/p/x": "{not json"}, prefix="/p")


def test_validating_filters_name_the_key(tmp_path: Path) -> None:
    assert render(tmp_path, "{{ getv('/ip') | ipv4 }}", {"/ip": "10.0.0.1"}) == "10.0.0.1"
    hostile = "1.2.3.4; protocol static { route 0.0.0.0/0 blackhole; }"
    with pytest.raises(RenderError, match=r"key /ip: .* is not an IPv4 address"):
        render(tmp_path, "{{ getv('/ip') | ipv4 }}", {"/ip": hostile})
    with pytest.raises(RenderError, match=r"key /as: '0' is not an AS number"):
        render(tmp_path, "{{ getv('/as') | asn }}", {"/as": "0"})
    assert render(tmp_path, "{{ getv('/n') | cidr }}", {"/n": "10.0.0.0/8"}) == "10.0.0.0/8"


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.j2").write_text("ok\n{% for x in %}\n")
    with pytest.raises(ConfigError, match=r"bad.j2:2: template syntax error"):
        Renderer(tmp_path).compile("bad.j2")


def test_templates_are_compiled_once(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("x")
    renderer = Renderer(tmp_path)
    assert renderer.compile("t.j2") is renderer.compile("t.j2")


def test_trailing_newline_is_kept_and_block_lines_vanish(tmp_path: Path) -> None:
    out = render(tmp_path, "{% for i in seq(1, 2) %}\nline {{ i }}\n{% endfor %}\n")
    assert out == "line 1\nline 2\n"


def test_attributes_of_json_objects_resolve_as_in_jinja(tmp_path: Path) -> None:
    # d.ip is the item; d.items stays dict's method (attribute first, as Jinja does),
    # so a key named "items" is reached by subscript only.
    data = {"/x": '{"ip": "1.2.3.4", "items": "shadowed"}'}
    out = render(
        tmp_path,
        "{% set d = json(getv('/x')) %}{{ d.ip }} {{ d['items'] }} {{ d.items() | list | length }}",
        data,
    )
    assert out == "1.2.3.4 shadowed 2"


def test_functions_that_ask_for_the_context_still_get_it(tmp_path: Path) -> None:
    import jinja2

    @jinja2.pass_context
    def who(context: jinja2.runtime.Context) -> str:
        return str(context["node_name"])

    (tmp_path / "t.j2").write_text("{{ who() }} {{ base('/a/b') }}")
    renderer = Renderer(tmp_path)
    renderer.env.globals["who"] = who
    assert renderer.render("t.j2", KeyView("", {}), "node1") == "node1 b"
