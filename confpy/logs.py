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
        return json.dumps(out, ensure_ascii=False, default=str)


class RedactingFilter(logging.Filter):
    """Masks secrets in the final message (arguments included) before any handler sees it."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = ()
        return True


def setup_logging(level: str, fmt: str = "text", redact: Callable[[str], str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s confpy %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
        )
    if redact is not None:
        handler.addFilter(RedactingFilter(redact))
    root = logging.getLogger()
    for old in root.handlers[:]:
        if getattr(old, "confpy", False):  # ours from an earlier call; others (pytest's) stay
            root.removeHandler(old)
    handler.confpy = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level.lower(), "INFO"))
