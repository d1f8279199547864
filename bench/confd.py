"""Go confd side by side (issue 17 part 4): the same data, the same template, one run.

``CONFD_BIN`` names a confd binary (kelseyhightower/confd, etcd v3 backend); when it is
set, the onetime, watch, burst and idle benchmarks run it beside confpy on the same etcd
and print both figures with confpy/confd ratios from that run. Without it they say
"confd: recorded figures" and show the figures recorded in issue 17 (and issue 8).

confd has no ``-dest-root``: its resource names an absolute destination, here inside
the benchmark's temporary directory, and the template is the Go text/template twin of
``bench.data.PEERS_TEMPLATE`` (the same lines for the same keys).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.common import log

GO_PEERS_TEMPLATE = """\
# {{getenv "NODENAME"}}: one line per peer under /bench/peers
{{range gets "/peers/*"}}{{$d := json .Value}}neighbor {{base .Key}} {{$d.ip}} as {{$d.as_num}};
{{end}}"""

#: Go confd's figures as recorded in issue 17's table (confd 0.17 built from source,
#: etcd 3.4, this kind of machine, medians) and, where issue 17 gives none, issue 8's.
RECORDED: dict[str, str] = {
    "onetime N=100 wall": "22 ms",
    "onetime N=1000 wall": "46 ms",
    "onetime N=10000 wall": "211 ms",
    "onetime N=10000 peak RSS": "35 MiB",
    "watch p99 N=1000 (-wait-min 0 for confpy)": "44 ms",
    "watch p99 N=10000": "≈ 220 ms (issue 8)",
    "watch RSS N=1000": "28-31 MiB",
    "reloads per 500-put burst": "23-25",
    "-interval 1 CPU N=10000": "14.6 %",
    "-interval 1 RSS N=10000": "34 MiB",
}


def binary() -> str | None:
    """The confd to run beside confpy: $CONFD_BIN if it names an executable."""
    path = os.environ.get("CONFD_BIN")
    if not path:
        return None
    found = shutil.which(path)
    if found is None:
        raise RuntimeError(f"CONFD_BIN={path!r} is not an executable")
    return found


def say_recorded(*names: str) -> None:
    """Without CONFD_BIN: the recorded confd figures for these names."""
    log("   confd: recorded figures (set CONFD_BIN to run it side by side): " + "; ".join(
        f"{n}: {RECORDED[n]}" for n in names
    ))  # fmt: skip


def confd_cmd(bin_path: str, *args: str) -> list[str]:
    """``confd ARGS`` with no settings file (a path that does not exist)."""
    return [bin_path, "-config-file=/nonexistent/confd.toml", "-backend=etcdv3", *args]


def confd_env(node_name: str = "bench") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_") and k != "NODENAME"}
    for k in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.pop(k, None)  # loopback only
    env["NODENAME"] = node_name
    return env


def peers_confdir(root: Path, dest: Path, *, reload_cmd: str | None = None) -> Path:
    """A confd confdir with the one peers resource (prefix /bench, keys /peers) writing
    to the absolute ``dest``."""
    (root / "conf.d").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(parents=True, exist_ok=True)
    toml = (
        f'[template]\nsrc = "peers.conf.tmpl"\ndest = {json.dumps(str(dest))}\n'
        'prefix = "/bench"\nkeys = ["/peers"]\n'
    )
    if reload_cmd:
        toml += f"reload_cmd = {json.dumps(reload_cmd)}\n"
    (root / "conf.d" / "peers.toml").write_text(toml)
    (root / "templates" / "peers.conf.tmpl").write_text(GO_PEERS_TEMPLATE)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return root


def ratio(confpy: float, confd: float) -> str:
    """confpy / confd, as ``×1.23``."""
    return "—" if not confd else f"×{confpy / confd:.3g}"
