"""``confpy man``: the confpy(1) manual page in roff, made from ``--help`` (the
parsers' descriptions, options and epilogues), so it never disagrees with it:
``confpy man > /usr/local/share/man/man1/confpy.1``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from confpy import __version__


def _roff(text: str) -> str:
    """Plain text for roff: backslashes and leading dots or quotes escaped."""
    lines = []
    for line in text.replace("\\", "\\e").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _block(text: str) -> str:
    """Preformatted text (--help's columns kept)."""
    return ".nf\n" + _roff(text.rstrip("\n")) + "\n.fi"


def _options(parser: argparse.ArgumentParser) -> str:
    out = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        metavar = ""
        if action.nargs != 0:
            metavar = " " + _metavar(action) if action.nargs != "?" else " [BOOL]"
        flags = ", ".join(f"\\fB{o}\\fR" for o in action.option_strings)
        out.append(f".TP\n{flags}{_roff(metavar)}\n{_roff(action.help or '')}")
    return "\n".join(out)


def _positionals(parser: argparse.ArgumentParser) -> str:
    return " ".join(_metavar(a) for a in parser._actions if not a.option_strings and a.dest != "help")


def _metavar(action: argparse.Action) -> str:
    metavar = (
        action.metavar or action.dest.upper() if action.option_strings else action.metavar or action.dest
    )
    return " ".join(metavar) if isinstance(metavar, tuple) else metavar


def manual() -> str:
    from confpy.cli import DESCRIPTION, EPILOG, build_parser
    from confpy.completion import subcommand_parsers

    main = build_parser()
    parts = [
        f'.TH CONFPY 1 "" "confpy {__version__}" "User Commands"',
        ".SH NAME\nconfpy \\- keep configuration files in step with a key-value store (confd's replacement)",
        ".SH SYNOPSIS\n\\fBconfpy\\fR [\\fIflags\\fR]\n.br\n\\fBconfpy\\fR "
        + "|".join(sorted(subcommand_parsers()))
        + " [\\fIarguments\\fR]",
        ".SH DESCRIPTION\n" + _block(DESCRIPTION),
        ".SH OPTIONS\n" + _options(main),
        ".SH SUBCOMMANDS",
    ]
    for name, parser in sorted(subcommand_parsers().items()):
        parts.append(f".SS confpy {name} {_roff(_positionals(parser))}")
        if parser.description and parser is not main:
            parts.append(_block(parser.description))
        if name != "explain":
            parts.append(_options(parser))
        else:
            parts.append("KEY is a full store key; the other arguments are confpy's flags (above).")
        if parser.epilog:
            parts.append(_block(parser.epilog))
    parts.append(".SH EXIT STATUS AND EXAMPLES\n" + _block(EPILOG))
    parts.append(".SH SEE ALSO\nconfd(1), bird(8); docs/migrating-from-confd.md in confpy's sources")
    return "\n".join(parts) + "\n"


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="confpy man", description="Print the confpy(1) manual page (roff).")


def main(argv: Sequence[str]) -> int:
    build_parser().parse_args(argv)
    sys.stdout.write(manual())
    return 0
