"""confpy's exceptions. Each names the file, key or line it is about."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` safe for one log line: control characters (newlines included) and the
    stray bytes of a value that is not UTF-8 escaped; every other character kept."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    code = ord(c)
    if c in "\n\t\r":
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}[c]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# Exit status of -onetime, -noop and --stdout (the README's table).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
#: -noop / --stdout with --detailed-exitcode: nothing failed, some file would change.
EXIT_PENDING = 4


class ConfpyError(Exception):
    """Base class of every error confpy reports to the operator."""


class ConfigError(ConfpyError):
    """Bad flags, settings, resource TOML or template set: exit code 2."""


class DataError(ConfpyError):
    """A store value is not what its consumer needs. Names the full store key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"key {printable(key)}: {message}")
        self.key = key
        self.message = message


class RenderError(ConfpyError):
    """A template could not be rendered (missing keys, bad data, template bug)."""


class CommandError(ConfpyError):
    """A check or reload command failed, timed out or could not start."""
