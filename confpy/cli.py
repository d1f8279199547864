"""Command line: confd's flags as confd's users write them, plus confpy's own.

``-confdir=/x``, ``-confdir /x``, ``--confdir /x`` and ``--confdir=/x`` are the same;
boolean flags take no value or ``=true``/``=false``. Flags override the environment
(``CONFPY_<FLAG>``), which overrides the config file.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from confpy import __version__
from confpy.errors import EXIT_USAGE, ConfigError
from confpy.settings import build_settings, parse_bool

DESCRIPTION = """\
Keep configuration files in step with a key-value store (etcd, data files or the
environment). Each conf.d/*.toml resource names a Jinja2 template, a destination, the
keys it reads, a check command and a reload command. confpy renders, checks the new
file, replaces the old one atomically and reloads the daemon once per change.

modes:
  -onetime        render and apply once, then exit (exit status below)
  -watch          follow the store and apply changes as they happen (the daemon)
  -interval N     poll the store every N seconds (with -watch: also re-check the
                  destinations every N seconds and retry failed resources)
  -noop           show what would change (unified diff, check result, the reload
                  that would run); write nothing, reload nothing
  --stdout        render to standard output for review; no writes, no commands
  (no mode flag: poll every 600 s, as confd does; -onetime wins over -watch, as in confd)

subcommands (the first argument; each has --help):
  convert SRC DEST  convert a confd confdir (Go templates) into a confpy one
  lint              load every resource and compile every template; list every problem
  explain KEY       which resources and units read KEY, and which files would change
  completion bash   print a bash completion script
  man               print the confpy(1) manual page
"""

EPILOG = """\
exit status of -onetime / -noop / --stdout:
  0  every resource in sync (or applied)
  1  at least one resource failed (render, check, write or reload); the others were applied
  2  usage or configuration error (bad flag, bad resource TOML, missing template)
  3  store unreachable (or a data file unreadable)
  4  with --detailed-exitcode (-noop, --stdout): nothing failed, but a file would change

store: -node URL (repeatable) selects etcd: its v3 API, or its v2 API when only that one
holds the keys (Calico 2.x); -backend etcdv2 / etcd decide without guessing; -backend
calico reads Calico 3 resources from etcd as Calico's confd does. -file PATH (repeatable,
a YAML/JSON file or a directory of them) selects the file store; -backend env reads the
environment.

examples:
  confpy --stdout -confdir . -file examples/calico/example-cluster.yaml -node-name node1   # in a checkout
  confpy -confdir=/etc/calico/confd -interval=5 -watch --log-level=debug -node=http://127.0.0.1:2379
  confpy -noop --detailed-exitcode -confdir=/etc/calico/confd -node=http://127.0.0.1:2379   # 4: drift
"""


def _bool(text: str) -> bool:
    try:
        return parse_bool(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="confpy",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
    )

    def flag(name: str, help: str, **kw: Any) -> None:
        p.add_argument(f"--{name}", dest=name.replace("-", "_"), help=help, **kw)

    def switch(name: str, help: str) -> None:
        flag(name, help, nargs="?", const=True, type=_bool, metavar="BOOL")

    flag("confdir", "directory holding conf.d/ and templates/ (default /etc/confd)", metavar="DIR")
    flag("config-file", "settings file, confd.toml keys (default /etc/confpy/confpy.toml if present)")
    flag("backend", "store: etcd (= etcdv3), etcdv2, calico, file or env (default: etcd if -node, else file)")
    flag("node", "etcd endpoint http[s]://host:port or host:port; repeat for failover", action="append")
    flag("file", "data file or directory for the file store (YAML/JSON); repeatable", action="append")
    flag("scheme", "scheme for -node values without one: http or https (default http)")
    flag("prefix", "prefix added in front of every resource prefix")
    flag("dest-root", "write every dest under DIR instead of / (like make's DESTDIR)", metavar="DIR")
    flag("node-name", "node name for //NODENAME in resources (default $NODENAME, else the host name)")
    switch("onetime", "render and apply once, then exit")
    switch("watch", "follow store changes (the daemon mode)")
    flag("interval", "poll every N seconds; with -watch, reconcile every N seconds", metavar="N")
    switch("noop", "show what would change; write nothing, run no reload")
    switch("sync-only", "write files but run no check_cmd and no reload_cmd")
    switch("keep-stage-file", "keep the staging directory (for debugging checks)")
    switch("stdout", "render resources to standard output with a header per file; no writes")
    switch("detailed-exitcode", "with -noop or --stdout: exit 4 when a file would change (0: all in sync)")
    flag("resource", "only these resources (conf.d name or destination); repeatable", action="append")
    flag("log-level", "debug, info, warning or error (default info)")
    flag("log-format", "text (default) or json: one object per line")
    flag("metrics-addr", "serve /metrics, /healthz, /readyz, /status on HOST:PORT (off by default)")
    switch("watch-config", "reload conf.d and templates when they change (as on SIGHUP)")
    flag(
        "sensitive-key", "glob of keys whose values are secrets (masked in logs); repeatable", action="append"
    )
    switch("show-secrets", "with --stdout or -noop: show secrets instead of <redacted>")
    flag("client-cert", "TLS client certificate for etcd")
    flag("client-key", "TLS client key for etcd")
    flag("client-ca-keys", "CA bundle to verify etcd's certificate")
    flag("username", "etcd user")
    flag("password", "etcd password")
    flag("wait-min", "quiet time before applying a burst of changes, e.g. 0, 50ms (default 100ms)")
    flag("wait-max", "apply at the latest this long after the first change of a burst (default 1s)")
    flag("connect-timeout", "give up on an unreachable store after this long with -onetime (default 5s)")
    p.add_argument("--version", "-version", action="version", version=f"confpy {__version__}")
    return p


def go_style(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Turn Go's ``-flag`` spelling into ``--flag`` for known long flags."""
    known = {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
    out = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            name = "-" + arg.split("=", 1)[0]
            if name in known:
                arg = "-" + arg
        out.append(arg)
    return out


def parse_flags(argv: Sequence[str], parser: argparse.ArgumentParser | None = None) -> dict[str, Any]:
    """The flags given (only those), under Settings' names; ``parser`` may add arguments."""
    parser = parser or build_parser()
    ns = parser.parse_args(go_style(argv, parser))
    flags = vars(ns)
    if "node" in flags:
        flags["nodes"] = flags.pop("node")
    if "file" in flags:
        flags["files"] = flags.pop("file")
    if "resource" in flags:
        flags["resources"] = flags.pop("resource")
    if "sensitive_key" in flags:
        flags["sensitive_keys"] = flags.pop("sensitive_key")
    return flags


#: Subcommands, recognised by the first argument; each module has main(argv) -> int.
TOOLS = {
    "convert": "confpy.convert.command",
    "lint": "confpy.lint",
    "explain": "confpy.explain",
    "completion": "confpy.completion",
    "man": "confpy.manpage",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TOOLS:
        import importlib

        tool: Any = importlib.import_module(TOOLS[args[0]])
        return int(tool.main(args[1:]))
    # Start-up (the snapshot, the first render) makes long-lived objects only:
    # the cyclic collector would walk them again and again (a tenth of a -onetime run at
    # 10,000 keys). A one-shot run exits without it; the daemon turns it back on once
    # its first apply is done and those objects are frozen out of its way.
    gc.disable()
    try:
        from confpy.engine import Engine
        from confpy.logs import setup_logging
        from confpy.redact import Redactor

        flags = parse_flags(args)
        try:
            settings = build_settings(flags)
        except ConfigError as exc:
            print(f"confpy: {exc}", file=sys.stderr)
            return EXIT_USAGE
        redactor = Redactor(settings.sensitive_keys)
        setup_logging(settings.log_level, settings.log_format, redactor)
        for warning in settings.warnings:
            logging.getLogger("confpy").warning("%s", warning)
        try:
            engine = Engine.create(settings, redactor=redactor, flags=flags)
        except ConfigError as exc:
            # Logged (JSON when asked for) and printed: even -log-level=fatal shows why it exits 2.
            logging.getLogger("confpy").error("%s", exc)
            if not logging.getLogger("confpy").isEnabledFor(logging.ERROR):
                print(f"confpy: {redactor(str(exc))}", file=sys.stderr)
            return EXIT_USAGE
        if engine.one_shot:
            return engine.run_once()  # no event loop: one read, one apply
        import asyncio

        from confpy.daemon import Daemon  # the watch machinery: only for the daemon

        return asyncio.run(Daemon(engine).run())
    finally:
        gc.enable()  # main() may run inside another program (the tests)


def run() -> NoReturn:
    """The ``confpy`` command: :func:`main`, then exit."""
    code = main()
    # The process ends here. Interpreter shutdown would run one more full collection
    # over every object start-up made (a tenth of a -onetime run at 10,000 keys);
    # frozen objects are left out of it. Buffers, handlers and atexit still run as usual.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
