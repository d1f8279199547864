"""confpy's exceptions. Each names the file, key or line it is about."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` safe for one log line: control characters and stray bytes escaped."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


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
