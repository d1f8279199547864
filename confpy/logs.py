"""Logging: text for people, JSON (one object per line) for machines; secrets masked in both.

Structured fields ride on ``extra=``: ``unit``, ``resource``, ``revision``, ``keys``,
``ms`` (a duration), ``step``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

from confpy.errors import printable

FIELDS = ("unit", "resource", "revision", "keys", "ms", "step", "endpoint")
LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "warn": "WARNING", "error": "ERROR",
          "panic": "CRITICAL", "fatal": "CRITICAL"}  # fmt: skip


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        # A lone surrogate (a byte that was not UTF-8) becomes the JSON escape \udcff.
        return json.dumps(out, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace").decode()


class RedactingFilter(logging.Filter):
    """Masks secrets in the final message (arguments included) before any handler sees it."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = ()
        return True


class TextFormatter(logging.Formatter):
    """One event, one line: newlines and other control characters (in a key, a value,
    a command's output, a traceback) are escaped, so nothing can forge a second line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s confpy %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def ours_or_loud(record: logging.LogRecord) -> bool:
    """confpy's own records at every level; a library's (gRPC, asyncio, watchdog...) only
    from WARNING up, so -log-level debug shows confpy's debug lines, not their chatter."""
    name = record.name
    return name == "confpy" or name.startswith("confpy.") or record.levelno >= logging.WARNING


def setup_logging(level: str, fmt: str = "text", redact: Callable[[str], str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ours_or_loud)
    if redact is not None:
        handler.addFilter(RedactingFilter(redact))
    root = logging.getLogger()
    for old in root.handlers[:]:
        if getattr(old, "confpy", False):  # ours from an earlier call; others (pytest's) stay
            root.removeHandler(old)
    handler.confpy = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level.lower(), "INFO"))
