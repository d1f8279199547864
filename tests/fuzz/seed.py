"""Write the seed corpora (``tests/fuzz/corpus/<harness>/seed-*``) from the project's real
inputs: conf.d TOMLs, the example clusters and test data, the convert fixtures, the BIRD
replies of the reload tests, and etcd answers captured from a real etcd
(``captured-*``, kept as they are: ``python -m tests.fuzz.seed --capture`` writes them
again with Debian's etcd). Run from the repository: ``python -m tests.fuzz.seed``.

Seeds are rewritten; other files in the corpus (minimized failures, ``regress-*``, and
what ``--grow`` merged) are left alone.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import yaml

from tests.fuzz.engine import CORPUS
from tests.support.calico_resources import etcd_keys

ROOT = Path(__file__).resolve().parents[2]
PLURAL_BYTE = {"nodes": 0, "bgppeers": 1, "bgpconfigurations": 2, "ippools": 3}


def _files(*patterns: str) -> list[Path]:
    return sorted({p for pattern in patterns for p in ROOT.glob(pattern) if p.is_file()})


def _write(harness: str, seeds: list[bytes]) -> None:
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):
        old.unlink()
    for data in dict.fromkeys(seeds):  # unique, in order
        (d / f"seed-{hashlib.sha1(data).hexdigest()[:12]}").write_bytes(data)
    print(f"{harness}: {len(set(seeds))} seeds")


def _flat_keys(path: Path) -> dict[str, str]:
    from confpy.stores.file import FileStore

    return FileStore([path]).read(["/"]).values


def _cluster_keys() -> list[dict[str, str]]:
    clusters = [json.loads((ROOT / "tests/data/calico/example-cluster.json").read_text())["keys"]]
    clusters += [_flat_keys(p) for p in _files("examples/calico/*.yaml")]
    return clusters


def _v3_sets() -> list[dict[str, str]]:
    return [etcd_keys(p) for p in _files("tests/data/calico-v3/*/resources.yaml")]


def seeds() -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    tomls = _files("conf.d/*.toml", "bird2/conf.d/*.toml", "tests/confd_compat/conf.d/*.toml",
                   "examples/confd/conf.d/*.toml", "tests/convert_fixtures/confd/conf.d/*.toml")  # fmt: skip
    out["resource_toml"] = [p.read_bytes() for p in tomls] + [
        b'[template]\nsrc = "a.j2"\ndest = "/tmp/a"\nmode = "0600"\nowner = "root"\ngroup = "root"\n'
        b'check_timeout = "1m30s"\nreload_cmd = "true"\nreload_ok = "^0003"\nreload_timeout = 5\n',
        b'[template]\nsrc = "a.j2"\ndest = "/tmp/a"\nuid = 0\ngid = 0\nreload_signal = "SIGHUP"\n'
        b'reload_pidfile = "/run/bird.pid"\nreload_required = true\nkeys = ["//NODENAME/x"]\n',
    ]
    out["settings_toml"] = [
        b'backend = "etcd"\nnodes = ["http://127.0.0.1:2379"]\nprefix = "/calico"\ninterval = 60\n'
        b'log-level = "debug"\nclient_cakeys = ""\nwatch = true\nwait_min = "50ms"\n',
        b'backend = "file"\nfile = ["/etc/confpy/data.yaml"]\nnoop = true\nconfdir = "/etc/confd"\n'
        b'srv_domain = "example.com"\nsensitive_key = ["/secret/*"]\n',
        b'backend = "calico"\nnode = "127.0.0.1:2379"\nscheme = "https"\nclient_cert = "/c.pem"\n'
        b'client_key = "/k.pem"\nusername = "u"\npassword = "p"\nconnect_timeout = "1s"\n'
        b'metrics_addr = "127.0.0.1:9091"\nlog_format = "json"\nwait_max = 2\n',
    ]
    yamls = _files("examples/**/*.yaml", "tests/confd_compat/*.yaml", "tests/data/calico-v3/*/*.yaml")
    out["datafile_yaml"] = [p.read_bytes() for p in yamls] + [
        b"a: &x {b: 1, c: [1, 2]}\nd: *x\ne: !!binary aGk=\nf: 2001-01-01\n? [1, 2]\n: 3\n"
    ]
    out["datafile_json"] = [p.read_bytes() for p in _files("tests/data/calico/*.json")] + [
        json.dumps(yaml.safe_load(p.read_text())).encode() for p in _files("examples/**/*.yaml")
    ]

    values: list[bytes] = []
    for keys in _cluster_keys():
        for key, value in keys.items():
            f = 4 if any(s in key for s in ("peer_v6", "/v6/", "ip_v6", "/ipv6/")) else 0  # byte 0's bit 2
            if "/peer_v" in key:
                values.append(bytes([0 | f]) + value.encode())
            elif "/ipam/v4/pool/" in key or "/ipam/v6/pool/" in key:
                values.append(bytes([1 | f]) + value.encode())
            elif "/block/" in key:
                values.append(bytes([2 | f]) + key.rsplit("/", 1)[1].encode() + b"\n" + value.encode())
            elif "prefix_advertisements" in key:
                values.append(bytes([3 | f]) + value.encode())
    out["calico_values"] = values

    def lines(keys: dict[str, str]) -> bytes:
        return "".join(f"{k} {v}\n" for k, v in sorted(keys.items()) if "\n" not in v).encode()

    out["calico_context"] = [lines(keys) for keys in _cluster_keys()] + [
        lines(_cluster_keys()[0]) + b"$CALICO_ROUTER_ID hash\n$BIRD_FLAVOR stock\n"
    ]
    from confpy.calico.v3.view import V1View

    v1_sets = []
    for keys in _v3_sets():
        view = V1View("node1")
        view.apply(keys.items())
        v1_sets.append(view.values)
    out["calico_context"] += [lines(v) for v in v1_sets]

    v3, views = [], []
    for keys in _v3_sets():
        records = []
        for key, value in keys.items():
            if key.startswith("/calico/ipam/"):
                records.append(bytes([4]) + key.rsplit("/", 1)[1].encode() + b"\n" + value.encode())
                continue
            plural, name = key.rsplit("/", 2)[-2:]
            v3.append(bytes([PLURAL_BYTE[plural]]) + name.encode() + b"\n" + value.encode())
            records.append(bytes([PLURAL_BYTE[plural]]) + name.encode() + b"\n" + value.encode())
        views.append(b"\x00".join(records))
        # the same resources deleted again, one batch later
        views.append(b"\x00".join(records[:-1] + [bytes([records[-1][0] | 0x40]) + records[-1][1:]]
                                  + [bytes([r[0] | 0x80]) + r[1:] for r in records]))  # fmt: skip
    out["calico_v3"] = v3
    out["calico_view"] = views

    selectors = {"", "all()", " all( ) ", "global()", "rack == 'a'", "rack != 'a'", "missing == ''",
                 "rack in {'a', 'b'}", "rack in {}", "rack in {'b',}", "rack not in {'b'}", "rack notin {'a'}",
                 "has(zone)", "has( zone )", "!has(missing)", "!!has(zone)", "kubernetes.io/hostname == 'node1'",
                 "role contains 'reflect'", "role starts with 'route'", "role startswith 'x'",
                 "role ends with 'reflector'", "rack == 'b' && zone == 'z1' || has(role)",
                 "rack == 'b' && (zone == 'z1' || has(role))", "!(rack == 'a' && has(zone))", "! rack == 'b'",
                 'a == "x" && b != "y"'}  # fmt: skip
    for keys in _v3_sets():
        for value in keys.values():
            spec = json.loads(value).get("spec", {})
            selectors |= {spec[f] for f in ("nodeSelector", "peerSelector") if isinstance(spec.get(f), str)}
    out["selector"] = [s.encode() for s in sorted(selectors)]

    templates = _files("tests/convert_fixtures/confd/templates/*", "examples/confd/templates/*")
    out["go_template"] = [p.read_bytes() for p in templates] + [
        b'{{define "t"}}{{.}}{{end}}{{template "t" "x"}}{{block "b" .}}b{{end}}\n'
        b'{{range $i, $v := split (getv "/a") ","}}{{if eq $i 0}}{{$v}}{{else if gt $i 2}}-{{break}}'
        b"{{else}}{{continue}}{{end}}{{end}}\n{{with $x := 1}}{{printf \"%d %q %v\" $x 'a' 1.5e3}}{{end}}\n"
        b"{{- /* comment */ -}}{{`raw`}} {{0x1F}} {{1_000}} {{nil | print}} {{(index . 0).Key}}\n",
    ]
    pairs = []
    for toml in _files("tests/convert_fixtures/confd/conf.d/*.toml", "examples/confd/conf.d/*.toml"):
        src = next(ln for ln in toml.read_text().splitlines() if ln.strip().startswith("src"))
        name = src.split("=", 1)[1].strip().strip("\"'")
        template = toml.parent.parent / "templates" / name
        text = toml.read_text().replace(name, "fuzz.tmpl").encode()
        pairs.append(text + b"\x00" + (template.read_bytes() if template.is_file() else b""))
    out["convert_confdir"] = pairs

    greeting = b"0001 BIRD 1.6.8 ready.\n"
    replies = [
        b"0002-Reading configuration from x|.conf\n0004 Reconfiguration in progress\n",
        b"0002-Reading configuration\n0005 Reconfiguration already in progress, queueing new config\n",
        b"+async message\n0002-Reading\n continued line 0003 not final\n0003 Reconfigured\n",
        b"0002-Reading configuration from x.conf\n8002 x.conf:7:3 syntax error\n",
        b"9001 Parse error\n",
        b"0006 Reconfiguration ignored, shutting down\n",
        b"0003 Reconfigured\n",
    ]
    out["bird_reply"] = [bytes([size]) + greeting + r for r in replies for size in (0, 3, 255)]
    out["bird_reply"] += [bytes([0]) + greeting, bytes([0]) + b"0001 BIRD 2.0.12 ready.\n0003 Reconfigured\n"]
    return out


def main(argv: list[str]) -> int:
    if "--capture" in argv:
        from tests.fuzz.capture import capture

        capture()
    for harness, data in seeds().items():
        _write(harness, data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
