"""Durations as operators write them: ``0``, ``50ms``, ``1.5s``, ``2m``, or plain seconds."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(value: object) -> float:
    """Seconds for ``value``; a bare number is seconds. Go's forms (``1m30s``) work too.
    A duration is a finite number of seconds: ``nan``, ``inf`` and numbers past a float's
    range (``1e999``, a 400-digit integer) are not durations, as in Go."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int past a float's range (TOML has big integers)
            seconds = math.inf
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise ValueError(f"{_show(value)} is not a duration (examples: 0, 50ms, 1s, 2m)") from None
    if not math.isfinite(seconds):
        raise ValueError(f"{_show(value)} is not a finite duration")
    if seconds < 0:
        raise ValueError(f"{_show(value)} is negative")
    return seconds
