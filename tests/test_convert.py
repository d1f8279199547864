"""confpy convert, template by template: what a Go template renders in confd, the
converted Jinja renders in confpy, byte for byte.

There is no Go toolchain here: each expected text is what Go's text/template gives by
its documentation and source (trim markers eat spaces, tabs and newlines; a tag keeps
the newline after it; ``and``/``or`` return an operand; ``%v`` of a float64 is
``%g``-like, so 1000000 prints ``1e+06``; a missing map key is nil, printed
``<no value>``; variables are scoped to their ``{{end}}``), worked out by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from confpy.convert.emit import convert_template
from confpy.errors import RenderError
from confpy.keyview import KeyView
from confpy.render import Renderer

Go = Callable[..., str]


@pytest.fixture
def go(tmp_path: Path) -> Go:
    """Convert a Go template and render the Jinja with these keys (prefix "/")."""

    def render(template: str, keys: dict[str, str] | None = None) -> str:
        converted = convert_template(template, "t.tmpl", header=False)
        assert not converted.problems, "\n".join(map(str, converted.problems))
        (tmp_path / "t.j2").write_text(converted.source)
        return Renderer(tmp_path).render("t.j2", KeyView("", keys or {}), "node1")

    return render


def problems(template: str) -> list[str]:
    return [str(p) for p in convert_template(template, "t.tmpl").problems]


# --- text and whitespace -------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a  \n  {{- `x` -}}  \n b", "axb"),
        # Go keeps every newline around a tag without a trim marker (Jinja's trim_blocks would eat them)
        ("x\n{{if true}}\ny\n{{end}}\nz\n", "x\n\ny\n\nz\n"),
        # ...and the indentation before one (lstrip_blocks would drop it)
        ("  {{if true}}a{{end}}\n  {{range split `1,2` `,`}}{{.}}{{end}}\n", "  a\n  12\n"),
        ("\t{{- if true}}\n\tin\n\t{{- end}}\nout", "\n\tin\nout"),
        (
            "router id {{if eq `hash` ``}}\n\thash;\n{{- else -}}\n\t{{`10.0.0.1`}};\n{{- end}}\n",
            "router id 10.0.0.1;\n",
        ),
        ("a{{/* a comment */}}b{{- /* trimmed */ -}} \n c\n", "abc\n"),
        ("{{`{{`}} {% raw %} {# not a comment #} {{`}}`}}", "{{ {% raw %} {# not a comment #} }}"),
        ("crlf\r\n{{if true}}x{{end}}\r\n", "crlf\r\nx\r\n"),
        ("no newline at the end{{if true}}{{end}}", "no newline at the end"),
        ("{{/* only a comment */}}\n", "\n"),
        ("\f{{- `x` -}}\v", "\fx\v"),  # Go trims only space, tab, CR, LF; Jinja's "-" would eat \f and \v
        # Found by atheris on the go_template harness (tests/fuzz/corpus/go_template/regress-brace-cr):
        # "{" before the literal written for "\r" read as "{{{" and the Jinja did not compile.
        ("{\r", "{\r"),
        ("a{\r\n{{`b`}}{\r{{- ` c` -}} {\n", "a{\r\nb{ c{\n"),  # Go's "{{- " trims the \r
    ],
)
def test_text_comes_out_as_go_writes_it(go: Go, template: str, expected: str) -> None:
    assert go(template) == expected


# --- control structures --------------------------------------------------------------


def test_range_with_index_and_value_else_and_loop_control(go: Go) -> None:
    assert go("{{range $i, $v := split `a,b,c` `,`}}{{$i}}={{$v}};{{end}}") == "0=a;1=b;2=c;"
    assert go("{{range ls `/none`}}x{{else}}empty{{end}}") == "empty"
    assert (
        go("{{range 3}}{{.}}{{end}} {{range $n := len `ab`}}{{$n}}{{end}}") == "012 01"
    )  # Go 1.22: over an int
    assert (
        go(
            "{{range split `a,b,c,d` `,`}}{{if eq . `b`}}{{continue}}{{end}}{{if eq . `d`}}{{break}}{{end}}{{.}}{{end}}"
        )
        == "ac"
    )


def test_range_over_a_map_visits_keys_in_order(go: Go) -> None:
    keys = {"/m": '{"b": 2, "a": "x", "c": null}'}
    assert go("{{range $k, $v := json (getv `/m`)}}{{$k}}:{{$v}} {{end}}", keys) == "a:x b:2 c:<no value> "
    assert go("{{range json (getv `/m`)}}[{{.}}]{{end}}", keys) == "[x][2][<no value>]"


def test_index_of_an_outer_range_read_in_an_inner_one(go: Go) -> None:
    template = "{{range $i, $a := split `x,y` `,`}}{{range split `1,2` `,`}}{{$i}}{{$a}}{{.}} {{end}}{{end}}"
    assert go(template) == "0x1 0x2 1y1 1y2 "


def test_a_variable_assigned_inside_a_loop_keeps_its_value_after_it(go: Go) -> None:
    template = "{{$last := `none`}}{{range split `a,b,c` `,`}}{{$last = .}}{{end}}{{$last}}"
    assert go(template) == "c"
    counting = "{{$n := 0}}{{range seq 1 4}}{{$n = add $n .}}{{end}}{{$n}}"
    assert go(counting) == "10"


def test_declarations_are_scoped_to_their_end(go: Go) -> None:
    assert go("{{$x := `outer`}}{{if true}}{{$x := `inner`}}{{$x}}{{end}} {{$x}}") == "inner outer"
    assert go("{{$x := `a`}}{{if true}}{{$x = `b`}}{{end}}{{$x}}") == "b"
    assert go("{{$x := 1}}{{range split `p,q` `,`}}{{$x := .}}{{$x}}{{end}}{{$x}}") == "pq1"


def test_if_else_if_else_and_declarations_in_the_conditions(go: Go) -> None:
    template = '{{if $a := getv "/a" ""}}A={{$a}}{{else if $b := getv "/b" ""}}B={{$b}}{{else}}none{{end}}'
    assert go(template, {"/a": "1"}) == "A=1"
    assert go(template, {"/b": "2"}) == "B=2"
    assert go(template) == "none"


def test_with_binds_dot_and_else_with_chains(go: Go) -> None:
    template = '{{with getv "/x" ""}}x={{.}}{{else with getv "/y" ""}}y={{.}}{{else}}neither{{end}}'
    assert go(template, {"/x": "1"}) == "x=1"
    assert go(template, {"/y": "2"}) == "y=2"
    assert go(template) == "neither"
    assert (
        go(
            '{{with $d := json (getv "/j")}}{{$d.ip}} {{.port}}{{end}}',
            {"/j": '{"ip": "10.0.0.1", "port": 179}'},
        )
        == "10.0.0.1 179"
    )


def test_define_template_and_block(go: Go) -> None:
    assert go('{{define "T"}}[{{.}}]{{end}}{{template "T" "x"}}{{template "T"}}') == "[x][<no value>]"
    # Go parses every define first: a call may come before the definition.
    assert go('{{template "T"}}\n{{define "T"}}t{{template "U"}}{{end}}{{define "U"}}u{{end}}') == "tu\n"
    assert go('<{{block "B" "v"}}({{.}}){{end}}>') == "<(v)>"
    # A define sees only its own dot: $ is the argument.
    assert go('{{define "D"}}{{$}}{{end}}{{$x := 1}}{{template "D" 2}}') == "2"


# --- functions and values ------------------------------------------------------------


def test_and_or_return_an_operand_and_stop_at_the_one_that_decides(go: Go) -> None:
    assert (
        go("{{or `` `fallback`}}|{{and `a` `b`}}|{{and `` `b`}}|{{or 0 false}}|{{not ``}}")
        == "fallback|b||false|true"
    )
    # Go 1.18 on: the operands after the deciding one are not evaluated (a missing key is not read)
    assert go("{{or `set` (getv `/missing`)}}|{{and `` (getv `/missing`)}}|") == "set||"


def test_comparisons_take_like_kinds(go: Go) -> None:
    assert (
        go(
            "{{if eq 1 1}}y{{end}}{{if lt `a` `b`}}y{{end}}{{if eq `c` `a` `b` `c`}}y{{end}}{{if ge 2 3}}n{{end}}"
        )
        == "yyy"
    )
    keys = {"/j": '{"port": 179, "name": "x"}'}
    assert (
        go(
            "{{$d := json (getv `/j`)}}{{if eq $d.port 179.0}}float{{end}}{{if ne $d.name `y`}}ne{{end}}",
            keys,
        )
        == "floatne"
    )


def test_a_comparison_go_refuses_fails_the_render(go: Go) -> None:
    keys = {"/j": '{"port": 179}'}
    with pytest.raises(
        RenderError, match="error calling eq: incompatible types for comparison: float64 and int"
    ):
        go("{{$d := json (getv `/j`)}}{{if eq $d.port 179}}int{{end}}", keys)
    with pytest.raises(RenderError, match="error calling lt: invalid type for comparison"):
        go("{{$d := json (getv `/j`)}}{{if lt $d.missing `x`}}x{{end}}", keys)


def test_a_missing_value_equals_only_nil(go: Go) -> None:
    """Go 1.18 on: eq/ne of nil and a value is false/true, not an error (Calico's 2021
    templates compare peer fields a 2017-shaped peer does not have)."""
    keys = {"/j": '{"port": 179}'}
    out = go(
        "{{$d := json (getv `/j`)}}{{eq $d.nope `x`}} {{ne $d.nope ``}} {{eq $d.nope nil}} {{eq $d.nope $d.other}}",
        keys,
    )
    assert out == "false true true true"


def test_json_values_print_as_go_prints_them(go: Go) -> None:
    keys = {"/j": '{"a": 64512, "b": 1000000, "c": 1.5, "d": true, "e": [1, "x"], "f": {"k": 2}, "g": null}'}
    out = go(
        "{{$d := json (getv `/j`)}}{{$d.a}} {{$d.b}} {{$d.c}} {{$d.d}} {{$d.e}} {{$d.f}} {{$d.g}} {{$d.nope}}",
        keys,
    )
    assert out == "64512 1e+06 1.5 true [1 x] map[k:2] <no value> <no value>"
    assert (
        go("{{$d := json (getv `/j`)}}{{if $d.nope}}y{{else}}n{{end}}{{$d.f.k}}{{$d.nope.deeper}}", keys)
        == "n2<no value>"
    )


def test_index_len_and_slice(go: Go) -> None:
    out = go(
        "{{$l := split `a:b:c` `:`}}{{index $l 1}} {{len $l}} {{len `héllo`}} {{index `abc` 1}} {{slice `abcd` 1 3}}"
    )
    assert out == "b 3 6 98 bc"
    assert go('{{index (json `{"k": "v"}`) `k`}}{{index (json `{}`) `k`}}') == "v<no value>"


def test_printf_print_println(go: Go) -> None:
    assert (
        go('{{printf "%s-%d-%v-%q-%.0f-%5.1f|%-3s|%03d" "a" 5 true "q" 2.5 3.14159 "x" 7}}')
        == 'a-5-true-"q"-2-  3.1|x  |007'
    )
    assert (
        go('{{printf "/host/%s/ip" "n1"}} {{printf "%d%%" 50}} {{printf "%s"}} {{printf "%d" "x"}}')
        == "/host/n1/ip 50% %!s(MISSING) %!d(string=x)"
    )
    assert go('{{$d := json `{"p": 179}`}}{{printf "%s_port_%.0f" "id" $d.p}}') == "id_port_179"
    assert go('{{print "a" 1 2 "b"}}|{{println "a" 1}}|') == "a1 2b|a 1\n|"
    assert go('{{"x" | printf "%s-%s" "y"}}') == "y-x"


def test_confd_functions(go: Go, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLE", "edge")
    keys = {"/app/b": "2", "/app/a": "1", "/app/sub/c": "3", "/flag": "true"}
    template = (
        "{{range gets `/app/*`}}{{.Key}}={{.Value}},{{end}} {{join (getvs `/app/*`) `+`}} {{ls `/app`}} {{lsdir `/app`}} "
        "{{base `/a/b.conf`}} {{dir `/a/b.conf`}} {{toUpper `x`}}{{toLower `Y`}} {{replace `a-b-c` `-` `_` -1}} "
        "{{trimSuffix `x.conf` `.conf`}} {{if hasSuffix `x.conf` `.conf`}}suffix{{end}} {{getenv `ROLE`}} "
        "{{getenv `NOPE` `dflt`}} {{getv `/none` `dflt`}} {{if exists `/flag`}}{{parseBool (getv `/flag`)}}{{end}} "
        "{{seq 1 3}} {{add 1 2}} {{sub 1 2}} {{mul 3 4}} {{div -7 2}} {{mod -7 2}} {{atoi `42`}} "
        "{{base64Encode `hi`}} {{base64Decode `aGk=`}} {{with get `/app/a`}}{{.Key}}:{{.Value}}{{end}} {{hashToIPv4 `node1`}} "
        '{{range jsonArray `[1, "x"]`}}<{{.}}>{{end}} {{(map `k` 1).k}} {{reverse (split `1,2` `,`)}}'
    )
    assert go(template, keys) == (
        "/app/a=1,/app/b=2, 1+2 [a b sub] [sub] b.conf /a Xy a_b_c x suffix edge dflt dflt true "
        "[1 2 3] 3 -1 12 -3 -1 42 aGk= hi /app/a:1 202.18.243.27 <1><x> 1 [2 1]"
    )


def test_html_js_urlquery(go: Go) -> None:
    assert go("{{html `<a href=\"x\">&'`}} {{urlquery `a b&c`}} {{js `it's <b>`}}") == (
        "&lt;a href=&#34;x&#34;&gt;&amp;&#39; a+b%26c it\\'s \\u003Cb\\u003E"
    )


def test_datetime_format_uses_gos_layout(go: Go) -> None:
    out = go('{{datetime.Format "2006-01-02 15:04"}}')
    assert len(out) == 16 and out[4] == "-" and out[13] == ":"


def test_top_level_dot_is_nil(go: Go) -> None:
    assert go("[{{.}}] [{{.Foo}}] [{{$}}]") == "[<no value>] [<no value>] [<no value>]"


def test_a_missing_key_fails_the_render_as_in_confd(go: Go) -> None:
    with pytest.raises(RenderError, match="key /missing"):
        go("{{getv `/missing`}}")


# --- refusals ------------------------------------------------------------------------


def test_syntax_errors_name_file_line_and_column() -> None:
    assert problems("line one\n  {{if}}{{end}}") == ["t.tmpl:2:7: missing value for if"]
    assert problems("{{end}}") == ["t.tmpl:1:1: unexpected {{end}}"]
    assert problems("ok\n{{nosuch 1}}") == ["t.tmpl:2:3: function 'nosuch' not defined"]
    assert problems("{{$x}}") == ["t.tmpl:1:3: undefined variable '$x'"]
    assert problems("{{if true}}") == ["t.tmpl:1:12: unexpected EOF"]
    assert problems("{{break}}") == ["t.tmpl:1:3: {{break}} outside {{range}}"]
    assert problems("{{ 1 | 2 }}") == ["t.tmpl:1:8: non executable command in pipeline stage 2"]
    assert problems('{{"unterminated}}') == ["t.tmpl:1:3: unterminated quoted string"]


def test_every_problem_of_a_template_is_listed_with_its_construct() -> None:
    found = problems(
        '{{lookupSRV "a" "b" "c"}}\n{{template "nope"}}\n{{range $i, $v := 5}}{{end}}\n{{split 1 ","}}\n{{eq "a" 1}}'
    )
    assert found == [
        "t.tmpl:1:3: lookupSRV (DNS SRV records) has no confpy counterpart",
        "t.tmpl:2:1: template 'nope' is not defined in this file (confd fails here)",
        "t.tmpl:3:1: range over an int can set only one variable",
        "t.tmpl:4:3: argument 1 of split must be a string, not int (confd fails there too)",
        "t.tmpl:5:3: eq: int and string are incompatible types for comparison",
    ]


def test_keyring_functions_are_refused_by_name() -> None:
    assert problems('{{cget "/secret"}}') == [
        "t.tmpl:1:3: cget reads values encrypted with confd's -keyring, which confpy does not do"
    ]


@pytest.mark.parametrize(
    ("template", "where"),
    [
        ("{{if 1}}" * 33 + "x" + "{{end}}" * 33, "t.tmpl:1:265"),
        ("{{" + "(print " * 33 + "1" + ")" * 33 + "}}", "t.tmpl:1:227"),
        ("{{range .}}" * 17 + "{{" + "(" * 16 + "1" + ")" * 16 + "}}" + "{{end}}" * 17, "t.tmpl:1:205"),
    ],
)
def test_nesting_is_bounded(template: str, where: str) -> None:
    # Suspected from reading the recursive parser, confirmed with the go_template harness
    # (tests/fuzz/corpus/go_template/regress-*): 250 nested {{if}} or parentheses were a
    # RecursionError out of the parser, and 70 nested calls a RecursionError out of Jinja's
    # compiler on the converted template.
    assert problems(template) == [
        f"{where}: nested deeper than 32 levels (control structures and parentheses)"
    ]
    ok = "{{if 1}}" * 16 + "{{" + "(print " * 16 + "1" + ")" * 16 + "}}" + "{{end}}" * 16
    assert problems(ok) == []
    Renderer(Path("/nonexistent")).env.parse(convert_template(ok, "t.tmpl").source)
