"""``confpy convert SRC_CONFDIR DEST_CONFDIR``: confd's confdir to confpy's.

Exit status as for ``-onetime``: 0 converted (and, with ``--check``, every file
rendered and, with ``--compare``, the same); 1 a checked file failed to render or
differs; 2 usage error or something that cannot be converted (every problem of every
file listed, nothing written); 3 the ``--check`` data file is unreadable.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from confpy.convert.check import check_confdir
from confpy.convert.confdir import Conversion, convert_confdir
from confpy.errors import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, ConfigError
from confpy.stores.base import StoreError

DESCRIPTION = """\
Convert a confd confdir (conf.d/*.toml, Go text/template templates) into a confpy one:
the TOMLs keep their fields with src naming the new .j2 templates, and each template
becomes a Jinja template that renders byte for byte what confd renders from the same
keys. What cannot be converted is listed with file:line:col, every problem of every
file, and nothing is written (exit 2).
"""

EPILOG = """\
examples:
  confpy convert /etc/calico/confd /etc/calico/confpy
  confpy convert --stdout /etc/confd
  confpy convert /etc/confd /tmp/confpy --check keys.yaml -node-name node1 --compare /etc/confd/out
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="confpy convert",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("src", metavar="SRC_CONFDIR", help="confd's confdir (holds conf.d/ and templates/)")
    p.add_argument("dest", metavar="DEST_CONFDIR", nargs="?", help="the confpy confdir to write")
    p.add_argument("--stdout", action="store_true", help="print the converted files instead of writing them")
    p.add_argument("--force", action="store_true", help="write into a DEST_CONFDIR that is not empty")
    p.add_argument(
        "--check", metavar="DATAFILE", action="append", help="render the result from this data file"
    )
    p.add_argument("--compare", metavar="DIR", help="with --check: compare each file with DIR/<dest's name>")
    p.add_argument("--node-name", help="node name for //NODENAME and getenv NODENAME with --check")
    p.add_argument("--prefix", default="", help="prefix added in front of every resource prefix (--check)")
    return p


def _report(conv: Conversion) -> None:
    for w in conv.warnings:
        print(f"confpy convert: warning: {w}", file=sys.stderr)
    for p in conv.problems:
        print(f"confpy convert: {p}", file=sys.stderr)


def _write(conv: Conversion, dest: Path, force: bool) -> int:
    if dest.exists() and any(dest.iterdir()) and not force:
        print(f"confpy convert: {dest} is not empty (use --force to write into it)", file=sys.stderr)
        return EXIT_USAGE
    for f in conv.files:
        target = dest / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.text)
        print(f"wrote {target}: {f.note}")
    return EXIT_OK


def _check(args: argparse.Namespace, dest: Path) -> int:
    node = args.node_name or os.environ.get("NODENAME") or socket.gethostname()
    try:
        lines = check_confdir(
            dest, args.check, node, args.prefix, Path(args.compare) if args.compare else None
        )
    except ConfigError as exc:
        print(f"confpy convert: --check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"confpy convert: --check: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    for line in lines:
        print(("ok      " if line.ok else "FAILED  ") + line.text)
    return EXIT_OK if all(line.ok for line in lines) else EXIT_FAILED


def main(argv: Sequence[str]) -> int:
    from confpy.cli import go_style

    parser = build_parser()
    args = parser.parse_args(go_style(argv, parser))
    if args.stdout and args.check:
        parser.error("--check renders the written DEST_CONFDIR: not with --stdout")
    if args.dest is None and not args.stdout:
        parser.error("DEST_CONFDIR is required unless --stdout is given")
    if args.compare and not args.check:
        parser.error("--compare needs --check DATAFILE")
    conv = convert_confdir(Path(args.src))
    _report(conv)
    if conv.problems:
        files = len({p.pos.file for p in conv.problems})
        print(
            f"confpy convert: {len(conv.problems)} problem(s) in {files} file(s): nothing written",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.stdout:
        for f in conv.files:
            sys.stdout.write(f"# ==> {f.path} ({f.note}) <==\n{f.text}")
            if f.text and not f.text.endswith("\n"):
                sys.stdout.write("\n")
        return EXIT_OK
    dest = Path(args.dest)
    status = _write(conv, dest, args.force)
    if status != EXIT_OK or not args.check:
        return status
    return _check(args, dest)
